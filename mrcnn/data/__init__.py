"""Data: dataset catalogs, COCO and synthetic datasets, transforms, mappers, samplers and loaders."""

from . import (  # noqa: F401
    datasets,  # noqa: F401  (registers the built-in datasets)
    detection_utils,
    samplers,
    transforms,  # noqa: F401
)
from .build import (
    build_batch_data_loader,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
    trivial_batch_collator,
)
from .catalog import DatasetCatalog, Metadata, MetadataCatalog
from .common import DatasetFromList, MapDataset, num_skipped_images
from .dataset_mapper import MAPPER_REGISTRY, DatasetMapper, build_mapper

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
