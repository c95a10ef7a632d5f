"""Files written atomically get the umask's permissions, like the log files, not the temporary's 0600."""

import logging
import os
import stat

import numpy as np
import pytest
from PIL import Image
from torch import nn

from mrcnn.checkpoint import DetectionCheckpointer, atomic_write_text
from mrcnn.config import get_cfg
from mrcnn.data import DatasetCatalog, MetadataCatalog
from mrcnn.engine import DefaultTrainer, default_setup
from mrcnn.evaluation.evaluator import DatasetEvaluator
from mrcnn.utils.atomic_save import current_umask


@pytest.fixture
def umask():
    """``umask(mask)`` sets the process umask until the test ends."""
    original = os.umask(0o022)
    os.umask(original)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(original)


@pytest.fixture
def restored_loggers():
    """default_setup makes the library's loggers stop propagating (and adds handlers): undo that, so
    that later tests' caplog still sees their records."""
    loggers = [logging.getLogger(name) for name in ("mrcnn", "fvcore")]
    saved = [(logger, list(logger.handlers), logger.level, logger.propagate) for logger in loggers]
    yield
    for logger, handlers, level, propagate in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_checkpoints_and_last_checkpoint_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    assert current_umask() == mask
    DetectionCheckpointer(nn.Linear(2, 2), str(tmp_path)).save("model_0000004")
    expected = 0o666 & ~mask
    assert _mode(tmp_path / "model_0000004.pth") == expected
    assert _mode(tmp_path / "last_checkpoint") == expected
    atomic_write_text(str(tmp_path / "notes.txt"), "x")
    assert _mode(tmp_path / "notes.txt") == expected
    with open(tmp_path / "plain.txt", "w") as f:  # what an ordinary open() gives, as for log files
        f.write("x")
    assert _mode(tmp_path / "plain.txt") == expected


class _CountingEvaluator(DatasetEvaluator):
    def reset(self):
        self.count = 0

    def process(self, inputs, outputs):
        self.count += len(inputs)

    def evaluate(self):
        return {"images": {"count": self.count}}


class _NoModel(nn.Module):
    def forward(self, inputs):
        return [{} for _ in inputs]


def test_config_yaml_and_eval_results_like_the_log(tmp_path, umask, restored_loggers):
    """The trainer's own writers: config.yaml (default_setup), eval_results.json (test) and log.txt."""
    umask(0o027)
    image = tmp_path / "one.png"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(image)
    name = "file_modes_one_image"
    DatasetCatalog.register(name, lambda: [{"file_name": str(image), "height": 8, "width": 8, "image_id": 1}])
    try:
        cfg = get_cfg()
        cfg.OUTPUT_DIR = str(tmp_path / "out")
        cfg.DATASETS.TEST = (name,)
        cfg.INPUT.MIN_SIZE_TEST = 8
        default_setup(cfg)
        results = DefaultTrainer.test(cfg, _NoModel(), [_CountingEvaluator()])
        assert results == {"images": {"count": 1}}
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    out = tmp_path / "out"
    assert _mode(out / "log.txt") == 0o640
    assert _mode(out / "config.yaml") == 0o640
    assert _mode(out / "eval_results.json") == 0o640


def test_cached_coco_json_follows_the_umask(tmp_path, umask):
    from mrcnn.evaluation.coco_conversion import convert_to_coco_json

    umask(0o022)
    name = "file_modes_coco_cache"
    DatasetCatalog.register(
        name,
        lambda: [
            {
                "file_name": "a.png",
                "height": 8,
                "width": 8,
                "image_id": 1,
                "annotations": [{"bbox": [1, 1, 3, 3], "bbox_mode": 1, "category_id": 0}],
            }
        ],
    )
    MetadataCatalog.get(name).set(thing_classes=["thing"])
    try:
        path = convert_to_coco_json(name, cache_dir=str(tmp_path / "cache"))
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    assert _mode(path) == 0o644
