"""tools/benchmark.py: every task runs at a tiny size for two iterations and writes a complete
json (nothing here is a timing assertion). Its measuring pieces are tested in tests/benchmark/."""

import gzip
import importlib.util
import json
import os
import uuid

import pytest
import torch

from mrcnn.data import DatasetCatalog, MetadataCatalog
from mrcnn.data.datasets import register_shapes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Small enough for seconds per run: ResNet-18, 96x128 images, few proposals and detections.
TINY_FLAGS = ["--height", "96", "--width", "128", "--iters", "2", "--warmup", "0"]
TINY_OPTS = [
    "MODEL.RESNETS.DEPTH",
    "18",
    "MODEL.RESNETS.RES2_OUT_CHANNELS",
    "64",
    "MODEL.RPN.PRE_NMS_TOPK_TEST",
    "200",
    "MODEL.RPN.POST_NMS_TOPK_TEST",
    "50",
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN",
    "200",
    "MODEL.RPN.POST_NMS_TOPK_TRAIN",
    "50",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE",
    "32",
    "TEST.DETECTIONS_PER_IMAGE",
    "10",
]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("benchmark_tool", os.path.join(ROOT, "tools", "benchmark.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(tool, tmp_path, capsys, flags, opts=()):
    output = tmp_path / "result.json"
    assert tool.main(flags + ["--output", str(output)] + list(opts)) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    with open(output) as f:
        report = json.load(f)
    assert printed[-1] == report["headline"]
    return report


def test_inference_against_torchvision_writes_json(tool, tmp_path, capsys):
    report = _run(
        tool,
        tmp_path,
        capsys,
        ["--task", "inference", "--compare", "torchvision", "--no-flops"] + TINY_FLAGS,
        TINY_OPTS,
    )
    results = report["results"]
    assert report["task"] == "inference" and results["height"] == 96 and results["width"] == 128
    for name in ("mrcnn", "torchvision"):
        entry = results[name]
        assert entry["iterations"] == 2 and entry["ms_per_image"] > 0
        assert entry["ms_per_image_min"] <= entry["ms_per_image"] <= entry["ms_per_image_max"]
        assert entry["peak_memory_mb"] > 0
        assert entry["num_detections"] == 10
    assert results["ratio"] == pytest.approx(results["mrcnn"]["ms_per_image"] / results["torchvision"]["ms_per_image"])
    agreement = results["agreement"]
    assert agreement["classes_equal"] and agreement["max_score_difference"] <= 1e-4
    assert agreement["max_box_difference"] <= 0.01
    assert "ratio" in report["headline"] and "ms/image" in report["headline"]


def test_inference_flops_of_the_shapes_model(tool, tmp_path, capsys):
    config = os.path.join(ROOT, "configs", "shapes", "mask_rcnn_shapes.yaml")
    report = _run(
        tool,
        tmp_path,
        capsys,
        [
            "--config-file",
            config,
            "--task",
            "inference",
            "--height",
            "128",
            "--width",
            "128",
            "--iters",
            "2",
            "--warmup",
            "0",
            "--no-memory",
        ],
    )
    entry = report["results"]["mrcnn"]
    assert "torchvision" not in report["results"] and report["compare"] is None
    # the backbone alone: a ResNet-18 of half width at 128x128 is well above 0.1 and below 10 GFLOP
    assert 0.1 < entry["gflops"] < 10
    assert entry["achieved_gflops_per_second"] == pytest.approx(entry["gflops"] / (entry["ms_per_image"] / 1000))
    assert entry["fraction_of_matmul_rate"] == pytest.approx(
        entry["achieved_gflops_per_second"] / report["results"]["matmul_gflops_per_second"]
    )
    assert report["headline"].startswith("inference 128x128: mrcnn ")


def test_train_against_torchvision_writes_json(tool, tmp_path, capsys):
    report = _run(
        tool,
        tmp_path,
        capsys,
        ["--task", "train", "--compare", "torchvision", "--no-memory", "--profile", "5", "--check-losses"]
        + ["--trace", str(tmp_path / "traces")]
        + TINY_FLAGS,
        TINY_OPTS,
    )
    results = report["results"]
    # one step of both models from the same weights before timing: torchvision's losses, fast paths on
    agreement = results["loss_agreement"]
    assert agreement["agree"] and agreement["max_relative_loss_difference"] < 1e-4
    assert set(agreement["losses"]) == {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask"}
    for ours, theirs in agreement["losses"].values():
        assert ours == pytest.approx(theirs, rel=1e-4) and theirs > 0
    assert "losses agree: yes" in report["headline"]
    assert results["batch_size"] == 2 and len(results["instances_per_image"]) == 4
    for name in ("mrcnn", "torchvision"):
        entry = results[name]
        assert entry["iterations"] == 2 and entry["seconds_per_iteration"] > 0
        assert entry["images_per_second"] == pytest.approx(2 / entry["seconds_per_iteration"])
        assert torch.isfinite(torch.tensor(entry["last_loss"]))
        # one profiled training step: the five costliest host operators, a convolution among them
        profile = entry["profile"]
        assert profile["wall_seconds"] > 0 and 1 <= len(profile["host"]) <= 5
        self_ms = [op["self_ms"] for op in profile["host"]]
        assert self_ms == sorted(self_ms, reverse=True) and self_ms[0] > 0
        assert sum(self_ms) <= profile["wall_seconds"] * 1000 * torch.get_num_threads() + 1
        assert any("conv" in op["name"] for op in profile["host"])
        assert "device" not in profile  # CPU run: no GPU table
        # a gzipped Chrome trace of one step with its Python frames
        with gzip.open(entry["trace_file"]) as f:
            events = json.load(f)["traceEvents"]
        names = {event.get("name", "") for event in events}
        assert any("conv" in name for name in names) and any(event.get("cat") == "python_function" for event in events)
    assert "s/iter" in report["headline"]


def test_eval_task_times_each_backend(tool, tmp_path, capsys):
    report = _run(
        tool,
        tmp_path,
        capsys,
        ["--task", "eval", "--eval-images", "3", "--dets-per-image", "5", "--eval-backends", "pycocotools"],
    )
    timing = report["results"]["pycocotools"]
    assert timing["num_images"] == 3 and timing["dets_per_image"] == 5
    assert timing["total_seconds"] == pytest.approx(timing["process_seconds"] + timing["evaluate_seconds"])
    assert report["headline"].startswith("eval 3 images x 5 detections: pycocotools")


@pytest.fixture
def shapes_train_dataset(tmp_path):
    """A tiny shapes dataset registered under a name of its own for one test, then removed."""
    prefix = f"bench_shapes_{uuid.uuid4().hex[:8]}"
    register_shapes(prefix, root=str(tmp_path / "shapes"), num_train=8, num_val=2, image_size=64)
    yield f"{prefix}_train"
    for name in (f"{prefix}_train", f"{prefix}_val"):
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_data_task_on_synthetic_shapes(tool, tmp_path, capsys, shapes_train_dataset):
    config = os.path.join(ROOT, "configs", "shapes", "mask_rcnn_shapes.yaml")
    report = _run(
        tool,
        tmp_path,
        capsys,
        ["--config-file", config, "--task", "data", "--iters", "2", "--warmup", "1"],
        ["DATASETS.TRAIN", f"('{shapes_train_dataset}',)", "DATALOADER.NUM_WORKERS", "0", "SOLVER.IMS_PER_BATCH", "2"],
    )
    results = report["results"]
    assert results["num_images"] == 4 and results["images_per_second"] > 0
    assert report["headline"].startswith("data: ")


def test_bad_arguments_are_named(tool):
    with pytest.raises(SystemExit, match="config file not found"):
        tool.main(["--task", "inference", "--config-file", "missing.yaml"])
    with pytest.raises(SystemExit, match="--iters"):
        tool.main(["--task", "inference", "--iters", "0"])


def test_train_against_another_config_alternates_them(tool, tmp_path, capsys):
    cascade = os.path.join(ROOT, "configs", "Misc", "cascade_mask_rcnn_R_50_FPN_1x.yaml")
    plain = os.path.join(ROOT, "configs", "COCO-InstanceSegmentation", "mask_rcnn_R_50_FPN_1x.yaml")
    flags = ["--task", "train", "--config-file", cascade, "--compare-config", plain, "--no-memory"]
    flags += ["--height", "96", "--width", "128", "--iters", "1", "--warmup", "0"]
    narrow = ["MODEL.FPN.OUT_CHANNELS", "32", "MODEL.ROI_BOX_HEAD.FC_DIM", "64", "MODEL.ROI_MASK_HEAD.CONV_DIM", "32"]
    report = _run(tool, tmp_path, capsys, flags, TINY_OPTS + narrow + ["MODEL.WEIGHTS", ""])
    results = report["results"]
    for name in ("mrcnn", "compare_config"):
        assert results[name]["iterations"] == 1 and torch.isfinite(torch.tensor(results[name]["last_loss"]))
    assert results["compare_config_file"].endswith("mask_rcnn_R_50_FPN_1x.yaml")
    seconds = results["mrcnn"]["seconds_per_iteration"], results["compare_config"]["seconds_per_iteration"]
    assert results["ratio"] == pytest.approx(seconds[0] / seconds[1])
    assert "mask_rcnn_R_50_FPN_1x.yaml" in report["headline"] and "ratio" in report["headline"]
    with pytest.raises(SystemExit, match="--compare-config goes with --task train"):
        tool.main(["--task", "inference", "--compare-config", plain])
