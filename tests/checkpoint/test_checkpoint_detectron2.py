"""Weights in detectron2's and Detectron's formats, written by the test from our own model, load
through DetectionCheckpointer and reproduce the source model's outputs."""

import logging
import pickle
import re

import numpy as np
import pytest
import torch

from mrcnn.benchmark import fpn_config, natural_image
from mrcnn.checkpoint import DetectionCheckpointer
from mrcnn.checkpoint.c2_names import c2_name_to_mrcnn, convert_c2_names
from mrcnn.layers import FrozenBatchNorm2d
from mrcnn.modeling import build_model

NUM_CLASSES = 3
EPS = 1e-5  # FrozenBatchNorm2d's


def _tiny_r50_cfg():
    """A narrow ResNet-50-FPN Mask R-CNN: real bottleneck layout (Caffe2 names), small tensors."""
    cfg = fpn_config()
    cfg.merge_from_list(
        [
            "MODEL.DEVICE",
            "cpu",
            "MODEL.RESNETS.DEPTH",
            "50",
            "MODEL.RESNETS.NORM",
            "FrozenBN",
            "MODEL.RESNETS.STEM_OUT_CHANNELS",
            "16",
            "MODEL.RESNETS.RES2_OUT_CHANNELS",
            "32",
            "MODEL.RESNETS.WIDTH_PER_GROUP",
            "8",
            "MODEL.FPN.OUT_CHANNELS",
            "16",
            "MODEL.ANCHOR_GENERATOR.SIZES",
            "[[8], [16], [32], [64], [128]]",
            "MODEL.RPN.PRE_NMS_TOPK_TEST",
            "200",
            "MODEL.RPN.POST_NMS_TOPK_TEST",
            "50",
            "MODEL.ROI_HEADS.NUM_CLASSES",
            str(NUM_CLASSES),
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
            "0.0",
            "MODEL.ROI_BOX_HEAD.NUM_FC",
            "2",
            "MODEL.ROI_BOX_HEAD.FC_DIM",
            "32",
            "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION",
            "7",
            "MODEL.ROI_MASK_HEAD.NUM_CONV",
            "2",
            "MODEL.ROI_MASK_HEAD.CONV_DIM",
            "16",
            "INPUT.MIN_SIZE_TEST",
            "64",
            "INPUT.MAX_SIZE_TEST",
            "96",
            "TEST.DETECTIONS_PER_IMAGE",
            "20",
        ]
    )
    return cfg


def _model(seed: int):
    torch.manual_seed(seed)
    model = build_model(_tiny_r50_cfg()).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 2.0)
        # spread the class scores so that the detections and their order are well defined
        model.roi_heads.box_predictor.cls_score.weight.mul_(20.0)
    return model


@pytest.fixture(scope="module")
def inputs():
    image = torch.from_numpy(natural_image(64, 96, seed=5)).permute(2, 0, 1).float()
    return [{"image": image, "height": 64, "width": 96}]


def _outputs(model, inputs):
    with torch.no_grad():
        instances = model(inputs)[0]["instances"]
        features = model.backbone.bottom_up(model.preprocess_image(inputs).tensor)
    return instances, features


def _assert_same_detections(a, b):
    assert len(a) == len(b) > 0
    assert torch.equal(a.pred_classes, b.pred_classes)
    assert torch.allclose(a.pred_boxes.tensor, b.pred_boxes.tensor, atol=1e-4)
    assert torch.allclose(a.scores, b.scores, atol=1e-5)
    assert torch.equal(a.pred_masks, b.pred_masks)


@pytest.fixture()
def checkpoint_log(log_messages):
    return log_messages("mrcnn.checkpoint", logging.INFO)


def _summary(messages):
    found = [m for m in messages if m.startswith("Loaded ")]
    assert len(found) == 1, messages
    numbers = re.match(
        r"Loaded (\d+) of (\d+) model tensors from (\d+) in the file.*?(\d+) skipped.*?(\d+) missing"
        r".*?(\d+) in the file unused",
        found[0],
    )
    return found[0], [int(n) for n in numbers.groups()]


def test_detectron2_pth_with_training_state_loads(tmp_path, inputs, checkpoint_log):
    source = _model(seed=1)
    torch.save(
        {
            "model": source.state_dict(),
            "optimizer": {"state": {}, "param_groups": []},
            "scheduler": {"base_lrs": [0.02], "last_epoch": 7},
            "iteration": 7,
        },
        tmp_path / "model_0000007.pth",
    )
    target = _model(seed=2)
    extra = DetectionCheckpointer(target).load(str(tmp_path / "model_0000007.pth"))
    assert extra["iteration"] == 7  # training state comes back to the caller
    _assert_same_detections(_outputs(source, inputs)[0], _outputs(target, inputs)[0])
    line, (loaded, total, in_file, skipped, missing, unused) = _summary(checkpoint_log)
    assert loaded == total == in_file and skipped == missing == unused == 0, line


def test_detectron2_model_zoo_pkl_loads(tmp_path, inputs, checkpoint_log):
    source = _model(seed=3)
    arrays = {k: v.numpy() for k, v in source.state_dict().items()}
    with open(tmp_path / "model_final_abc123.pkl", "wb") as f:
        pickle.dump({"model": arrays, "__author__": "Detectron2 Model Zoo"}, f)
    target = _model(seed=4)
    extra = DetectionCheckpointer(target).load(str(tmp_path / "model_final_abc123.pkl"))
    assert extra["__author__"] == "Detectron2 Model Zoo"
    _assert_same_detections(_outputs(source, inputs)[0], _outputs(target, inputs)[0])
    line, (loaded, total, _, skipped, missing, unused) = _summary(checkpoint_log)
    assert loaded == total and skipped == missing == unused == 0 and "Detectron2 Model Zoo" in line


# --- Caffe2 names, written here independently of the converter -------------------------------
def _c2_layer(module_path: str) -> str:
    """mrcnn module path -> Caffe2 layer name (the inverse of the mapping under test)."""
    rules = [
        (r"^backbone\.bottom_up\.stem\.conv1$", lambda m: "conv1"),
        (
            r"^backbone\.bottom_up\.res(\d)\.(\d+)\.conv([123])$",
            lambda m: f"res{m[1]}_{m[2]}_branch2{'abc'[int(m[3]) - 1]}",
        ),
        (r"^backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut$", lambda m: f"res{m[1]}_{m[2]}_branch1"),
        (r"^backbone\.fpn_lateral(\d)$", lambda m: f"fpn_inner_res{m[1]}_2_sum" + ("" if m[1] == "5" else "_lateral")),
        (r"^backbone\.fpn_output(\d)$", lambda m: f"fpn_res{m[1]}_2_sum"),
        (r"^proposal_generator\.rpn_head\.conv$", lambda m: "conv_rpn_fpn2"),
        (r"^proposal_generator\.rpn_head\.objectness_logits$", lambda m: "rpn_cls_logits_fpn2"),
        (r"^proposal_generator\.rpn_head\.anchor_deltas$", lambda m: "rpn_bbox_pred_fpn2"),
        (r"^roi_heads\.box_head\.fc(\d)$", lambda m: f"fc{int(m[1]) + 5}"),
        (r"^roi_heads\.box_predictor\.(cls_score|bbox_pred)$", lambda m: m[1]),
        (r"^roi_heads\.mask_head\.mask_fcn(\d)$", lambda m: f"_[mask]_fcn{m[1]}"),
        (r"^roi_heads\.mask_head\.deconv$", lambda m: "conv5_mask"),
        (r"^roi_heads\.mask_head\.predictor$", lambda m: "mask_fcn_logits"),
    ]
    for pattern, name in rules:
        match = re.match(pattern, module_path)
        if match:
            return name(match)
    raise KeyError(module_path)


def _to_caffe2(state_dict, fold_statistics: bool):
    """Our state dict -> Caffe2 blobs: affine-only batch norms (``_bn_s``/``_bn_b``), Detectron's
    background-first class rows, plus the blobs such files carry that have no counterpart."""
    blobs = {}
    for key, value in state_dict.items():
        module_path, _, param = key.rpartition(".")
        value = value.numpy().copy()
        if module_path.endswith(".norm"):
            layer = _c2_layer(module_path[: -len(".norm")])
            if param != "weight":
                continue
            prefix = module_path + "."
            weight, bias = value, state_dict[prefix + "bias"].numpy()
            mean, var = state_dict[prefix + "running_mean"].numpy(), state_dict[prefix + "running_var"].numpy()
            if fold_statistics:  # what the MSRA files hold: the frozen norm as one affine map
                scale = weight / np.sqrt(var + EPS)
                weight, bias = scale * np.sqrt(1.0 + EPS), bias - mean * scale
            blobs[f"{layer}_bn_s"], blobs[f"{layer}_bn_b"] = weight, bias
            continue
        layer = _c2_layer(module_path)
        if layer == "cls_score":  # Detectron: background is row 0
            value = np.concatenate([value[-1:], value[:-1]])
        elif layer == "bbox_pred":
            value = np.concatenate([np.zeros_like(value[:4]), value])
        elif layer == "mask_fcn_logits":
            value = np.concatenate([np.zeros_like(value[:1]), value])
        blobs[f"{layer}_{'w' if param == 'weight' else 'b'}"] = value
        blobs[f"{layer}_{'w' if param == 'weight' else 'b'}_momentum"] = np.zeros_like(value)
    blobs["fc1000_w"], blobs["fc1000_b"] = np.ones((1000, 8), np.float32), np.zeros(1000, np.float32)
    return blobs


def test_msra_caffe2_backbone_pkl_loads(tmp_path, inputs, checkpoint_log):
    source = _model(seed=5)
    backbone_only = {k: v for k, v in source.state_dict().items() if k.startswith("backbone.bottom_up.")}
    blobs = {k: v for k, v in _to_caffe2(backbone_only, fold_statistics=True).items() if not k.endswith("_momentum")}
    assert "res2_0_branch2a_w" in blobs and "res_conv1_bn_s" not in blobs and "conv1_bn_s" in blobs
    # MSRA files call the stem's norm "res_conv1_bn"
    blobs["res_conv1_bn_s"], blobs["res_conv1_bn_b"] = blobs.pop("conv1_bn_s"), blobs.pop("conv1_bn_b")
    with open(tmp_path / "R-50.pkl", "wb") as f:
        pickle.dump(blobs, f, protocol=2)  # Python-2 era files are protocol 2
    target = _model(seed=6)
    DetectionCheckpointer(target).load(str(tmp_path / "R-50.pkl"))
    ours, theirs = _outputs(target, inputs)[1], _outputs(source, inputs)[1]
    for name in ("res2", "res3", "res4", "res5"):
        relative = (ours[name] - theirs[name]).abs().max() / theirs[name].abs().max()
        assert relative <= 1e-5, f"{name}: relative error {relative:.2e}"
    line, (loaded, total, _, skipped, missing, unused) = _summary(checkpoint_log)
    assert loaded == len(backbone_only) and missing == total - loaded and skipped == unused == 0, line
    assert any("fc1000_b" in m and "without a counterpart" in m for m in checkpoint_log)


def _fold_statistics_into_affine(model) -> None:
    """Rewrite every frozen norm as mean 0 / variance 1 plus an equivalent affine map, the only
    form a Caffe2 file can hold exactly."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FrozenBatchNorm2d):
                scale = module.weight / torch.sqrt(module.running_var + EPS)
                module.bias.sub_(module.running_mean * scale)
                module.weight.copy_(scale * np.sqrt(1.0 + EPS))
                module.running_mean.zero_()
                module.running_var.fill_(1.0)


def test_detectron_caffe2_detection_pkl_loads(tmp_path, inputs):
    source = _model(seed=7)
    _fold_statistics_into_affine(source)
    with open(tmp_path / "model_final.pkl", "wb") as f:
        blobs = _to_caffe2(source.state_dict(), fold_statistics=False)
        pickle.dump({"blobs": blobs, "cfg": "TRAIN: ..."}, f, protocol=2)
    target = _model(seed=8)
    DetectionCheckpointer(target).load(str(tmp_path / "model_final.pkl"))
    _assert_same_detections(_outputs(source, inputs)[0], _outputs(target, inputs)[0])


def test_caffe2_name_table():
    expected = {
        "conv1_w": "backbone.bottom_up.stem.conv1.weight",
        "res_conv1_bn_b": "backbone.bottom_up.stem.conv1.norm.bias",
        "res3_1_branch2c_bn_s": "backbone.bottom_up.res3.1.conv3.norm.weight",
        "res4_0_branch1_w": "backbone.bottom_up.res4.0.shortcut.weight",
        "res5_2_branch2b_bn_riv": "backbone.bottom_up.res5.2.conv2.norm.running_var",
        "fpn_inner_res4_5_sum_lateral_b": "backbone.fpn_lateral4.bias",
        "fpn_res2_2_sum_w": "backbone.fpn_output2.weight",
        "rpn_bbox_pred_fpn2_w": "proposal_generator.rpn_head.anchor_deltas.weight",
        "head_conv3_gn_s": "roi_heads.box_head.conv3.norm.weight",
        "fc7_b": "roi_heads.box_head.fc2.bias",
        "_[mask]_fcn4_w": "roi_heads.mask_head.mask_fcn4.weight",
    }
    for c2, ours in expected.items():
        assert c2_name_to_mrcnn(c2) == ours, c2
    for dropped in ("fc1000_w", "pred_b", "res2_0_branch2a_w_momentum", "lr"):
        assert c2_name_to_mrcnn(dropped) is None
    converted = convert_c2_names(
        {"res2_0_branch2a_bn_s": np.ones(4, np.float32), "res2_0_branch2a_bn_b": np.zeros(4, np.float32)}
    )
    assert np.array_equal(converted["backbone.bottom_up.res2.0.conv1.norm.running_var"], np.ones(4, np.float32))
    assert np.array_equal(converted["backbone.bottom_up.res2.0.conv1.norm.running_mean"], np.zeros(4, np.float32))


def test_caffe2_imagenet_resnet_goes_where_a_c4_model_keeps_it(tmp_path, checkpoint_log):
    from mrcnn.model_zoo import get_config

    cfg = get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_C4_1x.yaml")
    narrow = ["MODEL.WEIGHTS", "", "MODEL.RESNETS.STEM_OUT_CHANNELS", "16", "MODEL.RESNETS.RES2_OUT_CHANNELS", "32"]
    cfg.merge_from_list(narrow + ["MODEL.RESNETS.WIDTH_PER_GROUP", "8", "MODEL.ROI_HEADS.NUM_CLASSES", "3"])
    torch.manual_seed(0)
    source = build_model(cfg).state_dict()
    # the ResNet of a C4 model is backbone.res2..res4 plus roi_heads.res5; a Caffe2 ImageNet file
    # names all four stages alike (res5_0_branch2a_w, ...)
    resnet = {}
    for key, value in source.items():
        for prefix in ("backbone.", "roi_heads."):
            if key.startswith(prefix) and (".res" in key or ".stem." in key):
                resnet["backbone.bottom_up." + key[len(prefix) :]] = value
    assert any(k.startswith("backbone.bottom_up.res5.2.") for k in resnet)
    blobs = {k: v for k, v in _to_caffe2(resnet, fold_statistics=False).items() if not k.endswith("_momentum")}
    with open(tmp_path / "R-50.pkl", "wb") as f:
        pickle.dump(blobs, f, protocol=2)
    torch.manual_seed(1)
    target = build_model(cfg)
    DetectionCheckpointer(target).load(str(tmp_path / "R-50.pkl"))
    loaded = target.state_dict()
    for key in ("backbone.stem.conv1.weight", "backbone.res4.5.conv3.weight", "roi_heads.res5.2.conv2.weight"):
        assert torch.equal(loaded[key], source[key]), key
    line, (count, total, _, skipped, missing, unused) = _summary(checkpoint_log)
    assert unused == skipped == 0 and count == len([k for k in source if ".res" in k or ".stem." in k]), line
    assert any("Placed" in m and "ResNet tensors" in m for m in checkpoint_log)
