"""Data: dataset catalogs, COCO and synthetic datasets, transforms, mappers, samplers and loaders."""
from . import transforms  # noqa: F401
from .catalog import DatasetCatalog, Metadata, MetadataCatalog
from . import datasets  # noqa: F401  (registers the built-in datasets)
from .build import (
    build_batch_data_loader,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
    trivial_batch_collator,
)
from .common import DatasetFromList, MapDataset, num_skipped_images
from .dataset_mapper import MAPPER_REGISTRY, DatasetMapper, build_mapper
from . import detection_utils, samplers  # noqa: F401

__all__ = [
    "DatasetCatalog",
    "MetadataCatalog",
    "Metadata",
    "DatasetMapper",
    "MAPPER_REGISTRY",
    "build_mapper",
    "build_batch_data_loader",
    "build_detection_train_loader",
    "build_detection_test_loader",
    "get_detection_dataset_dicts",
    "trivial_batch_collator",
    "DatasetFromList",
    "MapDataset",
    "num_skipped_images",
    "transforms",
    "datasets",
    "detection_utils",
    "samplers",
]
