"""Dataset loaders and registration; importing this registers the built-in datasets."""

from . import builtin  # noqa: F401  (registers coco_2017_*, coco2017_seed_*, shapes_*)
from .coco import CocoFormatError, load_coco_json, register_coco_instances
from .synthetic_shapes import SHAPES_CLASSES, ensure_shapes_dataset, generate_shapes_dataset, register_shapes

__all__ = [
    "CocoFormatError",
    "load_coco_json",
    "register_coco_instances",
    "SHAPES_CLASSES",
    "ensure_shapes_dataset",
    "generate_shapes_dataset",
    "register_shapes",
]
