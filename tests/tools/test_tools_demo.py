"""tools/demo.py on two images and a file that is not one: pictures, predictions.json and a clear message."""

import importlib.util
import json
import os
import warnings

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from PIL import Image

from mrcnn.config import get_cfg
from mrcnn.model_zoo import get_config_file
from mrcnn.modeling import build_model

_TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "demo.py")
spec = importlib.util.spec_from_file_location("demo_tool", _TOOL)
demo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo)

TINY_MODEL_YAML = (
    f'_BASE_: "{get_config_file("Base-RCNN-FPN.yaml")}"\n'
    + """
MODEL:
  MASK_ON: True
  RESNETS: {DEPTH: 18, RES2_OUT_CHANNELS: 64}
  FPN: {OUT_CHANNELS: 32}
  RPN: {PRE_NMS_TOPK_TEST: 200, POST_NMS_TOPK_TEST: 50}
  ROI_HEADS: {NUM_CLASSES: 3}
  ROI_BOX_HEAD: {NUM_FC: 2, FC_DIM: 64}
  ROI_MASK_HEAD: {NUM_CONV: 1, CONV_DIM: 32}
INPUT: {MIN_SIZE_TEST: 64, MAX_SIZE_TEST: 128}
DATASETS: {TEST: ["shapes_val"]}
TEST: {DETECTIONS_PER_IMAGE: 10}
"""
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """(config file, weights file) of a randomly initialised tiny Mask R-CNN."""
    directory = tmp_path_factory.mktemp("demo_model")
    config_file = directory / "tiny.yaml"
    config_file.write_text(TINY_MODEL_YAML)
    cfg = get_cfg()
    cfg.merge_from_file(str(config_file))
    torch.manual_seed(0)
    weights = directory / "model.pth"
    torch.save({"model": build_model(cfg).state_dict()}, weights)
    return str(config_file), str(weights)


def test_two_images_and_a_non_image(tiny_model, tmp_path, capsys):
    config_file, weights = tiny_model
    rng = np.random.default_rng(0)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    sizes = {"first": (60, 90), "second": (120, 100)}
    Image.fromarray(rng.integers(0, 256, size=(*sizes["first"], 3), dtype=np.uint8)).save(inputs / "first.png")
    Image.fromarray(rng.integers(0, 256, size=(*sizes["second"], 3), dtype=np.uint8)).save(inputs / "second.jpg")
    (inputs / "notes.png").write_text("this is text, not a picture")
    output = tmp_path / "out"

    code = demo.main(
        [
            "--config-file",
            config_file,
            "--input",
            str(inputs / "*.png"),
            str(inputs / "second.jpg"),
            str(inputs / "missing.jpg"),
            "--output",
            str(output),
            "--confidence-threshold",
            "0.0",
            "--opts",
            "MODEL.WEIGHTS",
            weights,
        ]
    )
    captured = capsys.readouterr()
    assert code == 1  # two inputs could not be used: the exit code says so, the others are written
    assert sorted(os.listdir(output)) == ["first.png", "predictions.json", "second.jpg"]
    for name, extension in (("first", ".png"), ("second", ".jpg")):
        with Image.open(output / (name + extension)) as picture:
            assert picture.size == sizes[name][::-1]
            assert picture.format == ("PNG" if extension == ".png" else "JPEG")
        assert f"{name}{extension}: " in captured.out and " detections" in captured.out
    # the file that is not an image and the missing one are named, with the reason
    assert "notes.png" in captured.err and "not a readable image" in captured.err
    assert "missing.jpg" in captured.err

    results = json.loads((output / "predictions.json").read_text())
    assert {r["image_id"] for r in results} == {"first", "second"}
    for result in results:
        height, width = sizes[result["image_id"]]
        x, y, w, h = result["bbox"]
        assert 0 <= x and 0 <= y and w >= 0 and h >= 0 and x + w <= width + 0.01 and y + h <= height + 0.01
        assert 0.0 <= result["score"] <= 1.0
        assert result["category_id"] in (1, 2, 3)  # shapes' dataset ids, not contiguous 0..2
        rle = {"size": result["segmentation"]["size"], "counts": result["segmentation"]["counts"].encode()}
        with warnings.catch_warnings():  # pycocotools' decode trips a numpy 2 deprecation warning
            warnings.simplefilter("ignore", DeprecationWarning)
            mask = mask_util.decode(rle)
        assert mask.shape == (height, width)
    assert sum(r["image_id"] == "first" for r in results) == 10  # TEST.DETECTIONS_PER_IMAGE, threshold 0


def test_threshold_filters_and_nothing_readable_fails(tiny_model, tmp_path, capsys):
    config_file, weights = tiny_model
    image_path = tmp_path / "image.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(image_path)
    code = demo.main(
        [
            "--config-file",
            config_file,
            "--input",
            str(tmp_path),
            "--output",
            str(tmp_path / "high"),
            "--confidence-threshold",
            "1.01",
            "--opts",
            "MODEL.WEIGHTS",
            weights,
        ]
    )
    assert code == 0
    assert json.loads((tmp_path / "high" / "predictions.json").read_text()) == []
    assert "image.png: 0 detections" in capsys.readouterr().out
    assert (tmp_path / "high" / "image.png").is_file()

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    assert (
        demo.main(
            [
                "--config-file",
                config_file,
                "--input",
                str(bad),
                "--output",
                str(tmp_path / "none"),
                "--opts",
                "MODEL.WEIGHTS",
                weights,
            ]
        )
        == 1
    )
    assert "bad.jpg" in capsys.readouterr().err


def test_input_expansion_and_unique_ids(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for directory in ("a", "b"):
        (tmp_path / directory / "x.png").write_bytes(b"")
        (tmp_path / directory / "labels.json").write_text("{}")
    paths, problems = demo.expand_inputs(
        [str(tmp_path / "a"), str(tmp_path / "b" / "*.png"), str(tmp_path / "nope*.jpg")]
    )
    assert paths == [str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png")]  # directories list images only
    assert len(problems) == 1 and "nope*.jpg" in problems[0]
    used = {}
    assert [demo._unique_name("x", used) for _ in range(3)] == ["x", "x_2", "x_3"]


def test_a_missing_plugin_is_named(tiny_model, tmp_path, capsys):
    config_file, weights = tiny_model
    code = demo.main(
        [
            "--config-file",
            config_file,
            "--input",
            str(tmp_path),
            "--output",
            str(tmp_path / "out"),
            "--opts",
            "MODEL.PLUGINS",
            "('projects.no_such_plugin',)",
        ]
    )
    assert code == 2
    assert "projects.no_such_plugin" in capsys.readouterr().err
