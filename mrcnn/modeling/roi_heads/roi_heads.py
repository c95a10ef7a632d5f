"""StandardROIHeads: sample proposals, pool their features, run the box and mask heads."""

import itertools
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from mrcnn.config import configurable
from mrcnn.layers import ShapeSpec, cat
from mrcnn.modeling.matcher import Matcher
from mrcnn.modeling.padded_targets import pad_per_image, padding_mask
from mrcnn.modeling.poolers import ROIPooler
from mrcnn.modeling.sampling import subsample_labels_batched
from mrcnn.structures import BitMasks, Boxes, ImageList, Instances, pairwise_iou_tensors
from mrcnn.utils.registry import Registry

from .box_head import build_box_head
from .fast_rcnn import FastRCNNOutputLayers
from .mask_head import build_mask_head

__all__ = [
    "ROI_HEADS_REGISTRY",
    "StandardROIHeads",
    "build_roi_heads",
    "sample_proposals",
    "select_foreground_proposals",
]

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


@torch.no_grad()
def sample_proposals(
    proposals: List[Instances],
    targets: List[Instances],
    proposal_matcher: Matcher,
    num_classes: int,
    batch_size_per_image: int,
    positive_fraction: float,
    proposal_append_gt: bool = True,
) -> Tuple[List[Instances], List[int]]:
    """The training RoIs of each image: its proposals (with its gt boxes appended, objectness 10,
    when ``proposal_append_gt``) matched to its ground truth and sampled.

    Each image's sample holds its sampled foreground RoIs, then its background ones, with
    ``gt_classes`` (``num_classes`` for background), and the matched ground truth's other
    ``gt_*`` fields (an image without ground truth gets zero ``gt_boxes`` only). All images are
    matched at once, their proposals and ground truth padded to the batch's largest counts; the
    random draws are one image's at a time, as before, so a seeded run samples the same RoIs.

    Returns:
        per image, Instances of the sampled RoIs; per image, how many of them are foreground
        (they come first).
    """
    device = proposals[0].proposal_boxes.device
    num_proposals = [len(p) for p in proposals]
    num_gt = [len(t) for t in targets]
    has_gt = [count > 0 for count in num_gt]
    append_gt = proposal_append_gt and any(has_gt)
    extra_fields = [name for name in proposals[0].get_fields() if name not in ("proposal_boxes", "objectness_logits")]
    if append_gt and extra_fields:
        # the appended gt boxes have only boxes and logits (Instances.cat fails the same way)
        raise KeyError(
            f"Instances has no field '{extra_fields[0]}': gt boxes appended to proposals (MODEL.ROI_HEADS."
            "PROPOSAL_APPEND_GT) have only proposal_boxes and objectness_logits"
        )

    # candidates (N, P + G): each image's proposals, padding, its gt boxes when appended, padding
    candidate_boxes, _ = pad_per_image([p.proposal_boxes.tensor for p in proposals])
    gt_boxes, _ = pad_per_image([t.gt_boxes.tensor for t in targets])
    candidate_logits = None
    if proposals[0].has("objectness_logits"):
        candidate_logits, _ = pad_per_image([p.objectness_logits for p in proposals])
    if append_gt:
        candidate_boxes = torch.cat((candidate_boxes, gt_boxes), dim=1)
        if candidate_logits is not None:
            appended_logits = torch.full(gt_boxes.shape[:2], 10.0, device=device)
            candidate_logits = torch.cat((candidate_logits, appended_logits), dim=1)
    num_candidates = candidate_boxes.shape[1]

    match_quality = pairwise_iou_tensors(gt_boxes, candidate_boxes)  # (N, G, P + G)
    if min(num_gt) < gt_boxes.shape[1]:
        # a missing ground truth never matches (see Matcher)
        match_quality = torch.where(padding_mask(num_gt, device)[:, :, None], match_quality, -1.0)
    matches, match_labels = proposal_matcher(match_quality)  # (N, P + G) each

    gt_classes, _ = pad_per_image([t.gt_classes for t in targets], padding_value=num_classes)
    if gt_classes.shape[1] == 0:
        classes = torch.full_like(matches, num_classes)
    else:
        classes = gt_classes.gather(1, matches)
        classes = torch.where(match_labels == 0, num_classes, classes)
        classes = torch.where(match_labels == -1, -1, classes)
        if not all(has_gt) and proposal_matcher.labels[0] != 0:
            # an image without ground truth is all background, whatever the lowest label
            classes = torch.where(torch.tensor(has_gt, device=device)[:, None], classes, num_classes)
    # padding is never sampled
    is_candidate = [padding_mask(num_proposals, device) if min(num_proposals) < max(num_proposals) else None]
    if append_gt:
        is_candidate.append(padding_mask(num_gt, device) if min(num_gt) < max(num_gt) else None)
    if any(mask is not None for mask in is_candidate):
        widths = [max(num_proposals), max(num_gt)]
        is_candidate = [
            torch.ones((len(proposals), width), dtype=torch.bool, device=device) if mask is None else mask
            for mask, width in zip(is_candidate, widths)
        ]
        classes = torch.where(cat(is_candidate, dim=1), classes, -1)

    sampled, num_foreground, num_background = subsample_labels_batched(
        classes, batch_size_per_image, positive_fraction, num_classes
    )
    per_image_sizes = [fg + bg for fg, bg in zip(num_foreground, num_background)]
    image_of_sample = sampled.div(num_candidates, rounding_mode="floor")
    sampled_gt = matches.flatten()[sampled]  # index among the image's ground truth

    fields = {"proposal_boxes": candidate_boxes.flatten(0, 1)[sampled]}
    if candidate_logits is not None:
        fields["objectness_logits"] = candidate_logits.flatten()[sampled]
    fields["gt_classes"] = classes.flatten()[sampled]
    if gt_boxes.shape[1] > 0:
        fields["gt_boxes"] = gt_boxes[image_of_sample, sampled_gt]
    else:
        fields["gt_boxes"] = candidate_boxes.new_zeros((len(sampled), 4))
    per_image_fields = {name: value.split(per_image_sizes) for name, value in fields.items()}
    sampled_gt_all, sampled_gt = sampled_gt, sampled_gt.split(per_image_sizes)
    sampled_gt_lists = None
    sampled_candidates = sampled.remainder(num_candidates).split(per_image_sizes) if extra_fields else None

    results = []
    for index, (per_image_targets, per_image_proposals) in enumerate(zip(targets, proposals)):
        per_image = Instances(per_image_proposals.image_size)
        for name in per_image_proposals.get_fields():
            if name == "proposal_boxes":
                per_image.proposal_boxes = Boxes(per_image_fields["proposal_boxes"][index])
            elif name == "objectness_logits":
                per_image.objectness_logits = per_image_fields["objectness_logits"][index]
            else:  # without appended gt boxes, candidates are the image's proposals
                per_image.set(name, per_image_proposals.get(name)[sampled_candidates[index]])
        per_image.gt_classes = per_image_fields["gt_classes"][index]
        per_image.gt_boxes = Boxes(per_image_fields["gt_boxes"][index])
        if has_gt[index]:
            for name, value in per_image_targets.get_fields().items():
                if not name.startswith("gt_") or per_image.has(name):
                    continue
                if isinstance(value, (torch.Tensor, Boxes, BitMasks)):
                    per_image.set(name, value[sampled_gt[index]])
                else:  # polygons and other host-side fields, indexed by a list made once for all images
                    if sampled_gt_lists is None:
                        flat = sampled_gt_all.tolist()
                        starts = [0, *itertools.accumulate(per_image_sizes)]
                        sampled_gt_lists = [flat[start:end] for start, end in zip(starts, starts[1:])]
                    per_image.set(name, value[sampled_gt_lists[index]])
        results.append(per_image)
    return results, num_foreground


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
        return self._sample_proposals(proposals, targets)[0]

    def _sample_proposals(
        self, proposals: List[Instances], targets: List[Instances]
    ) -> Tuple[List[Instances], List[int]]:
        """``label_and_sample_proposals``, and how many foreground RoIs lead each image's sample."""
        return sample_proposals(
            proposals,
            targets,
            self.proposal_matcher,
            self.num_classes,
            self.batch_size_per_image,
            self.positive_fraction,
            self.proposal_append_gt,
        )

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
            proposals, num_foreground = self._sample_proposals(proposals, targets)
            losses = self._forward_box(features, proposals)
            if self.mask_on:
                losses.update(self._forward_mask(features, proposals, num_foreground))
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

    def _forward_mask(
        self,
        features: Dict[str, torch.Tensor],
        instances: List[Instances],
        num_foreground: Optional[List[int]] = None,
    ):
        """Training: the mask loss of the foreground RoIs (the first ``num_foreground`` of each
        image when given, as ``_sample_proposals`` orders them); inference: masks of the detections."""
        level_features = [features[f] for f in self.mask_in_features]
        if self.training:
            if num_foreground is None:
                instances = select_foreground_proposals(instances, self.num_classes)
            else:
                instances = [per_image[:count] for per_image, count in zip(instances, num_foreground)]
            boxes = [i.proposal_boxes for i in instances]
        else:
            boxes = [i.pred_boxes for i in instances]
        mask_features = self.mask_pooler(level_features, boxes)
        return self.mask_head(mask_features, instances)
