"""StandardROIHeads: sample proposals, pool their features, run the box and mask heads."""

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from mrcnn.config import configurable
from mrcnn.layers import ShapeSpec
from mrcnn.modeling.matcher import Matcher
from mrcnn.modeling.poolers import ROIPooler
from mrcnn.modeling.sampling import subsample_labels
from mrcnn.structures import Boxes, ImageList, Instances, pairwise_iou
from mrcnn.utils.registry import Registry

from .box_head import build_box_head
from .fast_rcnn import FastRCNNOutputLayers
from .mask_head import build_mask_head

__all__ = ["ROI_HEADS_REGISTRY", "StandardROIHeads", "build_roi_heads", "select_foreground_proposals"]

ROI_HEADS_REGISTRY = Registry("ROI_HEADS")
ROI_HEADS_REGISTRY.__doc__ = "RoI heads, built from (cfg, input_shape: Dict[str, ShapeSpec])."


def build_roi_heads(cfg, input_shape: Dict[str, ShapeSpec]) -> nn.Module:
    """The RoI heads named by MODEL.ROI_HEADS.NAME."""
    return ROI_HEADS_REGISTRY.get(cfg.MODEL.ROI_HEADS.NAME)(cfg, input_shape)


def select_foreground_proposals(proposals: List[Instances], bg_label: int) -> List[Instances]:
    """Keep the proposals labelled with a foreground class."""
    selected = []
    for per_image in proposals:
        classes = per_image.gt_classes
        selected.append(per_image[(classes != -1) & (classes != bg_label)])
    return selected


def _pooler_scales(input_shape: Dict[str, ShapeSpec], in_features: List[str]) -> List[float]:
    return [1.0 / input_shape[f].stride for f in in_features]


@ROI_HEADS_REGISTRY.register()
class StandardROIHeads(nn.Module):
    """Box branch (pooler → box head → predictor) and optional mask branch (pooler → mask head).

    In training, proposals (with gt boxes appended) are matched to gt and a balanced sample of
    ``batch_size_per_image`` RoIs per image trains the box branch; the foreground ones train the
    mask branch. In inference the mask branch runs on the final detections.
    """

    @configurable
    def __init__(
        self,
        *,
        num_classes: int,
        batch_size_per_image: int,
        positive_fraction: float,
        proposal_matcher: Matcher,
        box_in_features: List[str],
        box_pooler: ROIPooler,
        box_head: nn.Module,
        box_predictor: FastRCNNOutputLayers,
        mask_in_features: Optional[List[str]] = None,
        mask_pooler: Optional[ROIPooler] = None,
        mask_head: Optional[nn.Module] = None,
        proposal_append_gt: bool = True,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.proposal_matcher = proposal_matcher
        self.proposal_append_gt = proposal_append_gt
        self.box_in_features = box_in_features
        self.box_pooler = box_pooler
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.mask_on = mask_head is not None
        if self.mask_on:
            self.mask_in_features = mask_in_features
            self.mask_pooler = mask_pooler
            self.mask_head = mask_head

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        heads = cfg.MODEL.ROI_HEADS
        in_features = list(heads.IN_FEATURES)
        missing = [f for f in in_features if f not in input_shape]
        if missing:
            raise ValueError(f"MODEL.ROI_HEADS.IN_FEATURES {missing} are not backbone outputs ({list(input_shape)}).")
        channels = {input_shape[f].channels for f in in_features}
        if len(channels) != 1:
            raise ValueError(f"MODEL.ROI_HEADS.IN_FEATURES must share one channel count, got {channels}.")
        channels = channels.pop()
        scales = _pooler_scales(input_shape, in_features)

        box_cfg = cfg.MODEL.ROI_BOX_HEAD
        box_pooler = ROIPooler(
            output_size=box_cfg.POOLER_RESOLUTION,
            scales=scales,
            sampling_ratio=box_cfg.POOLER_SAMPLING_RATIO,
            pooler_type=box_cfg.POOLER_TYPE,
        )
        box_head = build_box_head(
            cfg, ShapeSpec(channels=channels, height=box_cfg.POOLER_RESOLUTION, width=box_cfg.POOLER_RESOLUTION)
        )
        args = {
            "num_classes": heads.NUM_CLASSES,
            "batch_size_per_image": heads.BATCH_SIZE_PER_IMAGE,
            "positive_fraction": heads.POSITIVE_FRACTION,
            "proposal_matcher": Matcher(heads.IOU_THRESHOLDS, heads.IOU_LABELS, allow_low_quality_matches=False),
            "proposal_append_gt": heads.PROPOSAL_APPEND_GT,
            "box_in_features": in_features,
            "box_pooler": box_pooler,
            "box_head": box_head,
            "box_predictor": FastRCNNOutputLayers(cfg, box_head.output_shape),
        }
        if cfg.MODEL.MASK_ON:
            mask_cfg = cfg.MODEL.ROI_MASK_HEAD
            args["mask_in_features"] = in_features
            args["mask_pooler"] = ROIPooler(
                output_size=mask_cfg.POOLER_RESOLUTION,
                scales=scales,
                sampling_ratio=mask_cfg.POOLER_SAMPLING_RATIO,
                pooler_type=mask_cfg.POOLER_TYPE,
            )
            args["mask_head"] = build_mask_head(
                cfg, ShapeSpec(channels=channels, height=mask_cfg.POOLER_RESOLUTION, width=mask_cfg.POOLER_RESOLUTION)
            )
        return args

    @torch.no_grad()
    def label_and_sample_proposals(self, proposals: List[Instances], targets: List[Instances]) -> List[Instances]:
        """Match proposals to gt and sample RoIs; adds gt_classes (background = K) and gt_* fields."""
        sampled = []
        for proposals_per_image, targets_per_image in zip(proposals, targets):
            if self.proposal_append_gt and len(targets_per_image) > 0:
                gt_as_proposals = Instances(proposals_per_image.image_size)
                gt_as_proposals.proposal_boxes = targets_per_image.gt_boxes
                gt_as_proposals.objectness_logits = torch.full(
                    (len(targets_per_image),), 10.0, device=targets_per_image.gt_boxes.device
                )
                proposals_per_image = Instances.cat([proposals_per_image, gt_as_proposals])
            has_gt = len(targets_per_image) > 0
            iou = pairwise_iou(targets_per_image.gt_boxes, proposals_per_image.proposal_boxes)
            matched_idxs, matched_labels = self.proposal_matcher(iou)
            if has_gt:
                gt_classes = targets_per_image.gt_classes[matched_idxs]
                gt_classes[matched_labels == 0] = self.num_classes
                gt_classes[matched_labels == -1] = -1
            else:
                gt_classes = torch.full_like(matched_idxs, self.num_classes)
            fg_idx, bg_idx = subsample_labels(
                gt_classes, self.batch_size_per_image, self.positive_fraction, self.num_classes
            )
            sampled_idx = torch.cat([fg_idx, bg_idx], dim=0)
            per_image = proposals_per_image[sampled_idx]
            per_image.gt_classes = gt_classes[sampled_idx]
            if has_gt:
                sampled_targets = matched_idxs[sampled_idx]
                for name, value in targets_per_image.get_fields().items():
                    if name.startswith("gt_") and not per_image.has(name):
                        per_image.set(name, value[sampled_targets])
            else:
                per_image.gt_boxes = Boxes(per_image.proposal_boxes.tensor.new_zeros((len(sampled_idx), 4)))
            sampled.append(per_image)
        return sampled

    def forward(
        self,
        images: ImageList,
        features: Dict[str, torch.Tensor],
        proposals: List[Instances],
        targets: Optional[List[Instances]] = None,
    ) -> Tuple[List[Instances], Dict[str, torch.Tensor]]:
        """Training: (proposals, losses); inference: (detections with pred_masks, {})."""
        del images
        if self.training:
            if targets is None:
                raise ValueError("StandardROIHeads needs gt instances in training.")
            proposals = self.label_and_sample_proposals(proposals, targets)
            losses = self._forward_box(features, proposals)
            if self.mask_on:
                losses.update(self._forward_mask(features, proposals))
            return proposals, losses
        detections = self._forward_box(features, proposals)
        return self.forward_with_given_boxes(features, detections), {}

    def forward_with_given_boxes(
        self, features: Dict[str, torch.Tensor], instances: List[Instances]
    ) -> List[Instances]:
        """Run the mask branch on detections (pred_boxes, pred_classes) and return them."""
        if self.mask_on:
            instances = self._forward_mask(features, instances)
        return instances

    def _forward_box(self, features: Dict[str, torch.Tensor], proposals: List[Instances]):
        level_features = [features[f] for f in self.box_in_features]
        box_features = self.box_pooler(level_features, [p.proposal_boxes for p in proposals])
        box_features = self.box_head(box_features)
        predictions = self.box_predictor(box_features)
        if self.training:
            return self.box_predictor.losses(predictions, proposals)
        detections, _ = self.box_predictor.inference(predictions, proposals)
        return detections

    def _forward_mask(self, features: Dict[str, torch.Tensor], instances: List[Instances]):
        level_features = [features[f] for f in self.mask_in_features]
        if self.training:
            instances = select_foreground_proposals(instances, self.num_classes)
            boxes = [i.proposal_boxes for i in instances]
        else:
            boxes = [i.pred_boxes for i in instances]
        mask_features = self.mask_pooler(level_features, boxes)
        return self.mask_head(mask_features, instances)
