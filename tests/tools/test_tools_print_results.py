"""tools/print_results.py: tables from eval_results.json and the list of outputs."""

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool():
    spec = importlib.util.spec_from_file_location("print_results", os.path.join(ROOT, "tools", "print_results.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prints_box_and_mask_ap_and_outputs(tmp_path, capsys):
    results = {
        "shapes_val": {
            "bbox": {"AP": 81.234, "AP50": 97.0, "AP75": 90.0, "APs": 70.0, "APm": 85.0, "APl": None},
            "segm": {"AP": 83.5, "AP50": 96.0, "AP75": 91.0, "APs": 72.0, "APm": 88.0, "APl": None},
        }
    }
    (tmp_path / "eval_results.json").write_text(json.dumps(results))
    (tmp_path / "model_final.pth").write_bytes(b"x")
    assert _tool().main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "shapes_val" in out and "81.2" in out and "83.5" in out
    assert "model_final.pth" in out


def test_missing_results_is_a_clear_error(tmp_path, capsys):
    assert _tool().main([str(tmp_path)]) == 1
    assert "eval_results.json not found" in capsys.readouterr().err
