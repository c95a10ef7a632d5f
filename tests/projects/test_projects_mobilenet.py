"""The MobileNetV3 backbone plugin: shapes and strides, ImageNet weights, freezing, and training
plus evaluation through tools/train_net.py selected by its yaml file alone."""

import json
import math
import os
import subprocess
import sys

import torch
from torch import nn

from mrcnn.config import get_cfg
from mrcnn.layers import FrozenBatchNorm2d
from mrcnn.modeling import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN_CONFIG = os.path.join(ROOT, "projects", "MobileNetBackbone", "configs", "mask_rcnn_mobilenet_v3_fpn_shapes.yaml")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import projects.MobileNetBackbone.mobilenet_backbone as mobilenet_plugin  # noqa: E402
from projects.MobileNetBackbone.mobilenet_backbone.imagenet_weights import convert_imagenet_state_dict  # noqa: E402

# Tiny settings shared by the end-to-end run: 64 px images, 2 per batch, few proposals.
TINY_OPTS = [
    "MODEL.DEVICE",
    "cpu",
    "INPUT.MIN_SIZE_TRAIN",
    "(64,)",
    "INPUT.MAX_SIZE_TRAIN",
    "64",
    "INPUT.MIN_SIZE_TEST",
    "64",
    "INPUT.MAX_SIZE_TEST",
    "64",
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN",
    "200",
    "MODEL.RPN.POST_NMS_TOPK_TRAIN",
    "64",
    "MODEL.RPN.PRE_NMS_TOPK_TEST",
    "200",
    "MODEL.RPN.POST_NMS_TOPK_TEST",
    "32",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE",
    "32",
    "SOLVER.IMS_PER_BATCH",
    "2",
    "SOLVER.MAX_ITER",
    "5",
    "SOLVER.WARMUP_ITERS",
    "5",
    "SOLVER.STEPS",
    "()",
    "SOLVER.BASE_LR",
    "0.01",
    "DATALOADER.NUM_WORKERS",
    "0",
    "TEST.EVAL_PERIOD",
    "0",
    "SEED",
    "0",
]


def _plugin_cfg(*overrides):
    cfg = get_cfg()
    mobilenet_plugin.add_config(cfg)
    cfg.merge_from_file(PLUGIN_CONFIG)
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", *overrides])
    return cfg


def test_mobilenet_fpn_backbone_shapes():
    cfg = _plugin_cfg()
    backbone = build_model(cfg).backbone
    bottom_up = backbone.bottom_up
    expected = {"mb2": (24, 4), "mb3": (40, 8), "mb4": (112, 16), "mb5": (960, 32)}
    assert {k: (s.channels, s.stride) for k, s in bottom_up.output_shape().items()} == expected
    with torch.no_grad():
        features = backbone.eval()(torch.rand(2, 3, 64, 96))
    assert list(features) == ["p2", "p3", "p4", "p5", "p6"]
    for level, stride in zip(features, [4, 8, 16, 32, 64]):
        assert features[level].shape == (2, cfg.MODEL.FPN.OUT_CHANNELS, math.ceil(64 / stride), math.ceil(96 / stride))


def test_freeze_at_freezes_early_blocks_and_their_norms():
    cfg = _plugin_cfg("MODEL.BACKBONE.FREEZE_AT", "2")
    bottom_up = build_model(cfg).backbone.bottom_up
    blocks = list(bottom_up.features)
    # blocks 0-3 have output strides 2 and 4; block 4 is the first of stride 8
    for block in blocks[:4]:
        assert not any(p.requires_grad for p in block.parameters())
        assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
        assert any(isinstance(m, FrozenBatchNorm2d) for m in block.modules())
    assert all(p.requires_grad for p in blocks[4].parameters())
    assert any(isinstance(m, nn.BatchNorm2d) for m in blocks[4].modules())


def test_imagenet_weights_reproduce_torchvision_features():
    from torchvision.models import mobilenet_v3_large

    torch.manual_seed(0)
    reference = mobilenet_v3_large(weights=None).eval()
    for module in reference.modules():  # realistic, non-trivial statistics
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    converted = convert_imagenet_state_dict(reference.state_dict())
    assert not any("classifier" in key for key in converted)

    cfg = _plugin_cfg("MODEL.MOBILENET.NORM", "FrozenBN")
    model = build_model(cfg).eval()
    result = model.load_state_dict(converted, strict=False)
    assert not result.unexpected_keys
    assert not [k for k in result.missing_keys if k.startswith("backbone.bottom_up.")]
    image = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        ours = model.backbone.bottom_up(image)["mb5"]
        theirs = reference.features(image)
    assert ours.shape == theirs.shape == (1, 960, 3, 3)
    assert (ours - theirs).abs().max() <= 1e-4 * theirs.abs().max()


def test_train_net_trains_and_evaluates_the_plugin(tmp_path):
    from mrcnn.data.datasets.synthetic_shapes import ensure_shapes_dataset

    datasets = tmp_path / "datasets"
    # 16 training and 4 validation images of 64 px under the builtin "shapes" name
    ensure_shapes_dataset(str(datasets / "shapes"), num_train=16, num_val=4, image_size=64, seed=0)
    output = tmp_path / "output"
    env = dict(os.environ, MRCNN_DATASETS=str(datasets), OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)  # the plugin must come from MODEL.PLUGINS in the yaml alone
    # as the README says: from the repository root, where the plugin loader finds projects/
    command = [
        sys.executable,
        os.path.join("tools", "train_net.py"),
        "--config-file",
        PLUGIN_CONFIG,
        *TINY_OPTS,
        "OUTPUT_DIR",
        str(output),
    ]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    with open(output / "metrics.json", encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]
    last = [line for line in lines if "total_loss" in line][-1]
    assert last["iteration"] == 4 and math.isfinite(last["total_loss"]) and last["total_loss"] > 0
    assert lines[-1]["iteration"] == 4 and "bbox/AP" in lines[-1]  # the final evaluation, after the last step
    weights = torch.load(output / "model_final.pth", map_location="cpu", weights_only=True)["model"]
    assert "backbone.bottom_up.features.16.0.weight" in weights  # the MobileNet's last conv
    assert not any(key.startswith("backbone.bottom_up.res") for key in weights)
    with open(output / "eval_results.json", encoding="utf-8") as f:
        results = json.load(f)["shapes_val"]
    assert set(results) == {"bbox", "segm"}
    assert 0.0 <= results["bbox"]["AP"] <= 100.0 and 0.0 <= results["segm"]["AP"] <= 100.0
