"""tools/compare_precision.py: float32 runs (fast paths on and off) of a calibrated zoo model
against float64, on a narrow C4 model and a small image."""

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NARROW = [
    "MODEL.RESNETS.STEM_OUT_CHANNELS", "16",
    "MODEL.RESNETS.RES2_OUT_CHANNELS", "32",
    "MODEL.RESNETS.WIDTH_PER_GROUP", "8",
    "MODEL.ROI_HEADS.NUM_CLASSES", "5",
    "MODEL.ANCHOR_GENERATOR.SIZES", "[[16, 32, 64]]",
    "MODEL.RPN.POST_NMS_TOPK_TEST", "40",
    "TEST.DETECTIONS_PER_IMAGE", "20",
]  # fmt: skip


def _tool():
    spec = importlib.util.spec_from_file_location(
        "compare_precision", os.path.join(ROOT, "tools", "compare_precision.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_float32_runs_of_a_c4_model_share_their_detections_with_float64(tmp_path, capsys):
    output = tmp_path / "precision.json"
    config = "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_1x.yaml"
    assert (
        _tool().main(["--config-file", config, "--height", "96", "--width", "128", "--output", str(output)] + NARROW)
        == 0
    )
    report = json.loads(output.read_text())
    assert report == json.loads(capsys.readouterr().out)
    assert report["float64_detections"] == 20 and report["fast_vs_plain_shared"] == 20
    for run in ("fast", "plain"):
        assert report[run]["detections"] == report[run]["shared_with_float64"] == 20, report[run]["not_shared"]
        assert report[run]["largest_shared_box_difference_px"] < 0.01
        assert report[run]["largest_shared_score_difference"] < 1e-4
        assert set(report[run]["feature_error_vs_float64"]) == {"res4"}
        assert 0 < report[run]["feature_error_vs_float64"]["res4"] < 1e-4  # float32 rounding, not zero
