"""tools/visualize_data.py: ground truth drawn as loaded and after the training augmentations."""

import importlib.util
import os

import numpy as np
import pytest
import torch
from PIL import Image

from mrcnn.data import DatasetCatalog, MetadataCatalog
from mrcnn.data.datasets.synthetic_shapes import register_shapes
from mrcnn.structures import BitMasks, Boxes, Instances, PolygonMasks
from mrcnn.utils.visualizer import Visualizer, _masks_to_arrays

_TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "visualize_data.py")
spec = importlib.util.spec_from_file_location("visualize_data_tool", _TOOL)
visualize_data = importlib.util.module_from_spec(spec)
spec.loader.exec_module(visualize_data)

PREFIX = "visualize_data_test_shapes"
CONFIG = """
DATASETS: {TRAIN: ["PREFIX_train"], TEST: []}
DATALOADER: {NUM_WORKERS: 0, ASPECT_RATIO_GROUPING: False}
SOLVER: {IMS_PER_BATCH: 2}
INPUT: {MIN_SIZE_TRAIN: [96], MAX_SIZE_TRAIN: 200, RANDOM_FLIP: "horizontal"}
SEED: 3
""".replace("PREFIX", PREFIX)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    """A config over a 4-image shapes dataset of 64 px images, registered once for this module."""
    root = tmp_path_factory.mktemp("vis_shapes")
    if f"{PREFIX}_train" not in DatasetCatalog.list():
        register_shapes(PREFIX, root=str(root), num_train=4, num_val=1, image_size=64, max_instances=3)
    path = root / "config.yaml"
    path.write_text(CONFIG)
    return str(path)


def _gt_masks(dataset_dict, height, width):
    segmentations = [a["segmentation"] for a in dataset_dict["annotations"]]
    return _masks_to_arrays(segmentations, height, width)


def test_annotation_source_draws_every_mask(config_file, tmp_path, capsys):
    output = tmp_path / "annotation"
    assert (
        visualize_data.main(
            ["--config-file", config_file, "--source", "annotation", "--output", str(output), "--num", "3"]
        )
        == 0
    )
    dicts = DatasetCatalog.get(f"{PREFIX}_train")[:3]
    assert sorted(os.listdir(output)) == sorted(
        os.path.splitext(os.path.basename(d["file_name"]))[0] + ".png" for d in dicts
    )
    for dataset_dict in dicts:
        original = np.asarray(Image.open(dataset_dict["file_name"]).convert("RGB"))
        name = os.path.splitext(os.path.basename(dataset_dict["file_name"]))[0] + ".png"
        picture = np.asarray(Image.open(output / name))
        assert picture.shape == original.shape
        changed = np.any(picture != original, axis=2)
        for mask in _gt_masks(dataset_dict, *original.shape[:2]):
            # a semi-transparent fill covers every ground-truth mask pixel
            assert changed[mask].mean() > 0.95
    assert "Wrote 3 pictures" in capsys.readouterr().out


def test_dataloader_source_draws_augmented_images(config_file, tmp_path):
    output = tmp_path / "loader"
    assert (
        visualize_data.main(
            [
                "--config-file",
                config_file,
                "--source",
                "dataloader",
                "--output",
                str(output),
                "--num",
                "3",
                "--opts",
                "INPUT.MIN_SIZE_TRAIN",
                "(96,)",
            ]
        )
        == 0
    )
    names = sorted(os.listdir(output))
    assert len(names) == 3 and all(n.endswith(".png") for n in names)
    for name in names:
        picture = np.asarray(Image.open(output / name))
        assert picture.shape == (96, 96, 3)  # 64 px squares resized to the training size
        # the shapes' class colours (or variations of them) appear: something was drawn
        assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 50
    metadata = MetadataCatalog.get(f"{PREFIX}_train")
    assert list(metadata.thing_classes) == ["circle", "square", "triangle"]


def test_ground_truth_instances_drawn_from_loader_fields():
    image = np.full((40, 60, 3), 100, dtype=np.uint8)
    masks = torch.zeros(1, 40, 60, dtype=torch.bool)
    masks[0, 10:30, 20:50] = True
    for gt_masks in (BitMasks(masks), PolygonMasks([[[20, 10, 50, 10, 50, 30, 20, 30]]])):
        instances = Instances(
            (40, 60),
            gt_boxes=Boxes(torch.tensor([[20.0, 10.0, 50.0, 30.0]])),
            gt_classes=torch.tensor([1]),
            gt_masks=gt_masks,
        )
        picture = Visualizer(image).draw_ground_truth_instances(instances).get_image()
        assert np.all(np.any(picture[13:27, 23:47] != 100, axis=2))
        assert np.all(picture[:, :15] == 100)


def test_missing_config_is_reported(tmp_path, capsys):
    assert (
        visualize_data.main(
            ["--config-file", str(tmp_path / "nope.yaml"), "--source", "annotation", "--output", str(tmp_path)]
        )
        == 2
    )
    assert "nope.yaml" in capsys.readouterr().err
