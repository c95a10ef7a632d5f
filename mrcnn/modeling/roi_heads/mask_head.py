"""Mask head: a small FCN predicting an M×M mask per RoI and class, its loss and inference."""

from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from mrcnn.config import configurable
from mrcnn.layers import Conv2d, ShapeSpec, cat, get_norm
from mrcnn.structures import Instances
from mrcnn.utils.registry import Registry

from ..cached_tensors import cached_arange
from .mask_targets import MASK_TARGET_MODES, mask_targets_of_images

__all__ = [
    "ROI_MASK_HEAD_REGISTRY",
    "MaskRCNNConvUpsampleHead",
    "mask_rcnn_loss",
    "mask_rcnn_inference",
    "build_mask_head",
]

ROI_MASK_HEAD_REGISTRY = Registry("ROI_MASK_HEAD")
ROI_MASK_HEAD_REGISTRY.__doc__ = "Mask heads, built from (cfg, input_shape: ShapeSpec)."


def mask_rcnn_loss(
    pred_mask_logits: torch.Tensor, instances: List[Instances], target_mode: str = "crop_and_resize"
) -> torch.Tensor:
    """Mean per-pixel binary cross-entropy on each RoI's gt-class channel.

    pred_mask_logits: (R, K or 1, M, M) for the foreground RoIs of ``instances`` (in order); the
    targets are the gt masks on each proposal box's M×M grid, built as ``target_mode`` says
    ("crop_and_resize" or "roi_align_image_mask", see mask_targets.py).
    """
    class_agnostic = pred_mask_logits.size(1) == 1
    mask_size = pred_mask_logits.size(2)
    instances = [per_image for per_image in instances if len(per_image) > 0]
    if len(instances) == 0:
        return pred_mask_logits.sum() * 0
    gt_masks = mask_targets_of_images(instances, mask_size, target_mode)
    if gt_masks.device != pred_mask_logits.device:
        gt_masks = gt_masks.to(pred_mask_logits.device)
    if class_agnostic:
        logits = pred_mask_logits[:, 0]
    else:
        gt_classes = cat([per_image.gt_classes for per_image in instances], dim=0)
        if gt_classes.dtype != torch.int64:
            gt_classes = gt_classes.to(torch.int64)
        rows = cached_arange(0, pred_mask_logits.size(0), pred_mask_logits.device)
        logits = pred_mask_logits[rows, gt_classes]
    return F.binary_cross_entropy_with_logits(logits, gt_masks, reduction="mean")


def mask_rcnn_inference(pred_mask_logits: torch.Tensor, pred_instances: List[Instances]) -> None:
    """Set ``pred_masks`` (R_i, 1, M, M) probabilities of each detection's predicted class."""
    if pred_mask_logits.size(1) == 1:
        probs = pred_mask_logits.sigmoid()
    else:
        classes = cat([i.pred_classes for i in pred_instances])
        rows = torch.arange(pred_mask_logits.size(0), device=pred_mask_logits.device)
        probs = pred_mask_logits[rows, classes][:, None].sigmoid()
    for probs_per_image, instances in zip(probs.split([len(i) for i in pred_instances]), pred_instances):
        instances.pred_masks = probs_per_image


@ROI_MASK_HEAD_REGISTRY.register()
class MaskRCNNConvUpsampleHead(nn.Sequential):
    """``mask_fcn1..N`` 3×3 convs (optional norm, ReLU), a 2× ``deconv`` (ReLU), a 1×1 ``predictor``.

    (R, C, S, S) -> mask logits (R, K, 2S, 2S).
    """

    @configurable
    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        num_classes: int,
        conv_dims: List[int],
        conv_norm: str = "",
        loss_weight: float = 1.0,
        target_mode: str = "crop_and_resize",
    ):
        """
        Args:
            input_shape: shape of the pooled RoI features.
            num_classes: masks predicted per RoI (1 for class-agnostic masks).
            conv_dims: widths of the 3×3 convs, then of the deconv.
            conv_norm: norm after each 3×3 conv ("" for none).
            loss_weight: multiplier of loss_mask.
            target_mode: how the training targets are built: "crop_and_resize" (detectron2) or
                "roi_align_image_mask" (torchvision); see mask_targets.py.
        """
        super().__init__()
        if target_mode not in MASK_TARGET_MODES:
            raise ValueError(
                f"MODEL.ROI_MASK_HEAD.TARGET_MODE must be one of {list(MASK_TARGET_MODES)}, got {target_mode!r}"
            )
        if len(conv_dims) < 1:
            raise ValueError("The mask head needs a deconv width: conv_dims must hold at least one entry.")
        channels = input_shape.channels
        for index, dim in enumerate(conv_dims[:-1]):
            conv = Conv2d(
                channels,
                dim,
                kernel_size=3,
                padding=1,
                bias=not conv_norm,
                norm=get_norm(conv_norm, dim),
                activation=nn.ReLU(),
            )
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            self.add_module(f"mask_fcn{index + 1}", conv)
            channels = dim
        self.deconv = nn.ConvTranspose2d(channels, conv_dims[-1], kernel_size=2, stride=2)
        self.add_module("deconv_relu", nn.ReLU())
        self.predictor = nn.Conv2d(conv_dims[-1], num_classes, kernel_size=1)
        nn.init.kaiming_normal_(self.deconv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.deconv.bias)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.zeros_(self.predictor.bias)
        self.loss_weight = loss_weight
        self.target_mode = target_mode

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        head = cfg.MODEL.ROI_MASK_HEAD
        return {
            "input_shape": input_shape,
            "num_classes": 1 if head.CLS_AGNOSTIC_MASK else cfg.MODEL.ROI_HEADS.NUM_CLASSES,
            "conv_dims": [head.CONV_DIM] * (head.NUM_CONV + 1),
            "conv_norm": head.NORM,
            "target_mode": head.TARGET_MODE,
        }

    def forward(self, x: torch.Tensor, instances: List[Instances]):
        """Training: {"loss_mask"}; inference: sets pred_masks on ``instances`` and returns them."""
        if self.training:
            return {"loss_mask": mask_rcnn_loss(self.layers(x), instances, self.target_mode) * self.loss_weight}
        if self.predictor.out_channels > 1 and type(self).layers is MaskRCNNConvUpsampleHead.layers:
            logits = self.predicted_class_logits(x, instances)
        else:
            logits = self.layers(x)
        mask_rcnn_inference(logits, instances)
        return instances

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Everything before the 1×1 predictor: (R, C, S, S) -> (R, D, 2S, 2S)."""
        for layer in self.children():
            if layer is self.predictor:
                break
            x = layer(x)
        return x

    def layers(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutional stack alone: (R, C, S, S) -> (R, K, 2S, 2S)."""
        return self.predictor(self.features(x))

    def predicted_class_logits(self, x: torch.Tensor, instances: List[Instances]) -> torch.Tensor:
        """Logits (R, 1, 2S, 2S) of each RoI's pred_classes only: at inference the other K - 1
        channels of the 1×1 predictor would be computed and thrown away."""
        features = self.features(x)  # (R, D, 2S, 2S)
        classes = cat([i.pred_classes for i in instances]).to(torch.int64)
        weight = self.predictor.weight[classes, :, 0, 0]  # (R, D)
        logits = torch.einsum("rdhw,rd->rhw", features, weight.to(features.dtype))
        if self.predictor.bias is not None:
            logits = logits + self.predictor.bias[classes].to(logits.dtype)[:, None, None]
        return logits[:, None]


def build_mask_head(cfg, input_shape: ShapeSpec) -> nn.Module:
    """The mask head named by MODEL.ROI_MASK_HEAD.NAME."""
    return ROI_MASK_HEAD_REGISTRY.get(cfg.MODEL.ROI_MASK_HEAD.NAME)(cfg, input_shape)
