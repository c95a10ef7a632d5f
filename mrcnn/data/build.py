"""Build the training and test data loaders from a config."""

import logging
import random
from collections import Counter
from typing import Any, Callable, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.utils.data as torchdata
from tabulate import tabulate

from mrcnn.utils import comm

from .catalog import DatasetCatalog, MetadataCatalog
from .common import DatasetFromList, MapDataset, SampledBatchDataset
from .dataset_mapper import build_mapper
from .num_classes import check_num_classes
from .samplers import InferenceSampler, RepeatFactorTrainingSampler, TrainingSampler

__all__ = [
    "get_detection_dataset_dicts",
    "build_batch_data_loader",
    "build_detection_train_loader",
    "build_detection_test_loader",
    "trivial_batch_collator",
    "worker_init_reset_seed",
]

logger = logging.getLogger(__name__)


def _cfg_value(cfg, dotted: str, default: Any) -> Any:
    node = cfg
    for part in dotted.split("."):
        if not hasattr(node, part):
            return default
        node = getattr(node, part)
    return node


def filter_images_with_only_crowd_annotations(dataset_dicts: List[dict]) -> List[dict]:
    """Keep images with at least one non-crowd annotation."""
    kept = [d for d in dataset_dicts if any(a.get("iscrowd", 0) == 0 for a in d.get("annotations", []))]
    logger.info(f"Removed {len(dataset_dicts) - len(kept)} images with no usable annotations. {len(kept)} images left.")
    return kept


def _log_instance_histogram(dataset_dicts: List[dict], class_names: Optional[Sequence[str]]) -> None:
    counts = Counter(
        a["category_id"] for d in dataset_dicts for a in d.get("annotations", []) if a.get("iscrowd", 0) == 0
    )
    if not counts:
        return
    rows = [
        (class_names[c] if class_names and 0 <= c < len(class_names) else str(c), counts[c]) for c in sorted(counts)
    ]
    rows.append(("total", sum(counts.values())))
    logger.info("Instances per category:\n" + tabulate(rows, headers=["category", "#instances"], tablefmt="pipe"))


def get_detection_dataset_dicts(
    names: Union[str, Sequence[str]], filter_empty: bool = True, proposal_files: Optional[Sequence[str]] = None
) -> List[dict]:
    """The concatenated dataset dicts of registered datasets ``names``.

    With ``filter_empty``, images without any non-crowd annotation are dropped (training).
    Datasets combined must agree on thing_classes. Precomputed proposal files are not supported.
    """
    if proposal_files:
        raise NotImplementedError("Precomputed proposals (DATASETS.PROPOSAL_FILES_*) are not supported")
    if isinstance(names, str):
        names = [names]
    if len(names) == 0:
        raise ValueError("No dataset names given (DATASETS.TRAIN / DATASETS.TEST is empty)")
    per_dataset = [DatasetCatalog.get(name) for name in names]
    for name, dicts in zip(names, per_dataset):
        if len(dicts) == 0:
            raise ValueError(f"Dataset '{name}' is empty")
    classes = [MetadataCatalog.get(name).get("thing_classes") for name in names]
    for name, cls in zip(names[1:], classes[1:]):
        if cls is not None and classes[0] is not None and list(cls) != list(classes[0]):
            raise ValueError(
                f"Datasets '{names[0]}' and '{name}' have different thing_classes; they cannot be combined"
            )
    dataset_dicts = [d for dicts in per_dataset for d in dicts]
    has_annotations = "annotations" in dataset_dicts[0]
    if filter_empty and has_annotations:
        dataset_dicts = filter_images_with_only_crowd_annotations(dataset_dicts)
        if not dataset_dicts:
            raise ValueError(f"No image of {list(names)} has a usable annotation")
    if has_annotations:
        _log_instance_histogram(dataset_dicts, classes[0])
    return dataset_dicts


def trivial_batch_collator(batch: List[Any]) -> List[Any]:
    """Keep a batch as the list of its dicts (images differ in size; the model pads them)."""
    return batch


def _identity(item: Any) -> Any:
    return item


def worker_init_reset_seed(worker_id: int) -> None:
    """Seed numpy and `random` in a loader worker from its torch seed (distinct per worker)."""
    seed = torch.initial_seed() % 2**31
    np.random.seed(seed)
    random.seed(seed)


def _loader_generator(seed: Optional[int]) -> Optional[torch.Generator]:
    """A generator from which the loader derives worker seeds: distinct per rank, fixed by ``seed``."""
    if seed is None or seed < 0:
        return None
    generator = torch.Generator()
    generator.manual_seed(int(seed) + 1_000_003 * comm.get_rank())
    return generator


def build_batch_data_loader(
    dataset: torchdata.Dataset,
    sampler: torchdata.Sampler,
    total_batch_size: int,
    *,
    aspect_ratio_grouping: bool = True,
    num_workers: int = 0,
    seed: Optional[int] = None,
) -> torchdata.DataLoader:
    """A loader yielding lists of ``total_batch_size / world_size`` mapped dicts per rank."""
    world_size = comm.get_world_size()
    if total_batch_size <= 0 or total_batch_size % world_size != 0:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH ({total_batch_size}) must be a positive multiple of the "
            f"number of processes ({world_size})"
        )
    batched = SampledBatchDataset(dataset, sampler, total_batch_size // world_size, aspect_ratio_grouping)
    return torchdata.DataLoader(
        batched,
        batch_size=None,  # SampledBatchDataset already yields whole batches
        num_workers=num_workers,
        collate_fn=_identity,
        worker_init_fn=worker_init_reset_seed,
        generator=_loader_generator(seed),
        prefetch_factor=2 if num_workers > 0 else None,
    )


def _build_train_sampler(cfg, dataset_dicts: List[dict]) -> torchdata.Sampler:
    name = cfg.DATALOADER.SAMPLER_TRAIN
    seed = cfg.SEED if cfg.SEED >= 0 else None  # None: drawn on rank 0 and shared
    logger.info(f"Using training sampler {name}")
    if name == "TrainingSampler":
        return TrainingSampler(len(dataset_dicts), seed=seed)
    if name == "RepeatFactorTrainingSampler":
        factors = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(
            dataset_dicts, cfg.DATALOADER.REPEAT_THRESHOLD
        )
        return RepeatFactorTrainingSampler(factors, seed=seed)
    raise ValueError(
        f"Unknown DATALOADER.SAMPLER_TRAIN '{name}'; expected 'TrainingSampler' or 'RepeatFactorTrainingSampler'"
    )


def _check_model_classes(cfg, dataset_names: Union[str, Sequence[str]], dataset_dicts: List[dict]) -> None:
    num_classes = _cfg_value(cfg, "MODEL.ROI_HEADS.NUM_CLASSES", None)
    if num_classes is not None:
        check_num_classes(int(num_classes), dataset_names, dataset_dicts)


def build_detection_train_loader(
    cfg,
    mapper: Optional[Callable] = None,
    dataset: Optional[List[dict]] = None,
    sampler: Optional[torchdata.Sampler] = None,
) -> torchdata.DataLoader:
    """An endless training loader over DATASETS.TRAIN: each item is a list of IMS_PER_BATCH / world_size
    mapped dicts (see DatasetMapper), grouped by aspect ratio if DATALOADER.ASPECT_RATIO_GROUPING.

    Unreadable images are skipped with a warning (at most DATALOADER.MAX_LOAD_RETRIES in a row).
    A dataset with more classes than MODEL.ROI_HEADS.NUM_CLASSES is an error (fewer: a warning).
    Workers get distinct seeds, reproducible from SEED and the rank when SEED ≥ 0.
    """
    if dataset is None:
        dataset = get_detection_dataset_dicts(cfg.DATASETS.TRAIN, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS)
        _check_model_classes(cfg, cfg.DATASETS.TRAIN, dataset)
    if mapper is None:
        mapper = build_mapper(cfg, True)
    if sampler is None:
        sampler = _build_train_sampler(cfg, dataset)
    mapped = MapDataset(
        DatasetFromList(dataset, copy=False),
        mapper,
        max_retries=int(_cfg_value(cfg, "DATALOADER.MAX_LOAD_RETRIES", 10)),
    )
    return build_batch_data_loader(
        mapped,
        sampler,
        cfg.SOLVER.IMS_PER_BATCH,
        aspect_ratio_grouping=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        seed=cfg.SEED,
    )


def build_detection_test_loader(
    cfg=None,
    dataset_name: Union[str, Sequence[str], None] = None,
    mapper: Optional[Callable] = None,
    *,
    dataset: Optional[List[dict]] = None,
    batch_size: int = 1,
    num_workers: Optional[int] = None,
    sampler: Optional[torchdata.Sampler] = None,
) -> torchdata.DataLoader:
    """A loader over every image of ``dataset_name`` (or the dicts ``dataset``) once, this rank's
    contiguous shard in order; items are lists of ``batch_size`` mapped dicts.

    Without a config, pass ``dataset`` and ``mapper``. A missing or corrupt image is an error
    naming the file; so is a dataset with more classes than MODEL.ROI_HEADS.NUM_CLASSES.
    """
    if dataset is None:
        if dataset_name is None:
            raise ValueError("build_detection_test_loader needs dataset_name or dataset")
        dataset = get_detection_dataset_dicts(dataset_name, filter_empty=False)
        if cfg is not None:
            _check_model_classes(cfg, dataset_name, dataset)
    if mapper is None:
        if cfg is None:
            raise ValueError("build_detection_test_loader needs cfg or mapper")
        mapper = build_mapper(cfg, False)
    if num_workers is None:
        num_workers = cfg.DATALOADER.NUM_WORKERS if cfg is not None else 0
    mapped = MapDataset(DatasetFromList(dataset, copy=False), mapper)
    return torchdata.DataLoader(
        mapped,
        batch_size=batch_size,
        sampler=sampler if sampler is not None else InferenceSampler(len(mapped)),
        drop_last=False,
        num_workers=num_workers,
        collate_fn=trivial_batch_collator,
    )
