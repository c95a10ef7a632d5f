"""Train and test loaders on a tiny shapes dataset, with 0 and 2 workers."""

import copy

import pytest
import torch

from mrcnn.config import get_cfg
from mrcnn.data import (
    DatasetCatalog,
    MetadataCatalog,
    build_batch_data_loader,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from mrcnn.data.common import DatasetFromList
from mrcnn.data.datasets import register_shapes
from mrcnn.data.samplers import TrainingSampler
from mrcnn.structures import Boxes, Instances

NAME = "loader_test_shapes"


@pytest.fixture(scope="module")
def shapes_cfg(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("loader_shapes"))
    register_shapes(NAME, root, num_train=8, num_val=5, image_size=96, seed=1)
    cfg = get_cfg()
    cfg.MODEL.MASK_ON = True  # the loaders keep gt masks for Mask R-CNN
    cfg.DATASETS.TRAIN = (f"{NAME}_train",)
    cfg.DATASETS.TEST = (f"{NAME}_val",)
    cfg.INPUT.MIN_SIZE_TRAIN = (96, 112)
    cfg.INPUT.MAX_SIZE_TRAIN = 200
    cfg.INPUT.MIN_SIZE_TEST = 112
    cfg.INPUT.MAX_SIZE_TEST = 200
    cfg.INPUT.PHOTOMETRIC_DISTORT.ENABLED = True
    cfg.SOLVER.IMS_PER_BATCH = 3
    cfg.SEED = 5
    yield cfg
    for split in ("train", "val"):
        DatasetCatalog.remove(f"{NAME}_{split}")
        MetadataCatalog.remove(f"{NAME}_{split}")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_train_loader_batches(shapes_cfg, num_workers):
    cfg = shapes_cfg.clone()
    cfg.DATALOADER.NUM_WORKERS = num_workers
    loader = build_detection_train_loader(cfg)
    dicts = get_detection_dataset_dicts(cfg.DATASETS.TRAIN)
    names = {d["file_name"] for d in dicts}
    seen = set()
    for batch, _ in zip(loader, range(4)):
        assert isinstance(batch, list) and len(batch) == 3
        for item in batch:
            assert item["image"].dtype == torch.uint8 and item["image"].shape[0] == 3
            assert min(item["image"].shape[1:]) in (96, 112)
            assert (item["height"], item["width"]) == (96, 96) and item["file_name"] in names
            instances = item["instances"]
            assert isinstance(instances, Instances) and isinstance(instances.gt_boxes, Boxes)
            assert len(instances) >= 1 and instances.gt_classes.dtype == torch.int64
            assert instances.image_size == tuple(item["image"].shape[1:])
            assert instances.has("gt_masks")
            seen.add(item["image_id"])
    assert len(seen) >= 5  # 12 samples from the shuffled stream of this tiny dataset


def test_train_loader_is_reproducible_from_seed(shapes_cfg):
    cfg = shapes_cfg.clone()
    cfg.DATALOADER.NUM_WORKERS = 2

    def first_batches():
        loader = build_detection_train_loader(cfg)
        return [b for b, _ in zip(loader, range(2))]

    a, b = first_batches(), first_batches()
    for batch_a, batch_b in zip(a, b):
        for x, y in zip(batch_a, batch_b):
            assert x["image_id"] == y["image_id"] and torch.equal(x["image"], y["image"])
    # another seed gives another stream
    cfg.SEED = 6
    c = first_batches()
    assert any(
        not torch.equal(x["image"], y["image"]) or x["image_id"] != y["image_id"]
        for x, y in zip(a[0] + a[1], c[0] + c[1])
    )


def test_filter_empty_annotations(shapes_cfg):
    all_dicts = get_detection_dataset_dicts(shapes_cfg.DATASETS.TRAIN, filter_empty=False)
    kept = get_detection_dataset_dicts(shapes_cfg.DATASETS.TRAIN, filter_empty=True)
    assert len(kept) == sum(1 for d in all_dicts if d["annotations"])
    with pytest.raises(KeyError, match="not_a_dataset"):
        get_detection_dataset_dicts(["not_a_dataset"])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_test_loader_visits_each_image_once_in_order(shapes_cfg, num_workers):
    loader = build_detection_test_loader(shapes_cfg, shapes_cfg.DATASETS.TEST[0], num_workers=num_workers)
    batches = list(loader)
    expected = [d["image_id"] for d in DatasetCatalog.get(shapes_cfg.DATASETS.TEST[0])]
    assert [b[0]["image_id"] for b in batches] == expected and all(len(b) == 1 for b in batches)
    first = batches[0][0]
    assert first["image"].shape == (3, 112, 112) and (first["height"], first["width"]) == (96, 96)
    assert "instances" not in first


def test_test_loader_missing_image_is_an_error(shapes_cfg, tmp_path):
    dicts = copy.deepcopy(DatasetCatalog.get(shapes_cfg.DATASETS.TEST[0]))
    dicts[2]["file_name"] = str(tmp_path / "vanished.png")
    DatasetCatalog.register("loader_test_missing", lambda: dicts)
    try:
        loader = build_detection_test_loader(shapes_cfg, "loader_test_missing", num_workers=0)
        with pytest.raises(OSError, match="vanished.png"):
            list(loader)
    finally:
        DatasetCatalog.remove("loader_test_missing")


class _SizeOnlyMapper:
    def __call__(self, record):
        return {"image": torch.zeros(3, record["height"], record["width"], dtype=torch.uint8), **record}


@pytest.mark.parametrize("num_workers", [0, 2])
def test_aspect_ratio_grouping(num_workers):
    sizes = [(60, 90), (90, 60)] * 6
    dicts = [{"height": h, "width": w, "image_id": i} for i, (h, w) in enumerate(sizes)]
    from mrcnn.data.common import MapDataset

    dataset = MapDataset(DatasetFromList(dicts), _SizeOnlyMapper())
    loader = build_batch_data_loader(
        dataset, TrainingSampler(len(dicts), seed=0), 4, aspect_ratio_grouping=True, num_workers=num_workers, seed=0
    )
    for batch, _ in zip(loader, range(6)):
        assert len(batch) == 4
        assert len({item["width"] > item["height"] for item in batch}) == 1
    with pytest.raises(ValueError, match="IMS_PER_BATCH"):
        build_batch_data_loader(dataset, TrainingSampler(4, seed=0), 0)


def test_repeat_factor_sampler_from_config(shapes_cfg):
    cfg = shapes_cfg.clone()
    cfg.DATALOADER.SAMPLER_TRAIN = "RepeatFactorTrainingSampler"
    cfg.DATALOADER.REPEAT_THRESHOLD = 0.5
    cfg.DATALOADER.NUM_WORKERS = 0
    batch = next(iter(build_detection_train_loader(cfg)))
    assert len(batch) == 3
    cfg.DATALOADER.SAMPLER_TRAIN = "Nope"
    with pytest.raises(ValueError, match="SAMPLER_TRAIN 'Nope'"):
        build_detection_train_loader(cfg)


def test_test_loader_without_config(shapes_cfg):
    dicts = DatasetCatalog.get(shapes_cfg.DATASETS.TEST[0])[:3]
    from mrcnn.data import DatasetMapper
    from mrcnn.data import transforms as T

    mapper = DatasetMapper(False, augmentations=[T.Resize((50, 60))], image_format="RGB")
    batches = list(build_detection_test_loader(dataset=dicts, mapper=mapper, batch_size=2))
    assert [len(b) for b in batches] == [2, 1]
    assert batches[0][1]["image"].shape == (3, 50, 60) and batches[1][0]["image_id"] == dicts[2]["image_id"]
    with pytest.raises(ValueError, match="dataset_name or dataset"):
        build_detection_test_loader(mapper=mapper)
