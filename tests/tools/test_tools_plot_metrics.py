"""tools/plot_metrics.py: metrics.json (with a truncated last line) → losses.png, lr.png, ap.png."""

import importlib.util
import json
import os

import numpy as np
from PIL import Image

_TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "plot_metrics.py")
spec = importlib.util.spec_from_file_location("plot_metrics_tool", _TOOL)
plot_metrics = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plot_metrics)


def _write_metrics(directory, with_ap: bool = True) -> None:
    rows = []
    for iteration in range(20):
        rows.append(
            {
                "iteration": iteration,
                "total_loss": 3.0 - 0.1 * iteration,
                "loss_cls": 1.0 - 0.02 * iteration,
                "loss_mask": 0.7,
                "lr": 0.01 * min(1.0, (iteration + 1) / 5),
                "time": 0.2,
                "eta_seconds": 3.0,
            }
        )
        if with_ap and iteration in (9, 19):
            rows.append(
                {
                    "iteration": iteration,
                    "bbox/AP": 10.0 + iteration,
                    "bbox/AP50": 30.0 + iteration,
                    "segm/AP": 8.0 + iteration,
                    "segm/AP-circle": 5.0,
                }
            )
    rows.append({"iteration": 19, "total_loss": 0.5})  # a resumed run repeats iteration 19
    text = "\n".join(json.dumps(r) for r in rows) + '\n{"iteration": 20, "total_lo'  # killed mid-write
    (directory / "metrics.json").write_text(text)


def test_reads_series_and_ignores_a_truncated_line(tmp_path):
    _write_metrics(tmp_path)
    series, bad_lines = plot_metrics.read_metrics(str(tmp_path / "metrics.json"))
    assert bad_lines == 1
    assert sorted(series["loss_cls"]) == list(range(20))
    assert series["loss_cls"][10] == 1.0 - 0.2
    assert series["total_loss"][19] == 0.5  # the later row wins
    assert series["bbox/AP"] == {9: 19.0, 19: 29.0}
    assert [k for k in sorted(series) if plot_metrics.is_loss_key(k)] == ["loss_cls", "loss_mask", "total_loss"]
    assert [k for k in sorted(series) if plot_metrics.is_ap_key(k)] == [
        "bbox/AP",
        "bbox/AP50",
        "segm/AP",
        "segm/AP-circle",
    ]
    assert plot_metrics.is_loss_key("val/total_loss") and not plot_metrics.is_ap_key("lr")


def test_writes_the_three_pngs(tmp_path, capsys):
    _write_metrics(tmp_path)
    plots = tmp_path / "plots"
    assert plot_metrics.main([str(tmp_path), "--output", str(plots)]) == 0
    for name in ("losses.png", "lr.png", "ap.png"):
        with Image.open(plots / name) as image:
            assert image.format == "PNG"
            pixels = np.asarray(image.convert("RGB"))
        assert pixels.shape[0] >= 300 and pixels.shape[1] >= 600
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10  # lines and text, not a blank canvas
    # the AP figure has one panel per task (bbox, segm), so it is twice as wide as one panel
    with Image.open(plots / "ap.png") as ap, Image.open(plots / "losses.png") as losses:
        assert ap.size[0] > losses.size[0]
    assert "unreadable" in capsys.readouterr().err


def test_many_per_category_ap_values_are_left_out(tmp_path):
    series = {f"bbox/AP-class{i}": {0: float(i)} for i in range(30)}
    series["bbox/AP"] = {0: 1.0, 10: 2.0}
    series.update({"segm/AP": {0: 3.0}, "segm/AP-a": {0: 1.0}, "segm/AP-b": {0: 2.0}})
    assert plot_metrics.ap_curves(series) == {"bbox": ["bbox/AP"], "segm": ["segm/AP", "segm/AP-a", "segm/AP-b"]}
    assert plot_metrics.plot_ap(series, str(tmp_path / "ap.png")) and (tmp_path / "ap.png").is_file()


def test_without_ap_values_skips_ap_png(tmp_path, capsys):
    _write_metrics(tmp_path, with_ap=False)
    assert plot_metrics.main([str(tmp_path)]) == 0
    assert (tmp_path / "losses.png").is_file() and (tmp_path / "lr.png").is_file()
    assert not (tmp_path / "ap.png").exists()
    assert "ap.png" in capsys.readouterr().err


def test_missing_metrics_file_is_named(tmp_path, capsys):
    assert plot_metrics.main([str(tmp_path)]) == 1
    assert "metrics.json" in capsys.readouterr().err
