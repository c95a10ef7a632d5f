"""tools/demo.py: video input (a tiny video written here with PyAV), detections filtered before
their masks are pasted, and one failing image that costs the others nothing."""

import importlib.util
import os

import numpy as np
import pytest
import torch
from PIL import Image

from mrcnn.benchmark import tiny_config
from mrcnn.config import get_cfg
from mrcnn.engine.predictor import DefaultPredictor
from mrcnn.modeling import build_model

av = pytest.importorskip("av")

_TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "demo.py")
spec = importlib.util.spec_from_file_location("demo_tool_video", _TOOL)
demo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """(config file, weights file) of a randomly initialised tiny Mask R-CNN."""
    directory = tmp_path_factory.mktemp("demo_video_model")
    cfg = tiny_config(num_classes=3, image_size=64)
    cfg.TEST.DETECTIONS_PER_IMAGE = 10
    config_file = directory / "tiny.yaml"
    config_file.write_text(cfg.dump())
    torch.manual_seed(0)
    weights = directory / "model.pth"
    torch.save({"model": build_model(cfg).state_dict()}, weights)
    return str(config_file), str(weights)


def write_video(path, num_frames=5, height=48, width=64):
    """A tiny mpeg4 video of moving squares."""
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=10)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    for index in range(num_frames):
        frame = np.full((height, width, 3), 40, dtype=np.uint8)
        frame[10:30, 5 + 6 * index : 25 + 6 * index] = (220, 60, 60)
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def test_video_is_annotated_frame_by_frame(tiny_model, tmp_path, capsys):
    config_file, weights = tiny_model
    video = tmp_path / "clip.mp4"
    write_video(video)
    args = ["--config-file", config_file, "--video-input", str(video), "--output", str(tmp_path / "out")]
    code = demo.main(args + ["--batch-size", "2", "--confidence-threshold", "0.0", "--opts", "MODEL.WEIGHTS", weights])
    assert code == 0
    written = tmp_path / "out" / "clip.mp4"
    assert "Wrote 5 annotated frames" in capsys.readouterr().out
    with av.open(str(written)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == (48, 64, 3)
    with av.open(str(video)) as container:
        original = container.decode(video=0).__next__().to_ndarray(format="rgb24")
    # threshold 0 draws the detections: the annotated frame is not the original one
    assert np.abs(frames[0].astype(int) - original.astype(int)).mean() > 2


def test_unreadable_video_is_named(tiny_model, tmp_path, capsys):
    config_file, weights = tiny_model
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"not a video at all" * 10)
    code = demo.main(["--config-file", config_file, "--video-input", str(video), "--output", str(tmp_path / "o.mp4")])
    assert code == 1
    assert "broken.mp4" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_min_score_filters_before_pasting(tiny_model, monkeypatch):
    config_file, weights = tiny_model
    cfg = get_cfg()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(["MODEL.WEIGHTS", weights, "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"])
    predictor = DefaultPredictor(cfg)
    image = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    everything = predictor(image)["instances"]
    threshold = float(everything.scores.median())
    pasted = []
    import mrcnn.modeling.postprocessing as postprocessing

    original = postprocessing.paste_masks_in_image
    monkeypatch.setattr(
        postprocessing,
        "paste_masks_in_image",
        lambda masks, *a, **k: pasted.append(len(masks)) or original(masks, *a, **k),
    )
    filtered = predictor(image, min_score=threshold)["instances"]
    kept = everything.scores >= threshold
    assert pasted == [int(kept.sum())] and 0 < pasted[0] < len(everything)
    # the same detections, boxes and masks as filtering afterwards
    assert torch.equal(filtered.scores, everything.scores[kept])
    assert torch.equal(filtered.pred_boxes.tensor, everything.pred_boxes.tensor[kept])
    assert torch.equal(filtered.pred_masks, everything.pred_masks[kept])


def test_a_failing_image_costs_the_others_nothing(tiny_model, tmp_path, capsys, monkeypatch):
    config_file, weights = tiny_model
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(2)
    for name in ("a", "b", "c"):  # sorted: b is the second call
        Image.fromarray(rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)).save(inputs / f"{name}.png")
    calls = {"count": 0}
    original = DefaultPredictor.__call__

    def out_of_memory_on_the_second(self, image, min_score=None):
        calls["count"] += 1
        if calls["count"] == 2:
            raise torch.OutOfMemoryError("CPU out of memory: tried to allocate 5.00 GiB")
        return original(self, image, min_score=min_score)

    monkeypatch.setattr(demo.DefaultPredictor, "__call__", out_of_memory_on_the_second)
    output = tmp_path / "out"
    code = demo.main(
        [
            "--config-file",
            config_file,
            "--input",
            str(inputs),
            "--output",
            str(output),
            "--opts",
            "MODEL.WEIGHTS",
            weights,
        ]
    )
    assert code == 1
    assert sorted(os.listdir(output)) == ["a.png", "c.png", "predictions.json"]
    err = capsys.readouterr().err
    assert "b.png" in err and "out of memory" in err
