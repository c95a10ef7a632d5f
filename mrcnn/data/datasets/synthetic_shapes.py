"""A synthetic instance-segmentation dataset of circles, squares and triangles, written as COCO json.

It lets every part of the library run without downloads. Each image has a textured, noisy
background and 0..``max_instances`` shapes of varied sizes and colours; later shapes occlude
earlier ones and each instance's mask is its *visible* part. A shape left with too little of
itself visible is not drawn at all, so every painted shape is labelled.

Masks are rasterized from polygons by pycocotools (the same rasterizer that decodes the json),
and the image is painted from those masks, so the json reproduces the rendered masks exactly.
An instance nothing covers is written as its polygon (exercising the polygon path); an occluded
one as compressed RLE of its visible pixels. bbox is the visible mask's pixel extent [x, y, w, h]
and area its pixel count. Output is deterministic given the seed.

Layout: ``{root}/train/*.png``, ``{root}/val/*.png``, ``{root}/annotations/instances_{train,val}.json``.
Command line: ``python -m mrcnn.data.datasets.shapes --output datasets/shapes`` (see shapes.py).
"""

import contextlib
import json
import logging
import math
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from mrcnn.structures import polygons_to_bitmask

from ..catalog import DatasetCatalog, MetadataCatalog
from .coco import load_coco_json

__all__ = [
    "SHAPES_CLASSES",
    "SHAPES_COLORS",
    "render_shapes_sample",
    "generate_shapes_dataset",
    "ensure_shapes_dataset",
    "register_shapes",
    "shapes_json_path",
]

logger = logging.getLogger(__name__)

SHAPES_CLASSES = ("circle", "square", "triangle")  # COCO category ids 1..3 in this order
SHAPES_COLORS = ((220, 20, 60), (0, 130, 200), (60, 180, 75))  # for visualization only
_SPLIT_INDEX = {"train": 0, "val": 1}


def _shape_polygon(rng: np.random.Generator, category: str, cx: float, cy: float, radius: float) -> np.ndarray:
    """Vertices (K, 2) of a shape with circumradius ``radius`` centred at (cx, cy)."""
    if category == "circle":
        num_vertices = int(np.clip(round(2 * math.pi * radius / 2), 16, 64))
        angles = np.linspace(0, 2 * math.pi, num_vertices, endpoint=False)
    elif category == "square":
        rotation = 0.0 if rng.random() < 0.5 else rng.uniform(0, math.pi / 2)
        angles = rotation + math.pi / 4 + np.arange(4) * math.pi / 2
    elif category == "triangle":
        angles = rng.uniform(0, 2 * math.pi) + np.arange(3) * 2 * math.pi / 3
        angles = angles + rng.uniform(-0.15, 0.15, size=3)  # not always equilateral
    else:
        raise ValueError(f"unknown shape category '{category}'")
    points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
    # rounded before rasterizing, so the rounded numbers written to json give the same mask
    return np.round(points, 2)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random colour field plus pixel noise, (size, size, 3) float."""
    base = rng.uniform(30, 225, size=3)
    coarse = rng.uniform(-1, 1, size=(4, 4, 3))
    # upsample a tiny random grid for low-frequency texture
    smooth = np.stack(
        [
            np.asarray(Image.fromarray(coarse[..., c].astype(np.float32)).resize((size, size), Image.BILINEAR))
            for c in range(3)
        ],
        axis=-1,
    )
    stripes = np.sin(np.arange(size) * rng.uniform(0.2, 0.8) + rng.uniform(0, 2 * math.pi))
    texture = smooth * rng.uniform(15, 40) + stripes[None, :, None] * rng.uniform(0, 8)
    return base + texture + rng.normal(0, 6, size=(size, size, 3))


def _distinct_color(rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    color = rng.uniform(0, 255, size=3)
    for _ in range(30):
        if np.linalg.norm(color - avoid) >= 90:
            break
        color = rng.uniform(0, 255, size=3)
    return color


def render_shapes_sample(
    seed: int, split: str, index: int, image_size: int = 128, max_instances: int = 5
) -> Tuple[np.ndarray, List[Dict[str, Any]]]:
    """Render image ``index`` of ``split``: returns (HWC uint8 RGB image, instances).

    Each instance is a dict with category_id (1..3), mask (visible part, (H, W) bool),
    full_mask (the whole shape) and polygon (flat list, the shape's outline).
    """
    rng = np.random.default_rng([seed, _SPLIT_INDEX[split], index])
    size = image_size
    image = _background(rng, size)
    num = 0 if rng.random() < 0.1 else int(rng.integers(1, max_instances + 1))
    min_radius, max_radius = max(4.0, 0.04 * size), 0.3 * size
    candidates = []
    for _ in range(num):
        category_index = int(rng.integers(len(SHAPES_CLASSES)))
        radius = float(np.exp(rng.uniform(math.log(min_radius), math.log(max_radius))))
        cx, cy = rng.uniform(radius + 1, size - radius - 1, size=2)
        polygon = _shape_polygon(rng, SHAPES_CLASSES[category_index], cx, cy, radius)
        full_mask = polygons_to_bitmask([polygon.reshape(-1)], size, size)
        if full_mask.sum() < 10:
            continue
        color = _distinct_color(rng, image.mean(axis=(0, 1)))
        candidates.append(
            {
                "category_id": category_index + 1,
                "full_mask": full_mask,
                "polygon": polygon.reshape(-1).tolist(),
                "color": color,
            }
        )

    # drop the least visible shape until each kept one shows at least a fifth of itself
    while candidates:
        visible = _visible_masks([c["full_mask"] for c in candidates])
        fractions = [v.sum() / c["full_mask"].sum() for v, c in zip(visible, candidates)]
        worst = int(np.argmin(fractions))
        if fractions[worst] >= 0.2 and visible[worst].sum() >= 12:
            break
        candidates.pop(worst)

    visible = _visible_masks([c["full_mask"] for c in candidates])
    instances = []
    for candidate, mask in zip(candidates, visible):
        shading = rng.normal(0, 5, size=(size, size, 1))
        image = np.where(candidate["full_mask"][..., None], candidate["color"] + shading, image)
        instances.append(
            {
                "category_id": candidate["category_id"],
                "mask": mask,
                "full_mask": candidate["full_mask"],
                "polygon": candidate["polygon"],
            }
        )
    return np.clip(np.round(image), 0, 255).astype(np.uint8), instances


def _visible_masks(full_masks: List[np.ndarray]) -> List[np.ndarray]:
    """Each mask minus every mask drawn after it."""
    visible = []
    covered = np.zeros_like(full_masks[0]) if full_masks else None
    for mask in reversed(full_masks):
        visible.append(mask & ~covered)
        covered = covered | mask
    return visible[::-1]


def _annotation(instance: Dict[str, Any], image_id: int, ann_id: int) -> Dict[str, Any]:
    mask = instance["mask"]
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    bbox = [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]
    if np.array_equal(mask, instance["full_mask"]):
        segmentation: Any = [instance["polygon"]]
    else:
        rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
        segmentation = {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": instance["category_id"],
        "bbox": bbox,
        "area": int(mask.sum()),
        "iscrowd": 0,
        "segmentation": segmentation,
    }


def shapes_json_path(root: str, split: str) -> str:
    """Path of the annotation json of ``split`` ("train" or "val") under ``root``."""
    return os.path.join(root, "annotations", f"instances_{split}.json")


def _generate_split(root: str, split: str, num_images: int, image_size: int, seed: int, max_instances: int) -> None:
    image_dir = os.path.join(root, split)
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        image, instances = render_shapes_sample(seed, split, index, image_size, max_instances)
        file_name = f"{index:06d}.png"
        Image.fromarray(image).save(os.path.join(image_dir, file_name))
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "height": image_size, "width": image_size})
        for instance in instances:
            annotations.append(_annotation(instance, image_id, len(annotations) + 1))
    data = {
        "info": {
            "description": "mrcnn synthetic shapes",
            "split": split,
            "num_images": num_images,
            "image_size": image_size,
            "seed": seed,
            "max_instances": max_instances,
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(SHAPES_CLASSES)],
    }
    json_file = shapes_json_path(root, split)
    temporary = f"{json_file}.tmp{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(temporary, json_file)  # the json appears only once complete: it marks the split done


def generate_shapes_dataset(
    output: str,
    num_train: int = 1000,
    num_val: int = 100,
    image_size: int = 128,
    seed: int = 0,
    max_instances: int = 5,
) -> None:
    """Write the train and val splits under ``output`` (overwriting files of the same names)."""
    if image_size < 32:
        raise ValueError(f"shapes image_size must be at least 32, got {image_size}")
    for split, num_images in (("train", num_train), ("val", num_val)):
        _generate_split(output, split, num_images, image_size, seed, max_instances)
    logger.info(f"Wrote synthetic shapes dataset ({num_train} train, {num_val} val, {image_size}px) to {output}")


@contextlib.contextmanager
def _file_lock(path: str):
    """An exclusive lock between processes (a no-op where fcntl is unavailable)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_shapes_dataset(
    root: str,
    num_train: int = 1000,
    num_val: int = 100,
    image_size: int = 128,
    seed: int = 0,
    max_instances: int = 5,
) -> None:
    """Generate the dataset under ``root`` unless both jsons exist; safe for concurrent processes."""
    wanted = {"train": num_train, "val": num_val}
    if all(os.path.isfile(shapes_json_path(root, s)) for s in wanted):
        return
    os.makedirs(root, exist_ok=True)
    with _file_lock(os.path.join(root, ".generate.lock")):
        # another process may have finished while we waited for the lock
        for split, num_images in wanted.items():
            if not os.path.isfile(shapes_json_path(root, split)):
                logger.info(f"Generating synthetic shapes {split} split ({num_images} images) in {root}")
                _generate_split(root, split, num_images, image_size, seed, max_instances)


def _check_parameters(json_file: str, expected: Dict[str, int]) -> None:
    with open(json_file, encoding="utf-8") as f:
        info = json.load(f).get("info", {})
    differing = {k: (info.get(k), v) for k, v in expected.items() if info.get(k) != v}
    if differing:
        details = ", ".join(f"{k}: on disk {old}, requested {new}" for k, (old, new) in differing.items())
        logger.warning(
            f"{json_file} was generated with other parameters ({details}); "
            "using it as is. Delete the folder to regenerate."
        )


def register_shapes(
    name_prefix: str = "shapes",
    root: Optional[str] = None,
    num_train: int = 1000,
    num_val: int = 100,
    image_size: int = 128,
    seed: int = 0,
    max_instances: int = 5,
) -> None:
    """Register ``{name_prefix}_train`` and ``{name_prefix}_val``, generated under ``root`` on first use."""
    if root is None:
        root = os.path.join(os.path.expanduser(os.getenv("MRCNN_DATASETS", "datasets")), name_prefix)
    params = dict(num_train=num_train, num_val=num_val, image_size=image_size, seed=seed, max_instances=max_instances)
    for split, num_images in (("train", num_train), ("val", num_val)):
        name = f"{name_prefix}_{split}"
        json_file, image_root = shapes_json_path(root, split), os.path.join(root, split)

        def load(name=name, json_file=json_file, image_root=image_root, split=split, num_images=num_images):
            ensure_shapes_dataset(root, **params)
            _check_parameters(json_file, {"num_images": num_images, "image_size": image_size, "seed": seed})
            return load_coco_json(json_file, image_root, name)

        DatasetCatalog.register(name, load)
        MetadataCatalog.get(name).set(
            thing_classes=list(SHAPES_CLASSES),
            thing_dataset_id_to_contiguous_id={i + 1: i for i in range(len(SHAPES_CLASSES))},
            thing_colors=[list(c) for c in SHAPES_COLORS],
            json_file=json_file,
            image_root=image_root,
            evaluator_type="coco",
        )
