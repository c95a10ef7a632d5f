"""tools/benchmark.py --compare onnxruntime on the shapes demo model: the eager model and its ONNX
export time side by side and agree (nothing here is a timing assertion)."""

import importlib.util
import json
import os

import pytest

pytest.importorskip("onnxruntime")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_shapes_model_in_onnxruntime_beside_eager(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("benchmark_tool_ort", os.path.join(ROOT, "tools", "benchmark.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    output = tmp_path / "result.json"
    flags = ["--config-file", os.path.join(ROOT, "configs", "shapes", "mask_rcnn_shapes.yaml")]
    flags += ["--task", "inference", "--compare", "onnxruntime", "--height", "96", "--width", "128"]
    flags += ["--iters", "2", "--warmup", "0", "--ort-opt-level", "extended", "--output", str(output)]
    # a random shapes model scores about 1/4 everywhere: threshold 0 keeps TEST.DETECTIONS_PER_IMAGE (50)
    assert tool.main(flags + ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    results = json.loads(output.read_text())["results"]
    assert printed[-1].startswith("inference 96x128") and "onnxruntime (extended)" in printed[-1]
    for name in ("mrcnn", "onnxruntime"):
        assert results[name]["iterations"] == 2 and results[name]["ms_per_image"] > 0
    assert results["ratio"] == pytest.approx(results["onnxruntime"]["ms_per_image"] / results["mrcnn"]["ms_per_image"])
    agreement = results["agreement"]
    assert agreement["expected_count"] == 50 and agreement["agree"], agreement
    assert results["onnx_file_mb"] > 0
