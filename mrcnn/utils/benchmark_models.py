"""Matched model pairs for benchmarks and parity checks: a seeded torchvision Mask R-CNN with
realistic weights statistics, and the same weights in an mrcnn model.

Random weights alone make a poor benchmark: every BatchNorm sees the wrong statistics, activations
explode or vanish, and the detector returns either nothing or a flat wall of equal scores. Here the
frozen BatchNorm statistics are measured on a natural-looking image and the heads are scaled so
that scores spread out, so a forward pass produces about as many detections (up to 100 per image)
and masks as a trained model does, and the two implementations can be compared detection by
detection.
"""
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

__all__ = [
    "freeze_batchnorms",
    "TORCHVISION_CONFIG",
    "calibrated_torchvision_maskrcnn",
    "detections_agreement",
    "match_torchvision_settings",
    "mrcnn_model_from_torchvision",
    "synthetic_training_batch",
    "to_torchvision_training_inputs",
    "torchvision_equivalent_config",
]

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TORCHVISION_CONFIG = os.path.join(
    _REPO_ROOT, "configs", "COCO-InstanceSegmentation", "mask_rcnn_R_50_FPN_torchvision.yaml"
)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def freeze_batchnorms(module: nn.Module) -> nn.Module:
    """Replace every nn.BatchNorm2d in ``module`` by torchvision's FrozenBatchNorm2d with its statistics."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features)
            frozen.weight.copy_(child.weight.data)
            frozen.bias.copy_(child.bias.data)
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            freeze_batchnorms(child)
    return module


def calibrated_torchvision_maskrcnn(
    image: torch.Tensor, seed: int = 0, spread_scores: bool = True, depth: int = 50
) -> nn.Module:
    """torchvision's maskrcnn_resnet50_fpn (91 classes, eval mode) with seeded weights calibrated on ``image``.

    ``depth`` 18, 34 or 101 swaps the ResNet for a lighter or deeper one (the rest is unchanged), for
    quick checks with MODEL.RESNETS.DEPTH set alike (and RES2_OUT_CHANNELS 64 for 18 and 34).

    image: (3, H, W) float RGB in 0-255. The ResNet's frozen BatchNorm statistics are those of
    ``image`` (one training-mode pass). With ``spread_scores`` the RPN, box and mask predictors are
    scaled so that objectness and class scores spread over (0, 1): about 100 detections with
    well-ordered scores. Without it the predictors keep torchvision's initialisation, the better
    start for training.
    """
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.models import resnet

    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"calibrated_torchvision_maskrcnn: image must be (3, H, W), got {tuple(image.shape)}")
    constructors = {18: resnet.resnet18, 34: resnet.resnet34, 50: resnet.resnet50, 101: resnet.resnet101}
    if depth not in constructors:
        raise ValueError(f"calibrated_torchvision_maskrcnn: depth must be one of {sorted(constructors)}, got {depth}")
    torch.manual_seed(seed)
    # momentum=None: the running statistics become the plain average of the calibration pass
    body = constructors[depth](weights=None, norm_layer=lambda channels: nn.BatchNorm2d(channels, momentum=None))
    body.train()
    with torch.no_grad():
        mean = torch.tensor(_IMAGENET_MEAN)[:, None, None]
        std = torch.tensor(_IMAGENET_STD)[:, None, None]
        body(((image.float() / 255.0 - mean) / std)[None])
    for module in body.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.0)
            module.bias.data.uniform_(-0.2, 0.2)
    body = freeze_batchnorms(body)
    model = MaskRCNN(_resnet_fpn_extractor(body, 3), num_classes=91)
    if not spread_scores:
        return model.eval()
    with torch.no_grad():
        model.rpn.head.cls_logits.weight.mul_(30.0)
        model.rpn.head.bbox_pred.weight.mul_(5.0)
        model.roi_heads.box_predictor.cls_score.weight.mul_(400.0)
        model.roi_heads.box_predictor.bbox_pred.weight.mul_(50.0)
        model.roi_heads.mask_predictor.mask_fcn_logits.weight.mul_(4.0)
        # Without a bias, RoI cells whose features are all zero after ReLU give probability
        # exactly 0.5, and the mask threshold would decide them by rounding noise.
        model.roi_heads.mask_predictor.mask_fcn_logits.bias.uniform_(-1.0, 1.0)
    return model.eval()


def torchvision_equivalent_config(opts: Optional[list] = None):
    """The config that reproduces torchvision's maskrcnn_resnet50_fpn, with ``opts`` (KEY VALUE ...) merged."""
    from mrcnn.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(TORCHVISION_CONFIG)
    if opts:
        cfg.merge_from_list(list(opts))
    return cfg


def match_torchvision_settings(torchvision_model: nn.Module, cfg) -> nn.Module:
    """Give torchvision's Mask R-CNN the proposal, sampling and test-time settings of ``cfg``
    (MODEL.RPN.*, MODEL.ROI_HEADS.*, TEST.DETECTIONS_PER_IMAGE), so both models do the same work."""
    rpn, heads = torchvision_model.rpn, torchvision_model.roi_heads
    rpn._pre_nms_top_n = {"training": cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN, "testing": cfg.MODEL.RPN.PRE_NMS_TOPK_TEST}
    rpn._post_nms_top_n = {"training": cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN, "testing": cfg.MODEL.RPN.POST_NMS_TOPK_TEST}
    rpn.nms_thresh = cfg.MODEL.RPN.NMS_THRESH
    rpn.fg_bg_sampler.batch_size_per_image = cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE
    rpn.fg_bg_sampler.positive_fraction = cfg.MODEL.RPN.POSITIVE_FRACTION
    heads.fg_bg_sampler.batch_size_per_image = cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE
    heads.fg_bg_sampler.positive_fraction = cfg.MODEL.ROI_HEADS.POSITIVE_FRACTION
    heads.score_thresh = cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST
    heads.nms_thresh = cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST
    heads.detections_per_img = cfg.TEST.DETECTIONS_PER_IMAGE
    return torchvision_model


def mrcnn_model_from_torchvision(torchvision_model: nn.Module, cfg=None) -> nn.Module:
    """An mrcnn model (eval mode) built from ``cfg`` (default: the torchvision-equivalent config)
    holding ``torchvision_model``'s weights, converted; loading is strict."""
    from mrcnn.checkpoint.convert_torchvision import convert_torchvision_state_dict
    from mrcnn.modeling import build_model

    if cfg is None:
        cfg = torchvision_equivalent_config()
    model = build_model(cfg)
    state = convert_torchvision_state_dict(torchvision_model.state_dict())
    model.load_state_dict({k: v.to(model.device) for k, v in state.items()}, strict=True)
    return model.eval()


def _ellipse_polygon(rng: np.random.Generator, height: int, width: int, vertices: int = 24) -> np.ndarray:
    """A flat [x0, y0, x1, y1, ...] ellipse, log-uniform in size so small, medium and large objects occur."""
    side = float(np.exp(rng.uniform(np.log(12), np.log(0.6 * min(height, width)))))
    aspect = float(np.exp(rng.uniform(-0.7, 0.7)))
    rx, ry = side * np.sqrt(aspect) / 2, side / np.sqrt(aspect) / 2
    cx, cy = rng.uniform(rx, width - rx), rng.uniform(ry, height - ry)
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1).reshape(-1)


def synthetic_training_batch(
    num_images: int,
    height: int,
    width: int,
    instances_per_image: float = 7.0,
    num_classes: int = 80,
    seed: int = 0,
) -> List[Dict]:
    """``num_images`` model inputs for training: natural-looking (3, height, width) uint8 RGB images
    with Instances of gt_boxes, gt_classes and PolygonMasks gt_masks (ellipses).

    The instance count is Poisson around ``instances_per_image`` (COCO averages about 7), at least 1.
    """
    from mrcnn.structures import Boxes, Instances, PolygonMasks

    from .testing import natural_image

    rng = np.random.default_rng(seed)
    batch = []
    for index in range(num_images):
        image = torch.from_numpy(natural_image(height, width, seed=seed * 1000 + index)).permute(2, 0, 1)
        count = max(1, int(rng.poisson(instances_per_image)))
        polygons = [_ellipse_polygon(rng, height, width) for _ in range(count)]
        masks = PolygonMasks([[polygon] for polygon in polygons])
        instances = Instances((height, width))
        instances.gt_boxes = Boxes(masks.get_bounding_boxes().tensor)
        instances.gt_classes = torch.from_numpy(rng.integers(0, num_classes, size=count)).to(torch.int64)
        instances.gt_masks = masks
        batch.append({"image": image.contiguous(), "height": height, "width": width, "instances": instances})
    return batch


def to_torchvision_training_inputs(batch: List[Dict]) -> Tuple[List[torch.Tensor], List[Dict[str, torch.Tensor]]]:
    """The same batch as torchvision's detection models take it: 0-1 float images and target dicts
    with boxes, labels (our class + 1: torchvision keeps 0 for background) and uint8 bit masks."""
    from mrcnn.structures import polygons_to_bitmask

    images, targets = [], []
    for item in batch:
        instances = item["instances"]
        height, width = instances.image_size
        masks = np.stack([polygons_to_bitmask(p, height, width) for p in instances.gt_masks.polygons])
        images.append(item["image"].float() / 255.0)
        targets.append({
            "boxes": instances.gt_boxes.tensor.clone(),
            "labels": instances.gt_classes + 1,
            "masks": torch.from_numpy(masks.astype(np.uint8)),
        })
    return images, targets


def detections_agreement(ours, theirs: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """How closely our Instances match torchvision's output dict for one image.

    Each of our detections is paired with the unpaired torchvision detection of the same class with
    the nearest box and score (greedy, in our order), so detections with equal scores may come in
    either order. Returns the detection counts, ``classes_equal`` (every detection paired),
    ``same_order`` (paired in the same order), the largest box and score differences over the
    pairs, the lowest mask IoU over non-empty masks, and ``agree``: all within the parity test's
    tolerances (boxes 0.01 px, scores 1e-4, mask IoU 0.99).
    """
    num_ours, num_theirs = len(ours), len(theirs["boxes"])
    report = {"num_detections": num_ours, "num_detections_torchvision": num_theirs}
    if num_ours != num_theirs:
        return {**report, "agree": False}
    ours = ours.to("cpu")
    theirs = {k: v.cpu() for k, v in theirs.items()}
    our_boxes, their_boxes = ours.pred_boxes.tensor.double(), theirs["boxes"].double()
    box_diff = (our_boxes[:, None, :] - their_boxes[None, :, :]).abs().amax(dim=2)  # (N, N)
    score_diff = (ours.scores.double()[:, None] - theirs["scores"].double()[None, :]).abs()
    same_class = (ours.pred_classes + 1)[:, None] == theirs["labels"][None, :]
    # a score difference at the tolerance (1e-4) weighs like 0.01 px; other classes never pair
    cost = torch.where(same_class, box_diff + 100 * score_diff, torch.full_like(box_diff, float("inf")))
    partner = torch.full((num_ours,), -1, dtype=torch.int64)
    for index in range(num_ours):
        best = int(cost[index].argmin())
        if torch.isfinite(cost[index, best]):
            partner[index] = best
            cost[:, best] = float("inf")
    classes_equal = bool((partner >= 0).all())
    if not classes_equal:
        return {**report, "classes_equal": False, "same_order": False, "agree": False}
    rows = torch.arange(num_ours)
    max_box = float(box_diff[rows, partner].max()) if num_ours else 0.0
    max_score = float(score_diff[rows, partner].max()) if num_ours else 0.0
    min_iou = 1.0
    if ours.has("pred_masks") and "masks" in theirs and num_ours:
        their_masks = theirs["masks"][partner, 0] >= 0.5
        our_masks = ours.pred_masks
        intersection = (their_masks & our_masks).flatten(1).sum(1).float()
        union = (their_masks | our_masks).flatten(1).sum(1).float()
        nonempty = union > 0
        if bool(nonempty.any()):
            min_iou = float((intersection[nonempty] / union[nonempty]).min())
    agree = max_box <= 0.01 and max_score <= 1e-4 and min_iou >= 0.99
    return {
        **report,
        "classes_equal": True,
        "same_order": bool(torch.equal(partner, rows)),
        "max_box_difference": max_box,
        "max_score_difference": max_score,
        "min_mask_iou": min_iou,
        "agree": agree,
    }
