"""CascadeROIHeads: Cascade R-CNN (Cai and Vasconcelos, 2018), a sequence of box heads.

Stage k refines the boxes of stage k-1 with its own box head and predictor, and in training its
foreground is decided at a higher IoU (MODEL.ROI_BOX_CASCADE_HEAD.IOUS, 0.5 / 0.6 / 0.7), so each
stage learns on boxes as good as those it will see. Inference averages the class scores of all
stages and keeps the boxes of the last; the mask head runs on those final detections.
"""

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from mrcnn.config import configurable
from mrcnn.layers import ShapeSpec
from mrcnn.modeling.box_regression import Box2BoxTransform
from mrcnn.modeling.matcher import Matcher
from mrcnn.modeling.poolers import ROIPooler
from mrcnn.structures import Boxes, ImageList, Instances, clipped_box_tensor, pairwise_iou
from mrcnn.utils.events import get_event_storage, has_event_storage

from .box_head import build_box_head
from .fast_rcnn import FastRCNNOutputLayers, fast_rcnn_inference
from .mask_head import build_mask_head
from .roi_heads import ROI_HEADS_REGISTRY, StandardROIHeads

__all__ = ["CascadeROIHeads"]


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; multiplies the gradient by ``scale`` on the way back."""

    @staticmethod
    def forward(ctx, input: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return input.view_as(input)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output * ctx.scale, None


def _check_cascade_config(cfg) -> None:
    """ValueError naming the keys when the cascade settings cannot describe a cascade."""
    cascade = cfg.MODEL.ROI_BOX_CASCADE_HEAD
    ious, weights = list(cascade.IOUS), [list(w) for w in cascade.BBOX_REG_WEIGHTS]
    if not ious:
        raise ValueError("MODEL.ROI_BOX_CASCADE_HEAD.IOUS is empty; a cascade needs at least one stage.")
    if len(ious) != len(weights):
        raise ValueError(
            f"MODEL.ROI_BOX_CASCADE_HEAD.IOUS has {len(ious)} stages but BBOX_REG_WEIGHTS has {len(weights)}; "
            "give one IoU threshold and one (wx, wy, ww, wh) per stage."
        )
    bad = [w for w in weights if len(w) != 4]
    if bad:
        raise ValueError(f"MODEL.ROI_BOX_CASCADE_HEAD.BBOX_REG_WEIGHTS entries must have 4 values, got {bad}.")
    if not cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG:
        raise ValueError(
            "CascadeROIHeads regresses one box per RoI for all classes: set "
            "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG True (detectron2's cascade configs do)."
        )
    first_threshold = cfg.MODEL.ROI_HEADS.IOU_THRESHOLDS[0]
    if abs(ious[0] - first_threshold) > 1e-9:
        raise ValueError(
            f"MODEL.ROI_BOX_CASCADE_HEAD.IOUS[0] = {ious[0]} must equal MODEL.ROI_HEADS.IOU_THRESHOLDS[0] = "
            f"{first_threshold}: the first stage trains on the proposals sampled at that threshold."
        )


@ROI_HEADS_REGISTRY.register()
class CascadeROIHeads(StandardROIHeads):
    """StandardROIHeads with one box head and predictor per cascade stage.

    ``box_head`` and ``box_predictor`` are ModuleLists indexed by stage, so parameters are named
    ``roi_heads.box_head.{k}.fc1.weight`` and ``roi_heads.box_predictor.{k}.bbox_pred.weight``
    as in detectron2. In training:

    * stage 0 trains on the sampled proposals (gt boxes appended, ``proposal_matchers[0]``);
    * stage k > 0 trains on the boxes stage k-1 predicts for those RoIs (detached, clipped, empty
      ones dropped), each matched anew to the gt with ``proposal_matchers[k]``, without sampling
      and without appending gt boxes;
    * the pooled features of every stage get 1/num_stages of the gradient: the losses of the
      stages add up, and the backbone sees their average;
    * the mask head trains on the foreground of stage 0's sampled RoIs.

    In inference the class probabilities are averaged over the stages (each stage scores the
    boxes it was given) and the last stage's boxes are kept; the mask head runs on the detections.
    """

    @configurable
    def __init__(
        self,
        *,
        box_in_features: List[str],
        box_pooler: ROIPooler,
        box_heads: List[nn.Module],
        box_predictors: List[FastRCNNOutputLayers],
        proposal_matchers: List[Matcher],
        **kwargs,
    ):
        """
        Args:
            box_in_features, box_pooler: as in StandardROIHeads (one pooler shared by the stages).
            box_heads: one box head per stage.
            box_predictors: one class-agnostic predictor per stage, each with its stage's
                box transform.
            proposal_matchers: one per stage; the first labels the RPN proposals.
            kwargs: the other arguments of StandardROIHeads (num_classes, mask branch, ...).
        """
        if "proposal_matcher" in kwargs:
            raise TypeError("CascadeROIHeads takes one matcher per stage (proposal_matchers=), not proposal_matcher=.")
        num_stages = len(box_heads)
        if num_stages == 0 or not (num_stages == len(box_predictors) == len(proposal_matchers)):
            raise ValueError(
                f"CascadeROIHeads needs one box head, predictor and matcher per stage; got {len(box_heads)}, "
                f"{len(box_predictors)} and {len(proposal_matchers)}."
            )
        agnostic = [p.bbox_pred.out_features == len(p.box2box_transform.weights) for p in box_predictors]
        if not all(agnostic):
            raise ValueError(
                "CascadeROIHeads needs class-agnostic box predictors (MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG)."
            )
        super().__init__(
            box_in_features=box_in_features,
            box_pooler=box_pooler,
            box_head=nn.ModuleList(box_heads),
            box_predictor=nn.ModuleList(box_predictors),
            proposal_matcher=proposal_matchers[0],
            **kwargs,
        )
        self.num_cascade_stages = num_stages
        self.proposal_matchers = list(proposal_matchers)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        _check_cascade_config(cfg)
        heads = cfg.MODEL.ROI_HEADS
        in_features = list(heads.IN_FEATURES)
        missing = [f for f in in_features if f not in input_shape]
        if missing:
            raise ValueError(f"MODEL.ROI_HEADS.IN_FEATURES {missing} are not backbone outputs ({list(input_shape)}).")
        channels = {input_shape[f].channels for f in in_features}
        if len(channels) != 1:
            raise ValueError(f"MODEL.ROI_HEADS.IN_FEATURES must share one channel count, got {channels}.")
        channels = channels.pop()
        scales = [1.0 / input_shape[f].stride for f in in_features]

        box_cfg = cfg.MODEL.ROI_BOX_HEAD
        box_pooler = ROIPooler(
            output_size=box_cfg.POOLER_RESOLUTION,
            scales=scales,
            sampling_ratio=box_cfg.POOLER_SAMPLING_RATIO,
            pooler_type=box_cfg.POOLER_TYPE,
        )
        pooled_shape = ShapeSpec(channels=channels, height=box_cfg.POOLER_RESOLUTION, width=box_cfg.POOLER_RESOLUTION)
        cascade = cfg.MODEL.ROI_BOX_CASCADE_HEAD
        box_heads, box_predictors, proposal_matchers = [], [], []
        for weights, iou in zip(cascade.BBOX_REG_WEIGHTS, cascade.IOUS):
            box_head = build_box_head(cfg, pooled_shape)
            box_heads.append(box_head)
            box_predictors.append(
                FastRCNNOutputLayers(
                    cfg, box_head.output_shape, box2box_transform=Box2BoxTransform(weights=tuple(weights))
                )
            )
            proposal_matchers.append(Matcher([iou], [0, 1], allow_low_quality_matches=False))
        args = {
            "num_classes": heads.NUM_CLASSES,
            "batch_size_per_image": heads.BATCH_SIZE_PER_IMAGE,
            "positive_fraction": heads.POSITIVE_FRACTION,
            "proposal_append_gt": heads.PROPOSAL_APPEND_GT,
            "box_in_features": in_features,
            "box_pooler": box_pooler,
            "box_heads": box_heads,
            "box_predictors": box_predictors,
            "proposal_matchers": proposal_matchers,
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

    def forward(
        self,
        images: ImageList,
        features: Dict[str, torch.Tensor],
        proposals: List[Instances],
        targets: Optional[List[Instances]] = None,
    ) -> Tuple[List[Instances], Dict[str, torch.Tensor]]:
        """Training: (stage-0 sampled proposals, losses per stage); inference: (detections, {})."""
        del images
        if self.training:
            if targets is None:
                raise ValueError("CascadeROIHeads needs gt instances in training.")
            proposals, num_foreground = self._sample_proposals(proposals, targets)
            losses = self._forward_box(features, proposals, targets)
            if self.mask_on:
                losses.update(self._forward_mask(features, proposals, num_foreground))
            return proposals, losses
        detections = self._forward_box(features, proposals)
        return self.forward_with_given_boxes(features, detections), {}

    def _forward_box(
        self,
        features: Dict[str, torch.Tensor],
        proposals: List[Instances],
        targets: Optional[List[Instances]] = None,
    ):
        """Run the stages. Training: losses named ``loss_cls_stage{k}`` and ``loss_box_reg_stage{k}``;
        inference: per image Instances(pred_boxes, scores, pred_classes)."""
        level_features = [features[f] for f in self.box_in_features]
        image_sizes = [p.image_size for p in proposals]
        stage_outputs = []  # (predictions, proposals) of each stage
        previous_boxes: List[torch.Tensor] = []
        for stage in range(self.num_cascade_stages):
            if stage > 0:
                proposals = self._create_proposals_from_boxes(previous_boxes, image_sizes)
                if self.training:
                    proposals = self._match_and_label_boxes(proposals, stage, targets)
            predictions = self._run_stage(level_features, proposals, stage)
            stage_outputs.append((predictions, proposals))
            if stage + 1 < self.num_cascade_stages or not self.training:
                with torch.no_grad():  # the next stage's proposals carry no gradient
                    previous_boxes = self.box_predictor[stage].predict_boxes(predictions, proposals)

        if self.training:
            losses = {}
            for stage, (predictions, stage_proposals) in enumerate(stage_outputs):
                stage_losses = self.box_predictor[stage].losses(predictions, stage_proposals)
                losses.update({f"{name}_stage{stage}": value for name, value in stage_losses.items()})
            return losses

        # Every stage scored the same RoIs (boxes are not filtered in inference), so the
        # per-stage probabilities line up row by row.
        scores_per_stage = [
            self.box_predictor[stage].predict_probs(predictions, stage_proposals)
            for stage, (predictions, stage_proposals) in enumerate(stage_outputs)
        ]
        scores = [sum(per_image) * (1.0 / self.num_cascade_stages) for per_image in zip(*scores_per_stage)]
        last = self.box_predictor[self.num_cascade_stages - 1]
        detections, _ = fast_rcnn_inference(
            previous_boxes,
            scores,
            image_sizes,
            last.test_score_thresh,
            last.test_nms_thresh,
            last.test_topk_per_image,
            last.test_min_box_size,
        )
        return detections

    def _run_stage(self, level_features: List[torch.Tensor], proposals: List[Instances], stage: int):
        """Pool, box head and predictor of ``stage``: (class logits (R, K+1), box deltas (R, 4))."""
        box_features = self.box_pooler(level_features, [p.proposal_boxes for p in proposals])
        if torch.is_grad_enabled():
            box_features = _ScaleGradient.apply(box_features, 1.0 / self.num_cascade_stages)
        box_features = self.box_head[stage](box_features)
        return self.box_predictor[stage](box_features)

    def _create_proposals_from_boxes(
        self, boxes: List[torch.Tensor], image_sizes: List[Tuple[int, int]]
    ) -> List[Instances]:
        """Per image (R_i, 4) predicted boxes -> Instances(proposal_boxes), clipped to the image.

        Empty boxes are dropped in training only: in inference every stage must score the same
        RoIs for the scores to be averaged. The host reads back one small tensor for the whole
        batch (whether every box is finite, and in training how many boxes each image keeps)
        instead of a check and a boolean selection per image.
        """
        clipped = [clipped_box_tensor(b.detach(), size) for b, size in zip(boxes, image_sizes)]
        finite = torch.isfinite(torch.cat(boxes)).all() if boxes else torch.tensor(True)
        if self.training:
            keep = [Boxes(b).nonempty() for b in clipped]
            finite_and_kept = torch.stack([finite.to(torch.long)] + [k.sum() for k in keep]).tolist()
        else:
            finite_and_kept = [bool(finite)]
        if not finite_and_kept[0]:
            raise ValueError("Boxes.clip: boxes contain inf or nan")
        if self.training:
            clipped = [
                b[torch.nonzero_static(k, size=kept).flatten()]
                for b, k, kept in zip(clipped, keep, finite_and_kept[1:])
            ]
        proposals = []
        for boxes_per_image, image_size in zip(clipped, image_sizes):
            per_image = Instances(image_size)
            per_image.proposal_boxes = Boxes(boxes_per_image)
            proposals.append(per_image)
        return proposals

    @torch.no_grad()
    def _match_and_label_boxes(
        self, proposals: List[Instances], stage: int, targets: List[Instances]
    ) -> List[Instances]:
        """Label every proposal of ``stage`` with gt_classes (background = K) and gt_boxes at its IoU."""
        foreground_counts = []
        for proposals_per_image, targets_per_image in zip(proposals, targets):
            iou = pairwise_iou(targets_per_image.gt_boxes, proposals_per_image.proposal_boxes)
            matched_idxs, matched_labels = self.proposal_matchers[stage](iou)
            if len(targets_per_image) > 0:
                gt_classes = targets_per_image.gt_classes[matched_idxs]
                # not an assignment through a boolean mask: that waits for the device
                gt_classes = torch.where(matched_labels == 0, self.num_classes, gt_classes)
                gt_boxes = targets_per_image.gt_boxes[matched_idxs]
            else:
                gt_classes = torch.full_like(matched_idxs, self.num_classes)
                gt_boxes = Boxes(proposals_per_image.proposal_boxes.tensor.new_zeros((len(proposals_per_image), 4)))
            proposals_per_image.gt_classes = gt_classes
            proposals_per_image.gt_boxes = gt_boxes
            foreground_counts.append((matched_labels == 1).sum())
        if has_event_storage():
            num_fg = torch.stack(foreground_counts).tolist()  # one read-back for the batch
            num_bg = [len(p) - fg for p, fg in zip(proposals, num_fg)]
            storage = get_event_storage()
            storage.put_scalar(f"stage{stage}/roi_head/num_fg_samples", sum(num_fg) / len(num_fg))
            storage.put_scalar(f"stage{stage}/roi_head/num_bg_samples", sum(num_bg) / len(num_bg))
        return proposals
