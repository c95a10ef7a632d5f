"""Res5ROIHeads: the RoI heads of a "C4" model, where res5 runs once per RoI for boxes and masks."""

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from mrcnn.config import configurable
from mrcnn.layers import ShapeSpec, cat
from mrcnn.modeling.backbone.resnet import BottleneckBlock, DeformBottleneckBlock, ResNet
from mrcnn.modeling.matcher import Matcher
from mrcnn.modeling.poolers import ROIPooler
from mrcnn.structures import Boxes, ImageList, Instances

from .fast_rcnn import FastRCNNOutputLayers
from .mask_head import build_mask_head
from .roi_heads import ROI_HEADS_REGISTRY, StandardROIHeads

__all__ = ["Res5ROIHeads"]


@ROI_HEADS_REGISTRY.register()
class Res5ROIHeads(nn.Module):
    """RoIAlign on one feature map (res4), then a ResNet res5 stage shared by both branches.

    Box branch: res5 output (R, 2048, S/2, S/2) mean-pooled to (R, 2048) -> ``box_predictor``.
    Mask branch: the mask head (by default only ``deconv`` and ``predictor``) on the same res5
    output, of the foreground RoIs in training and of the detections in inference (pooled again
    at their boxes). Proposal sampling and the losses are those of StandardROIHeads. Parameter
    names are detectron2's: ``res5.0.conv1.weight``, ``res5.0.shortcut.norm.running_mean``,
    ``box_predictor.cls_score.weight``, ``mask_head.deconv.weight``, ...
    """

    @configurable
    def __init__(
        self,
        *,
        num_classes: int,
        batch_size_per_image: int,
        positive_fraction: float,
        proposal_matcher: Matcher,
        in_features: List[str],
        pooler: ROIPooler,
        res5: nn.Module,
        box_predictor: FastRCNNOutputLayers,
        mask_head: Optional[nn.Module] = None,
        proposal_append_gt: bool = True,
    ):
        """
        Args:
            num_classes: foreground classes (background is index ``num_classes``).
            batch_size_per_image, positive_fraction, proposal_matcher, proposal_append_gt: the
                proposal sampling of StandardROIHeads.
            in_features: the one feature map to pool from, e.g. ["res4"].
            pooler: RoIAlign for that map (one scale).
            res5: the per-RoI stage, (R, C, S, S) -> (R, C', S', S').
            box_predictor: class scores and box deltas from the (R, C') mean-pooled res5 output.
            mask_head: mask head on the res5 output; None for boxes only.
        """
        super().__init__()
        if len(in_features) != 1:
            raise ValueError(f"Res5ROIHeads pools one feature map; MODEL.ROI_HEADS.IN_FEATURES is {list(in_features)}.")
        self.num_classes = num_classes
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.proposal_matcher = proposal_matcher
        self.proposal_append_gt = proposal_append_gt
        self.in_features = list(in_features)
        self.pooler = pooler
        self.res5 = res5
        self.box_predictor = box_predictor
        self.mask_on = mask_head is not None
        if self.mask_on:
            self.mask_head = mask_head

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        heads = cfg.MODEL.ROI_HEADS
        in_features = list(heads.IN_FEATURES)
        if len(in_features) != 1 or in_features[0] not in input_shape:
            raise ValueError(
                f"Res5ROIHeads needs MODEL.ROI_HEADS.IN_FEATURES to name one backbone output "
                f"(available: {list(input_shape)}); got {in_features}."
            )
        box_cfg = cfg.MODEL.ROI_BOX_HEAD
        resolution = box_cfg.POOLER_RESOLUTION
        res5, out_channels = cls.build_res5_block(cfg, input_shape[in_features[0]].channels)
        args = {
            "num_classes": heads.NUM_CLASSES,
            "batch_size_per_image": heads.BATCH_SIZE_PER_IMAGE,
            "positive_fraction": heads.POSITIVE_FRACTION,
            "proposal_matcher": Matcher(heads.IOU_THRESHOLDS, heads.IOU_LABELS, allow_low_quality_matches=False),
            "proposal_append_gt": heads.PROPOSAL_APPEND_GT,
            "in_features": in_features,
            "pooler": ROIPooler(
                output_size=resolution,
                scales=[1.0 / input_shape[in_features[0]].stride],
                sampling_ratio=box_cfg.POOLER_SAMPLING_RATIO,
                pooler_type=box_cfg.POOLER_TYPE,
            ),
            "res5": res5,
            "box_predictor": FastRCNNOutputLayers(cfg, ShapeSpec(channels=out_channels, height=1, width=1)),
        }
        if cfg.MODEL.MASK_ON:
            args["mask_head"] = build_mask_head(
                cfg, ShapeSpec(channels=out_channels, height=resolution, width=resolution)
            )
        return args

    @classmethod
    def build_res5_block(cls, cfg, in_channels: int) -> Tuple[nn.Sequential, int]:
        """res5 as the backbone would build it (MODEL.RESNETS.*), three bottleneck blocks, the
        first of stride 2; returns it and its output channels."""
        res = cfg.MODEL.RESNETS
        stage_factor = 2**3  # res5 is 8 times as wide as res2
        out_channels = res.RES2_OUT_CHANNELS * stage_factor
        if in_channels != out_channels // 2:
            raise ValueError(
                f"Res5ROIHeads: the pooled feature {cfg.MODEL.ROI_HEADS.IN_FEATURES} has {in_channels} channels, "
                f"but a res5 after MODEL.RESNETS.RES2_OUT_CHANNELS {res.RES2_OUT_CHANNELS} takes {out_channels // 2}."
            )
        deform = bool(res.DEFORM_ON_PER_STAGE[-1])
        extra = {"deform_modulated": res.DEFORM_MODULATED, "deform_num_groups": res.DEFORM_NUM_GROUPS} if deform else {}
        blocks = ResNet.make_stage(
            DeformBottleneckBlock if deform else BottleneckBlock,
            3,
            stride_per_block=[2, 1, 1],
            in_channels=in_channels,
            out_channels=out_channels,
            bottleneck_channels=res.NUM_GROUPS * res.WIDTH_PER_GROUP * stage_factor,
            num_groups=res.NUM_GROUPS,
            norm=res.NORM,
            stride_in_1x1=res.STRIDE_IN_1X1,
            **extra,
        )
        return nn.Sequential(*blocks), out_channels

    # The same matching and sampling as StandardROIHeads (it reads only the attributes set above).
    label_and_sample_proposals = StandardROIHeads.label_and_sample_proposals
    _sample_proposals = StandardROIHeads._sample_proposals

    def _shared_roi_transform(self, features: Dict[str, torch.Tensor], boxes: List[Boxes]) -> torch.Tensor:
        """Pool every box and run res5: (R, C, S', S')."""
        pooled = self.pooler([features[f] for f in self.in_features], boxes)
        return self.res5(pooled)

    def forward(
        self,
        images: ImageList,
        features: Dict[str, torch.Tensor],
        proposals: List[Instances],
        targets: Optional[List[Instances]] = None,
    ) -> Tuple[List[Instances], Dict[str, torch.Tensor]]:
        """Training: (sampled proposals, losses); inference: (detections with pred_masks, {})."""
        del images
        if self.training:
            if targets is None:
                raise ValueError("Res5ROIHeads needs gt instances in training.")
            proposals, num_foreground = self._sample_proposals(proposals, targets)
        box_features = self._shared_roi_transform(features, [p.proposal_boxes for p in proposals])
        predictions = self.box_predictor(box_features.mean(dim=(2, 3)))
        if not self.training:
            detections, _ = self.box_predictor.inference(predictions, proposals)
            return self.forward_with_given_boxes(features, detections), {}
        losses = self.box_predictor.losses(predictions, proposals)
        if self.mask_on:
            # res5 already ran on every sampled RoI: the mask loss reuses the foreground ones,
            # which lead each image's sample
            per_image_features = box_features.split([len(p) for p in proposals])
            foreground_features = cat([part[:count] for part, count in zip(per_image_features, num_foreground)])
            foreground_proposals = [p[:count] for p, count in zip(proposals, num_foreground)]
            losses.update(self.mask_head(foreground_features, foreground_proposals))
        return proposals, losses

    def forward_with_given_boxes(
        self, features: Dict[str, torch.Tensor], instances: List[Instances]
    ) -> List[Instances]:
        """Run the mask branch on detections (pred_boxes, pred_classes) and return them."""
        if not self.mask_on:
            return instances
        mask_features = self._shared_roi_transform(features, [i.pred_boxes for i in instances])
        return self.mask_head(mask_features, instances)
