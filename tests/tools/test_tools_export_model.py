"""tools/export_model.py writes a model and its json; tools/onnx_predict.py runs it without torch."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from mrcnn.benchmark import natural_image, tiny_config
from mrcnn.modeling import build_model

pytest.importorskip("onnxruntime")

_TOOLS = os.path.join(os.path.dirname(__file__), "..", "..", "tools")


def _load(name):
    spec = importlib.util.spec_from_file_location(f"{name}_tool", os.path.join(_TOOLS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export_model = _load("export_model")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """(config file, weights file) of a tiny Mask R-CNN whose masks are far from the threshold."""
    directory = tmp_path_factory.mktemp("export_tool_model")
    cfg = tiny_config(num_classes=3, image_size=64)
    cfg.DATASETS.TEST = ("shapes_val",)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.3
    config_file = directory / "tiny.yaml"
    config_file.write_text(cfg.dump())
    torch.manual_seed(0)
    model = build_model(cfg)
    weights = directory / "model.pth"
    torch.save({"model": model.state_dict()}, weights)
    return str(config_file), str(weights)


def test_onnx_export_then_the_torch_free_consumer(tiny_model, tmp_path, capsys):
    config_file, weights = tiny_model
    sample = tmp_path / "sample.png"
    Image.fromarray(natural_image(60, 90, seed=4)).save(sample)
    out = tmp_path / "export"
    args = ["--config-file", config_file, "--format", "onnx", "--output", str(out), "--sample-image", str(sample)]
    assert export_model.main(args + ["MODEL.WEIGHTS", weights]) == 0
    assert "Checked in ONNX Runtime" in capsys.readouterr().out
    card = json.loads((out / "model.json").read_text())
    assert card["model_file"] == "model.onnx" and card["onnx_opset"] == 17
    assert card["class_names"] == ["circle", "square", "triangle"]
    assert card["input"]["channel_order"] == "BGR" and card["input"]["dtype"] == "uint8"
    assert [o["name"] for o in card["outputs"]] == ["boxes", "scores", "classes", "masks", "batch_indices"]

    picture = tmp_path / "photo.jpg"
    Image.fromarray(natural_image(70, 50, seed=9)).save(picture)
    (tmp_path / "broken.png").write_text("not an image")
    # a fresh interpreter that cannot import torch: the consumer needs onnxruntime, numpy and Pillow only
    blocker = "import sys; sys.modules['torch'] = None; sys.modules['mrcnn'] = None; sys.argv = sys.argv[1:]; "
    run = [
        sys.executable,
        "-c",
        blocker + f"import runpy; runpy.run_path({os.path.join(_TOOLS, 'onnx_predict.py')!r}, run_name='__main__')",
        "onnx_predict",
        str(out / "model.onnx"),
        str(picture),
        str(tmp_path / "broken.png"),
        "--output",
        str(tmp_path / "drawn"),
        "--confidence-threshold",
        "0.3",
    ]
    result = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr  # one input was not an image
    assert "broken.png" in result.stderr
    with Image.open(tmp_path / "drawn" / "photo.png") as drawn:
        assert drawn.size == (50, 70)
    lines = [line for line in result.stdout.splitlines() if line.startswith(str(picture))]
    assert lines and all(line.split(": ")[1].split()[0] in card["class_names"] for line in lines)


def test_torchscript_export_and_bad_requests(tiny_model, tmp_path, capsys):
    config_file, weights = tiny_model
    out = tmp_path / "ts"
    args = ["--config-file", config_file, "--output", str(out)]
    assert export_model.main(args + ["--format", "torchscript", "MODEL.WEIGHTS", weights]) == 0
    card = json.loads((out / "model.json").read_text())
    assert card["format"] == "torchscript" and "onnx_opset" not in card
    module = torch.jit.load(str(out / "model.ts"))
    with torch.no_grad():
        boxes, scores, classes, masks, batch_indices = module(torch.from_numpy(natural_image(40, 100, seed=2))[None])
    assert masks.shape[1:] == (40, 100) and boxes.shape[0] == scores.shape[0] == masks.shape[0]

    assert export_model.main(args + ["--format", "torchscript", "--export-method", "scripting"]) == 2
    assert "tracing" in capsys.readouterr().err
    missing = str(tmp_path / "missing.jpg")
    assert export_model.main(args + ["--format", "onnx", "--sample-image", missing]) == 2
    assert "missing.jpg" in capsys.readouterr().err
    assert export_model.main(args + ["--format", "onnx", "MODEL.NO_SUCH_KEY", "1"]) == 2
    assert "NO_SUCH_KEY" in capsys.readouterr().err
