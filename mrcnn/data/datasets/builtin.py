"""Datasets registered on import: COCO 2017 (standard and the original project's layout) and shapes.

Paths are relative to ``$MRCNN_DATASETS`` (default ``./datasets``):

- ``coco_2017_{train,val}``: ``coco/{train2017,val2017}`` and
  ``coco/annotations/instances_{train,val}2017.json``.
- ``coco2017_seed_{train,val}``: ``coco2017/{train,val}`` and
  ``coco2017/annotations/{train,val}_annotations.json``.
- ``shapes_{train,val}``: ``shapes/``, generated on first use (see `synthetic_shapes.py`).
"""

import colorsys
import os
from typing import Any, Dict, List

from .coco import register_coco_instances
from .synthetic_shapes import register_shapes

__all__ = ["COCO_CATEGORIES", "coco_instances_metadata", "register_all_builtin"]

# (COCO category id, name): the 80 "thing" categories of COCO 2017; ids have gaps
# fmt: off
COCO_CATEGORIES = [
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"), (6, "bus"), (7, "train"),
    (8, "truck"), (9, "boat"), (10, "traffic light"), (11, "fire hydrant"), (13, "stop sign"),
    (14, "parking meter"), (15, "bench"), (16, "bird"), (17, "cat"), (18, "dog"), (19, "horse"), (20, "sheep"),
    (21, "cow"), (22, "elephant"), (23, "bear"), (24, "zebra"), (25, "giraffe"), (27, "backpack"),
    (28, "umbrella"), (31, "handbag"), (32, "tie"), (33, "suitcase"), (34, "frisbee"), (35, "skis"),
    (36, "snowboard"), (37, "sports ball"), (38, "kite"), (39, "baseball bat"), (40, "baseball glove"),
    (41, "skateboard"), (42, "surfboard"), (43, "tennis racket"), (44, "bottle"), (46, "wine glass"),
    (47, "cup"), (48, "fork"), (49, "knife"), (50, "spoon"), (51, "bowl"), (52, "banana"), (53, "apple"),
    (54, "sandwich"), (55, "orange"), (56, "broccoli"), (57, "carrot"), (58, "hot dog"), (59, "pizza"),
    (60, "donut"), (61, "cake"), (62, "chair"), (63, "couch"), (64, "potted plant"), (65, "bed"),
    (67, "dining table"), (70, "toilet"), (72, "tv"), (73, "laptop"), (74, "mouse"), (75, "remote"),
    (76, "keyboard"), (77, "cell phone"), (78, "microwave"), (79, "oven"), (80, "toaster"), (81, "sink"),
    (82, "refrigerator"), (84, "book"), (85, "clock"), (86, "vase"), (87, "scissors"), (88, "teddy bear"),
    (89, "hair drier"), (90, "toothbrush"),
]
# fmt: on


def _distinct_colors(count: int) -> List[List[int]]:
    """Well-separated RGB colours: hues stepped by the golden ratio."""
    colors = []
    for i in range(count):
        hue = (i * 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, 0.65 + 0.35 * (i % 2), 0.95 - 0.25 * (i % 3) / 2)
        colors.append([int(r * 255), int(g * 255), int(b * 255)])
    return colors


def coco_instances_metadata() -> Dict[str, Any]:
    """thing_classes, thing_dataset_id_to_contiguous_id and thing_colors of COCO instances."""
    return {
        "thing_classes": [name for _, name in COCO_CATEGORIES],
        "thing_dataset_id_to_contiguous_id": {cid: i for i, (cid, _) in enumerate(COCO_CATEGORIES)},
        "thing_colors": _distinct_colors(len(COCO_CATEGORIES)),
    }


_COCO_SPLITS = {
    "coco_2017_train": ("coco/train2017", "coco/annotations/instances_train2017.json"),
    "coco_2017_val": ("coco/val2017", "coco/annotations/instances_val2017.json"),
    "coco2017_seed_train": ("coco2017/train", "coco2017/annotations/train_annotations.json"),
    "coco2017_seed_val": ("coco2017/val", "coco2017/annotations/val_annotations.json"),
}


def register_all_builtin(root: str) -> None:
    """Register the built-in datasets with paths under ``root``."""
    for name, (image_dir, json_file) in _COCO_SPLITS.items():
        register_coco_instances(
            name, coco_instances_metadata(), os.path.join(root, json_file), os.path.join(root, image_dir)
        )
    register_shapes("shapes", os.path.join(root, "shapes"))


_root = os.path.expanduser(os.getenv("MRCNN_DATASETS", "datasets"))
register_all_builtin(_root)
