"""CascadeROIHeads: detectron2's parameter names and shapes, its checkpoints, and the cascade's
semantics (scores averaged over stages, boxes refined stage by stage, IoU per stage, the
1/num_stages gradient on the pooled features)."""

import os
import pickle
import re
from typing import Dict, Tuple

import numpy as np
import pytest
import torch

from mrcnn.benchmark import natural_image, synthetic_training_batch, tiny_config
from mrcnn.checkpoint import DetectionCheckpointer
from mrcnn.config import get_cfg
from mrcnn.modeling import build_model
from mrcnn.modeling.roi_heads import CascadeROIHeads, cascade_rcnn
from mrcnn.structures import Boxes, Instances

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CASCADE_CONFIGS = ["cascade_mask_rcnn_R_50_FPN_1x.yaml", "cascade_mask_rcnn_R_50_FPN_3x.yaml"]


def detectron2_cascade_r50_fpn_shapes(
    stem: int = 64,
    res2_out: int = 256,
    bottleneck: int = 64,
    fpn: int = 256,
    fc: int = 1024,
    pooler: int = 7,
    mask_conv: int = 256,
    num_classes: int = 80,
    num_anchors: int = 3,
) -> Dict[str, Tuple[int, ...]]:
    """Name -> shape of every tensor of detectron2's Cascade Mask R-CNN R50-FPN (the model of its
    Misc/cascade_mask_rcnn_R_50_FPN_{1x,3x} files), written from detectron2's module tree: ResNet
    (stem, res2..res5 of BottleneckBlocks, FrozenBatchNorm2d ``.norm`` with four buffers), FPN
    lateral/output convs, StandardRPNHead, one FastRCNNConvFCHead (fc1, fc2) and one class-agnostic
    FastRCNNOutputLayers per stage in ModuleLists, MaskRCNNConvUpsampleHead with 4 convs."""
    shapes: Dict[str, Tuple[int, ...]] = {}

    def conv(name, out_channels, in_channels, kernel, frozen_norm=True):
        shapes[f"{name}.weight"] = (out_channels, in_channels, kernel, kernel)
        if frozen_norm:
            for buffer in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{name}.norm.{buffer}"] = (out_channels,)
        else:
            shapes[f"{name}.bias"] = (out_channels,)

    def linear(name, out_features, in_features):
        shapes[f"{name}.weight"] = (out_features, in_features)
        shapes[f"{name}.bias"] = (out_features,)

    conv("backbone.bottom_up.stem.conv1", stem, 3, 7)
    in_channels, width, out_channels = stem, bottleneck, res2_out
    for stage, num_blocks in zip(range(2, 6), (3, 4, 6, 3)):
        for block in range(num_blocks):
            prefix = f"backbone.bottom_up.res{stage}.{block}"
            block_in = in_channels if block == 0 else out_channels
            if block == 0:
                conv(f"{prefix}.shortcut", out_channels, block_in, 1)
            conv(f"{prefix}.conv1", width, block_in, 1)
            conv(f"{prefix}.conv2", width, width, 3)
            conv(f"{prefix}.conv3", out_channels, width, 1)
        in_channels, width, out_channels = out_channels, width * 2, out_channels * 2
    for level in range(2, 6):
        conv(f"backbone.fpn_lateral{level}", fpn, res2_out * 2 ** (level - 2), 1, frozen_norm=False)
        conv(f"backbone.fpn_output{level}", fpn, fpn, 3, frozen_norm=False)
    conv("proposal_generator.rpn_head.conv", fpn, fpn, 3, frozen_norm=False)
    conv("proposal_generator.rpn_head.objectness_logits", num_anchors, fpn, 1, frozen_norm=False)
    conv("proposal_generator.rpn_head.anchor_deltas", num_anchors * 4, fpn, 1, frozen_norm=False)
    for stage in range(3):
        linear(f"roi_heads.box_head.{stage}.fc1", fc, fpn * pooler * pooler)
        linear(f"roi_heads.box_head.{stage}.fc2", fc, fc)
        linear(f"roi_heads.box_predictor.{stage}.cls_score", num_classes + 1, fc)
        linear(f"roi_heads.box_predictor.{stage}.bbox_pred", 4, fc)
    for index in range(1, 5):
        conv(f"roi_heads.mask_head.mask_fcn{index}", mask_conv, fpn if index == 1 else mask_conv, 3, frozen_norm=False)
    shapes["roi_heads.mask_head.deconv.weight"] = (mask_conv, mask_conv, 2, 2)  # ConvTranspose2d: (in, out, k, k)
    shapes["roi_heads.mask_head.deconv.bias"] = (mask_conv,)
    conv("roi_heads.mask_head.predictor", num_classes, mask_conv, 1, frozen_norm=False)
    return shapes


def _zoo_cfg(name: str, extra=()):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(REPO_ROOT, "configs", "Misc", name))
    cfg.merge_from_list(["MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu"] + list(extra))
    return cfg


@pytest.mark.parametrize("config", CASCADE_CONFIGS)
def test_zoo_config_has_detectron2_names_and_shapes(config):
    cfg = _zoo_cfg(config, ["MODEL.DEVICE", "meta"])
    with torch.device("meta"):  # full size, without allocating 72M parameters
        model = build_model(cfg)
    assert isinstance(model.roi_heads, CascadeROIHeads)
    ours = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    expected = detectron2_cascade_r50_fpn_shapes()
    assert sorted(set(expected) - set(ours)) == [] and sorted(set(ours) - set(expected)) == []
    assert {name: shape for name, shape in ours.items() if expected[name] != shape} == {}


TINY_WIDTHS = dict(stem=16, res2_out=32, bottleneck=8, fpn=16, fc=32, mask_conv=16, num_classes=3)
TINY_OPTS = [
    "MODEL.RESNETS.STEM_OUT_CHANNELS", "16",
    "MODEL.RESNETS.RES2_OUT_CHANNELS", "32",
    "MODEL.RESNETS.WIDTH_PER_GROUP", "8",
    "MODEL.FPN.OUT_CHANNELS", "16",
    "MODEL.ROI_BOX_HEAD.FC_DIM", "32",
    "MODEL.ROI_MASK_HEAD.CONV_DIM", "16",
    "MODEL.ROI_HEADS.NUM_CLASSES", "3",
    "MODEL.ANCHOR_GENERATOR.SIZES", "[[8], [16], [32], [64], [128]]",
    "MODEL.RPN.PRE_NMS_TOPK_TEST", "200",
    "MODEL.RPN.POST_NMS_TOPK_TEST", "50",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
    "INPUT.MIN_SIZE_TEST", "64",
    "INPUT.MAX_SIZE_TEST", "96",
    "TEST.DETECTIONS_PER_IMAGE", "20",
]  # fmt: skip


def _summary(messages):
    found = [m for m in messages if m.startswith("Loaded ")]
    assert len(found) == 1, messages
    numbers = re.match(
        r"Loaded (\d+) of (\d+) model tensors from (\d+) in the file.*?(\d+) skipped.*?(\d+) missing"
        r".*?(\d+) in the file unused",
        found[0],
    )
    return found[0], [int(n) for n in numbers.groups()]


def test_detectron2_model_zoo_pickle_loads_every_tensor(tmp_path, log_messages):
    """A detectron2-format .pkl with the names and shapes above (at narrow widths) loads with every
    tensor placed, and the model runs on it."""
    rng = np.random.default_rng(0)
    arrays = {}
    for name, shape in detectron2_cascade_r50_fpn_shapes(**TINY_WIDTHS).items():
        if name.endswith("running_var"):
            arrays[name] = rng.uniform(0.5, 2.0, size=shape).astype(np.float32)
        elif ".norm." in name and name.endswith("weight"):
            arrays[name] = rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
        else:
            arrays[name] = (rng.standard_normal(size=shape) * 0.1).astype(np.float32)
    path = tmp_path / "model_final_cascade.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": arrays, "__author__": "Detectron2 Model Zoo"}, f)

    messages = log_messages("mrcnn.checkpoint", 20)
    torch.manual_seed(0)
    model = build_model(_zoo_cfg(CASCADE_CONFIGS[0], TINY_OPTS)).eval()
    DetectionCheckpointer(model).load(str(path))
    line, (loaded, total, in_file, skipped, missing, unused) = _summary(messages)
    assert loaded == total == in_file == len(arrays) and skipped == missing == unused == 0, line
    for name, tensor in model.state_dict().items():
        assert np.array_equal(tensor.numpy(), arrays[name]), name

    image = torch.from_numpy(natural_image(64, 96, seed=5)).permute(2, 0, 1).float()
    with torch.no_grad():
        instances = model([{"image": image, "height": 64, "width": 96}])[0]["instances"]
    assert len(instances) == 20 and instances.pred_masks.shape == (20, 64, 96)


def _tiny_cascade_cfg(extra=()):
    cfg = tiny_config(num_classes=3)
    cfg.merge_from_list(
        ["MODEL.ROI_HEADS.NAME", "CascadeROIHeads", "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG", "True"] + list(extra)
    )
    return cfg


def _features(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {
        f"p{level}": torch.randn(1, 32, 128 // 2**level, 128 // 2**level, generator=generator) for level in range(2, 6)
    }


def _proposals(boxes, image_size=(128, 128)):
    proposals = Instances(image_size)
    proposals.proposal_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    proposals.objectness_logits = torch.zeros(len(boxes))
    return proposals


def test_inference_averages_stage_scores_and_keeps_the_last_stage_boxes():
    torch.manual_seed(0)
    heads = build_model(_tiny_cascade_cfg()).roi_heads.eval()
    # Each stage ignores its features (zero weights): fixed class logits, and a shift of +2 px in x
    # (box width 20, so dx = w_x * 2 / 20 with the stage's weight w_x = 10, 20, 30).
    logits = [
        torch.tensor([2.0, 0.0, -1.0, 0.5]),
        torch.tensor([0.0, 1.0, 0.0, 0.0]),
        torch.tensor([-1.0, 0.0, 3.0, 0.0]),
    ]
    for stage, predictor in enumerate(heads.box_predictor):
        with torch.no_grad():
            predictor.cls_score.weight.zero_()
            predictor.cls_score.bias.copy_(logits[stage])
            predictor.bbox_pred.weight.zero_()
            predictor.bbox_pred.bias.copy_(torch.tensor([(stage + 1) * 10 * 2 / 20, 0.0, 0.0, 0.0]))
        predictor.test_score_thresh = 0.05
    proposals = [_proposals([[10.0, 10.0, 30.0, 40.0], [70.0, 60.0, 90.0, 100.0]])]
    with torch.no_grad():
        detections, _ = heads(None, _features(), proposals)
    detections = detections[0]

    expected_scores = torch.stack([torch.softmax(lg, dim=0) for lg in logits]).mean(dim=0)[:3]  # per class
    kept_classes = [c for c in range(3) if expected_scores[c] > 0.05]
    expected = sorted(
        (round(float(expected_scores[c]), 5), c, x1 + 6.0, y1, x2 + 6.0, y2)
        for (x1, y1, x2, y2) in [(10.0, 10.0, 30.0, 40.0), (70.0, 60.0, 90.0, 100.0)]
        for c in kept_classes
    )
    got = sorted(
        (round(float(s), 5), int(c), *[round(float(v), 3) for v in box])
        for s, c, box in zip(detections.scores, detections.pred_classes, detections.pred_boxes.tensor)
    )
    assert got == expected
    assert detections.pred_masks.shape[0] == len(expected)


def test_later_stages_match_the_previous_stage_boxes_at_their_own_iou():
    torch.manual_seed(0)
    heads = build_model(_tiny_cascade_cfg()).roi_heads.train()
    gt = Instances((128, 128))
    gt.gt_boxes = Boxes(torch.tensor([[20.0, 20.0, 60.0, 60.0]]))
    gt.gt_classes = torch.tensor([2])
    # IoU with the gt: 1.0, 0.64, 0.5625-ish, 0 ; and a box that is empty once clipped
    boxes = [
        torch.tensor(
            [
                [20.0, 20.0, 60.0, 60.0],
                [20.0, 20.0, 60.0, 45.6],
                [20.0, 20.0, 60.0, 42.5],
                [80, 80, 100, 100],
                [130, 5, 140, 9],
            ]
        )
    ]
    proposals = heads._create_proposals_from_boxes(boxes, [(128, 128)])
    assert len(proposals[0]) == 4  # the box outside the image became empty and was dropped in training
    ious = [1.0, 0.64, 0.5625, 0.0]
    for stage, threshold in ((1, 0.6), (2, 0.7)):
        labelled = heads._match_and_label_boxes([p[:] for p in proposals], stage, [gt])[0]
        expected = [2 if iou >= threshold else 3 for iou in ious]  # class 2 or background (3)
        assert labelled.gt_classes.tolist() == expected, stage
        assert torch.equal(labelled.gt_boxes.tensor, gt.gt_boxes.tensor.expand(4, 4))
    heads.eval()
    assert len(heads._create_proposals_from_boxes(boxes, [(128, 128)])[0]) == 5  # kept in inference


def test_pooled_features_get_a_third_of_the_gradient():
    cfg = _tiny_cascade_cfg(["MODEL.MASK_ON", "False"])
    torch.manual_seed(0)
    heads = build_model(cfg).roi_heads.train()
    batch = synthetic_training_batch(1, 128, 128, num_classes=3, seed=1)
    targets = [batch[0]["instances"]]
    proposals = [_proposals([[8.0 * i, 4.0 * i, 8.0 * i + 40, 4.0 * i + 50] for i in range(10)])]

    def gradients(scale_gradient):
        features = {name: value.requires_grad_() for name, value in _features().items()}
        torch.manual_seed(1)  # the same RoI sample both times
        with pytest.MonkeyPatch.context() as patch:
            if not scale_gradient:
                patch.setattr(cascade_rcnn._ScaleGradient, "apply", staticmethod(lambda x, scale: x))
            _, losses = heads(None, features, proposals, targets)
        heads.zero_grad()
        sum(losses.values()).backward()
        feature_grads = [torch.zeros_like(f) if f.grad is None else f.grad for f in features.values()]  # unused levels
        return torch.cat([g.flatten() for g in feature_grads]), [p.grad.clone() for p in heads.parameters()]

    scaled_features, scaled_parameters = gradients(True)
    plain_features, plain_parameters = gradients(False)
    assert plain_features.abs().max() > 0
    torch.testing.assert_close(scaled_features, plain_features / 3, rtol=1e-5, atol=1e-8)
    for scaled, plain in zip(scaled_parameters, plain_parameters):  # the heads' own gradients are unchanged
        torch.testing.assert_close(scaled, plain, rtol=1e-5, atol=1e-8)


def test_training_losses_per_stage():
    torch.manual_seed(0)
    model = build_model(_tiny_cascade_cfg()).train()
    losses = model(synthetic_training_batch(2, 64, 96, num_classes=3, seed=0))
    stage_losses = {f"{name}_stage{k}" for name in ("loss_cls", "loss_box_reg") for k in range(3)}
    assert stage_losses | {"loss_rpn_cls", "loss_rpn_loc", "loss_mask"} == set(losses)
    assert all(torch.isfinite(value) for value in losses.values())
    sum(losses.values()).backward()
    for stage in range(3):
        assert model.roi_heads.box_predictor[stage].bbox_pred.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "opts, named",
    [
        (["MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG", "False"], "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG"),
        (["MODEL.ROI_BOX_CASCADE_HEAD.IOUS", "[0.4, 0.6, 0.7]"], "MODEL.ROI_HEADS.IOU_THRESHOLDS"),
        (["MODEL.ROI_BOX_CASCADE_HEAD.IOUS", "[0.5, 0.6]"], "MODEL.ROI_BOX_CASCADE_HEAD.IOUS"),
        (
            ["MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS", "[[10, 10, 5], [20, 20, 10, 10], [30, 30, 15, 15]]"],
            "BBOX_REG_WEIGHTS",
        ),
    ],
)
def test_bad_cascade_settings_name_the_key(opts, named):
    cfg = _tiny_cascade_cfg()
    cfg.merge_from_list(opts)
    with pytest.raises(ValueError, match=re.escape(named)):
        build_model(cfg)


@pytest.mark.parametrize("training", [True, False])
def test_boxes_that_are_not_finite_are_named(training):
    heads = build_model(_tiny_cascade_cfg()).roi_heads.train(training)
    boxes = [torch.tensor([[1.0, 2.0, 30.0, 40.0]]), torch.tensor([[1.0, 2.0, float("nan"), 40.0]])]
    with pytest.raises(ValueError, match="inf or nan"):
        heads._create_proposals_from_boxes(boxes, [(64, 64), (64, 64)])
    clipped = heads._create_proposals_from_boxes([boxes[0], boxes[0] + 50], [(64, 64), (48, 64)])
    assert clipped[0].proposal_boxes.tensor.tolist() == [[1.0, 2.0, 30.0, 40.0]]
    # clipped to its own image (48 px high): empty, so dropped in training and kept in inference
    expected = [] if training else [[51.0, 48.0, 64.0, 48.0]]
    assert clipped[1].proposal_boxes.tensor.tolist() == expected
