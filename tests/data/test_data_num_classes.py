"""MODEL.ROI_HEADS.NUM_CLASSES against the dataset: fewer is an error, more a warning, at every loader and evaluator."""

import logging

import pytest

from mrcnn.config import get_cfg
from mrcnn.data import DatasetCatalog, MetadataCatalog, build_detection_test_loader, build_detection_train_loader
from mrcnn.data.num_classes import check_num_classes, dataset_num_classes
from mrcnn.evaluation import COCOEvaluator

NAME = "num_classes_five"
NO_METADATA = "num_classes_no_metadata"


def _dicts(num_classes: int):
    return [
        {
            "file_name": f"/nowhere/{i}.png",  # loaders are built, never iterated: no image is read
            "height": 32,
            "width": 32,
            "image_id": i,
            "annotations": [{"bbox": [1, 1, 8, 8], "bbox_mode": 1, "category_id": i, "iscrowd": 0}],
        }
        for i in range(num_classes)
    ]


@pytest.fixture(scope="module", autouse=True)
def datasets():
    DatasetCatalog.register(NAME, lambda: _dicts(5))
    MetadataCatalog.get(NAME).set(thing_classes=["a", "b", "c", "d", "e"], json_file="", evaluator_type="coco")
    DatasetCatalog.register(NO_METADATA, lambda: _dicts(4))
    yield
    for name in (NAME, NO_METADATA):
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def _cfg(num_classes: int, dataset: str = NAME):
    cfg = get_cfg()
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes
    cfg.DATASETS.TRAIN = (dataset,)
    cfg.DATASETS.TEST = (dataset,)
    cfg.SOLVER.IMS_PER_BATCH = 1
    return cfg


def test_fewer_classes_than_the_dataset_is_an_error_everywhere():
    cfg = _cfg(3)
    expected = (
        r"Dataset 'num_classes_five' has 5 classes but MODEL.ROI_HEADS.NUM_CLASSES is 3: the model could not "
        r"learn or predict classes 3..4. Set MODEL.ROI_HEADS.NUM_CLASSES 5."
    )
    with pytest.raises(ValueError, match=expected):
        build_detection_train_loader(cfg)
    with pytest.raises(ValueError, match=expected):
        build_detection_test_loader(cfg, NAME)
    with pytest.raises(ValueError, match=expected):
        COCOEvaluator(cfg, NAME)


def test_equal_builds_and_more_warns_once(log_messages):
    messages = log_messages("mrcnn.data.num_classes", logging.WARNING)
    build_detection_train_loader(_cfg(5))
    COCOEvaluator(_cfg(5), NAME)
    assert messages == []
    for _ in range(2):
        build_detection_train_loader(_cfg(8))
        build_detection_test_loader(_cfg(8), NAME)
    assert messages == [
        "MODEL.ROI_HEADS.NUM_CLASSES is 8 but dataset 'num_classes_five' has 5 classes; the model has 3 class(es) "
        "the dataset never shows. Intended only when the weights were trained with more classes."
    ]


def test_without_metadata_the_category_ids_count():
    assert dataset_num_classes(NO_METADATA) is None
    assert dataset_num_classes(NO_METADATA, _dicts(4)) == 4
    with pytest.raises(ValueError, match=r"'num_classes_no_metadata' has category ids up to 3 but .* is 2"):
        build_detection_train_loader(_cfg(2, NO_METADATA))
    build_detection_train_loader(_cfg(4, NO_METADATA))
    check_num_classes(1, NO_METADATA)  # no metadata, no dicts: nothing to compare against
