"""detectron2 model-zoo .pkl files of the zoo configs load into our models with every tensor placed.

The files cannot be downloaded here, so the test writes them: for each config, the parameter and
buffer names and shapes a detectron2 model of that config saves, derived below from reading
detectron2's model code (not from our models):

* ``detectron2/modeling/backbone/resnet.py``: ``BasicStem`` (``stem.conv1``), ``BottleneckBlock``
  (``conv1``..``conv3``, ``shortcut`` only when in != out channels), ``DeformBottleneckBlock`` (adds
  ``conv2_offset`` with a bias, 18 or 27 channels per deformable group), ``build_resnet_backbone``
  (stages up to the last of OUT_FEATURES, bottleneck = NUM_GROUPS * WIDTH_PER_GROUP doubling per
  stage, res5 dilated without stride for RES5_DILATION 2); ``fpn.py`` (``bottom_up``,
  ``fpn_lateral{2..5}``, ``fpn_output{2..5}``, a bias only without norm);
* ``layers/batch_norm.py``: FrozenBatchNorm2d saves weight, bias, running_mean, running_var; BN
  adds num_batches_tracked; GroupNorm weight and bias;
* ``proposal_generator/rpn.py`` (``rpn_head.conv``, ``objectness_logits``, ``anchor_deltas``) and
  ``anchor_generator.py``, whose ``cell_anchors`` the 2019 zoo files still hold;
* ``roi_heads/roi_heads.py``: ``Res5ROIHeads`` (``res5`` of three bottleneck blocks, the first of
  stride 2, ``box_predictor`` on 2048 channels, ``mask_head``), ``StandardROIHeads``; ``box_head.py``
  (``conv{i}``, ``fc{i}``), ``fast_rcnn.py`` (``cls_score`` K+1 rows, ``bbox_pred`` 4K or 4 rows),
  ``mask_head.py`` (``mask_fcn{i}``, ``deconv`` (in, out, 2, 2), ``predictor`` K or 1 rows).

Each config is checked twice: at full size, the names and shapes against our model built on the
meta device (no memory); with narrow widths (the same names, small tensors), a real .pkl loaded
through DetectionCheckpointer, whose log line must say 0 missing and 0 unused, with every value
in place. The cascade and SyncBN configs are tested with their components.
"""

import logging
import pickle
import re
from typing import Dict, Tuple

import numpy as np
import pytest
import torch

from mrcnn.checkpoint import DetectionCheckpointer
from mrcnn.model_zoo import get_checkpoint_url, get_config
from mrcnn.modeling import build_model
from mrcnn.modeling.meta_arch.build import META_ARCH_REGISTRY

CONFIGS = [
    "COCO-Detection/faster_rcnn_R_50_C4_1x.yaml",
    "COCO-Detection/faster_rcnn_R_50_C4_3x.yaml",
    "COCO-Detection/faster_rcnn_R_50_DC5_1x.yaml",
    "COCO-Detection/faster_rcnn_R_50_DC5_3x.yaml",
    "COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml",
    "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml",
    "COCO-Detection/faster_rcnn_R_101_C4_3x.yaml",
    "COCO-Detection/faster_rcnn_R_101_DC5_3x.yaml",
    "COCO-Detection/faster_rcnn_R_101_FPN_3x.yaml",
    "COCO-Detection/faster_rcnn_X_101_32x8d_FPN_3x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_1x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_3x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_DC5_1x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_DC5_3x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_101_C4_3x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_101_DC5_3x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_101_FPN_3x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_3x.yaml",
    "Misc/mask_rcnn_R_50_FPN_1x_cls_agnostic.yaml",
    "Misc/mask_rcnn_R_50_FPN_1x_dconv_c3-c5.yaml",
    "Misc/mask_rcnn_R_50_FPN_3x_dconv_c3-c5.yaml",
    "Misc/mask_rcnn_R_50_FPN_3x_gn.yaml",
    "Misc/scratch_mask_rcnn_R_50_FPN_3x_gn.yaml",
    "Misc/scratch_mask_rcnn_R_50_FPN_9x_gn.yaml",
]

Shapes = Dict[str, Tuple[int, ...]]
_BLOCKS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


# --- detectron2's state dict of a config, written from its model code ---------------------------
def _norm(out: Shapes, prefix: str, norm: str, channels: int) -> None:
    if norm == "":
        return
    out[prefix + "norm.weight"] = out[prefix + "norm.bias"] = (channels,)
    if norm in ("FrozenBN", "BN", "SyncBN"):
        out[prefix + "norm.running_mean"] = out[prefix + "norm.running_var"] = (channels,)
    if norm in ("BN", "SyncBN"):
        out[prefix + "norm.num_batches_tracked"] = ()


def _conv(out: Shapes, prefix: str, c_in: int, c_out: int, kernel: int, norm: str = "", bias: bool = False) -> None:
    out[prefix + "weight"] = (c_out, c_in, kernel, kernel)
    if bias:
        out[prefix + "bias"] = (c_out,)
    _norm(out, prefix, norm, c_out)


def _bottleneck_stage(out: Shapes, prefix: str, cfg, num_blocks: int, c_in: int, c_out: int, width: int, deform: bool):
    res = cfg.MODEL.RESNETS
    for index in range(num_blocks):
        block = f"{prefix}.{index}."
        if c_in != c_out:
            _conv(out, block + "shortcut.", c_in, c_out, 1, res.NORM)
        _conv(out, block + "conv1.", c_in, width, 1, res.NORM)
        if deform:
            offsets = (27 if res.DEFORM_MODULATED else 18) * res.DEFORM_NUM_GROUPS
            _conv(out, block + "conv2_offset.", width, offsets, 3, bias=True)
        out[block + "conv2.weight"] = (width, width // res.NUM_GROUPS, 3, 3)
        _norm(out, block + "conv2.", res.NORM, width)
        _conv(out, block + "conv3.", width, c_out, 1, res.NORM)
        c_in = c_out


def detectron2_shapes(cfg) -> Shapes:
    """Name -> shape of every tensor a detectron2 model of ``cfg`` saves (cell anchors included)."""
    out: Shapes = {}
    model, res = cfg.MODEL, cfg.MODEL.RESNETS
    fpn = model.BACKBONE.NAME == "build_resnet_fpn_backbone"
    resnet = "backbone.bottom_up." if fpn else "backbone."
    _conv(out, resnet + "stem.conv1.", 3, res.STEM_OUT_CHANNELS, 7, res.NORM)
    last_stage = max(int(name[3:]) for name in res.OUT_FEATURES)
    c_in, c_out, width = res.STEM_OUT_CHANNELS, res.RES2_OUT_CHANNELS, res.NUM_GROUPS * res.WIDTH_PER_GROUP
    channels = {}
    for stage in range(2, last_stage + 1):
        deform = res.DEFORM_ON_PER_STAGE[stage - 2]
        _bottleneck_stage(out, f"{resnet}res{stage}", cfg, _BLOCKS[res.DEPTH][stage - 2], c_in, c_out, width, deform)
        channels[f"res{stage}"] = c_out
        c_in, c_out, width = c_out, c_out * 2, width * 2
    if fpn:
        use_bias = model.FPN.NORM == ""
        for name in model.FPN.IN_FEATURES:
            level = name[3:]
            _conv(
                out,
                f"backbone.fpn_lateral{level}.",
                channels[name],
                model.FPN.OUT_CHANNELS,
                1,
                model.FPN.NORM,
                use_bias,
            )
            fpn_out = model.FPN.OUT_CHANNELS
            _conv(out, f"backbone.fpn_output{level}.", fpn_out, fpn_out, 3, model.FPN.NORM, use_bias)
        channels = {f"p{i}": model.FPN.OUT_CHANNELS for i in range(2, 7)}
    # RPN: one head shared by the levels
    rpn_in = channels[model.RPN.IN_FEATURES[0]]
    sizes, ratios = model.ANCHOR_GENERATOR.SIZES, model.ANCHOR_GENERATOR.ASPECT_RATIOS
    per_level = [
        len(sizes[i] if len(sizes) > 1 else sizes[0]) * len(ratios[0]) for i in range(len(model.RPN.IN_FEATURES))
    ]
    anchors = per_level[0]
    _conv(out, "proposal_generator.rpn_head.conv.", rpn_in, rpn_in, 3, bias=True)
    _conv(out, "proposal_generator.rpn_head.objectness_logits.", rpn_in, anchors, 1, bias=True)
    _conv(out, "proposal_generator.rpn_head.anchor_deltas.", rpn_in, 4 * anchors, 1, bias=True)
    for level, count in enumerate(per_level):
        out[f"proposal_generator.anchor_generator.cell_anchors.{level}"] = (count, 4)
    # RoI heads
    classes = model.ROI_HEADS.NUM_CLASSES
    box, mask = model.ROI_BOX_HEAD, model.ROI_MASK_HEAD
    if model.ROI_HEADS.NAME == "Res5ROIHeads":
        res5_out = res.RES2_OUT_CHANNELS * 8
        res5_width = res.NUM_GROUPS * res.WIDTH_PER_GROUP * 8
        _bottleneck_stage(out, "roi_heads.res5", cfg, 3, res5_out // 2, res5_out, res5_width, False)
        box_dim = mask_in = res5_out
    else:
        mask_in = channels[model.ROI_HEADS.IN_FEATURES[0]]
        shape = (mask_in, box.POOLER_RESOLUTION, box.POOLER_RESOLUTION)
        for index in range(box.NUM_CONV):
            _conv(out, f"roi_heads.box_head.conv{index + 1}.", shape[0], box.CONV_DIM, 3, box.NORM, box.NORM == "")
            shape = (box.CONV_DIM,) + shape[1:]
        box_dim = int(np.prod(shape))
        for index in range(box.NUM_FC):
            out[f"roi_heads.box_head.fc{index + 1}.weight"] = (box.FC_DIM, box_dim)
            out[f"roi_heads.box_head.fc{index + 1}.bias"] = (box.FC_DIM,)
            box_dim = box.FC_DIM
    out["roi_heads.box_predictor.cls_score.weight"] = (classes + 1, box_dim)
    out["roi_heads.box_predictor.cls_score.bias"] = (classes + 1,)
    regressors = 1 if box.CLS_AGNOSTIC_BBOX_REG else classes
    out["roi_heads.box_predictor.bbox_pred.weight"] = (4 * regressors, box_dim)
    out["roi_heads.box_predictor.bbox_pred.bias"] = (4 * regressors,)
    if model.MASK_ON:
        c_in = mask_in
        for index in range(mask.NUM_CONV):
            _conv(out, f"roi_heads.mask_head.mask_fcn{index + 1}.", c_in, mask.CONV_DIM, 3, mask.NORM, mask.NORM == "")
            c_in = mask.CONV_DIM
        out["roi_heads.mask_head.deconv.weight"] = (c_in, mask.CONV_DIM, 2, 2)  # ConvTranspose2d: (in, out, k, k)
        out["roi_heads.mask_head.deconv.bias"] = (mask.CONV_DIM,)
        masks = 1 if mask.CLS_AGNOSTIC_MASK else classes
        _conv(out, "roi_heads.mask_head.predictor.", mask.CONV_DIM, masks, 1, bias=True)
    return out


# --- the checks -------------------------------------------------------------------------------
def _narrow(config_file: str):
    """The zoo config with small widths (multiples of 32 where GroupNorm needs them)."""
    cfg = get_config(config_file)
    gn = "GN" in (cfg.MODEL.RESNETS.NORM, cfg.MODEL.FPN.NORM, cfg.MODEL.ROI_BOX_HEAD.NORM)
    groups = cfg.MODEL.RESNETS.NUM_GROUPS
    cfg.merge_from_list(
        [
            "MODEL.WEIGHTS", "",
            "MODEL.RESNETS.STEM_OUT_CHANNELS", "32" if gn else "8",
            "MODEL.RESNETS.RES2_OUT_CHANNELS", "64" if gn else "16",
            "MODEL.RESNETS.WIDTH_PER_GROUP", "2" if groups > 1 else ("32" if gn else "4"),
            "MODEL.RESNETS.NUM_GROUPS", "4" if groups > 1 else "1",
            "MODEL.FPN.OUT_CHANNELS", "32" if gn else "8",
            "MODEL.ROI_BOX_HEAD.CONV_DIM", "32" if gn else "8",
            "MODEL.ROI_BOX_HEAD.FC_DIM", "16",
            "MODEL.ROI_MASK_HEAD.CONV_DIM", "32" if gn else "8",
            "MODEL.ROI_HEADS.NUM_CLASSES", "5",
        ]
    )  # fmt: skip
    return cfg


@pytest.mark.parametrize("config_file", CONFIGS)
def test_full_size_names_and_shapes_are_detectron2s(config_file):
    cfg = get_config(config_file)
    with torch.device("meta"):
        model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    ours = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    expected = {k: v for k, v in detectron2_shapes(cfg).items() if ".cell_anchors." not in k}
    assert sorted(set(expected) - set(ours)) == [] and sorted(set(ours) - set(expected)) == []
    assert {k: v for k, v in ours.items() if v != expected[k]} == {}


@pytest.mark.parametrize("config_file", CONFIGS)
def test_zoo_pickle_loads_with_every_tensor_placed(config_file, tmp_path, log_messages):
    cfg = _narrow(config_file)
    rng = np.random.default_rng(0)
    arrays = {}
    for name, shape in detectron2_shapes(cfg).items():
        if name.endswith("num_batches_tracked"):
            arrays[name] = np.array(7, dtype=np.int64)
        elif name.endswith("running_var"):
            arrays[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        else:
            arrays[name] = rng.standard_normal(shape).astype(np.float32)
    path = tmp_path / "model_final_123abc.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": arrays, "__author__": "Detectron2 Model Zoo"}, f)
    model = build_model(cfg)
    messages = log_messages("mrcnn.checkpoint", logging.INFO)
    DetectionCheckpointer(model).load(str(path))
    summary = [m for m in messages if m.startswith("Loaded ")]
    assert len(summary) == 1, messages
    numbers = re.search(
        r"Loaded (\d+) of (\d+) .*; (\d+) skipped .*, (\d+) missing .*, (\d+) in the file unused", summary[0]
    )
    loaded, total, skipped, missing, unused = map(int, numbers.groups())
    assert loaded == total and skipped == missing == unused == 0, summary[0]
    state = model.state_dict()
    assert len(state) == len([k for k in arrays if ".cell_anchors." not in k])
    for name, value in state.items():
        assert np.array_equal(value.numpy(), arrays[name]), name
    if config_file != "Misc/mask_rcnn_R_50_FPN_1x_cls_agnostic.yaml":  # the one config without zoo weights
        assert get_checkpoint_url(config_file).endswith(".pkl")
