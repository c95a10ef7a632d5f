"""The Region Proposal Network: anchors + head, anchor labelling and losses, proposal selection."""

from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from mrcnn.config import configurable
from mrcnn.layers import cat
from mrcnn.structures import Boxes, ImageList, Instances, pairwise_iou_tensors

from ..box_regression import (
    Box2BoxTransform,
    box_regression_loss,
    box_regression_loss_of_rows,
    check_box_reg_loss_type,
)
from ..cached_tensors import cached_arange
from ..matcher import Matcher
from ..padded_targets import pad_per_image, padding_mask
from ..sampling import subsample_labels_batched
from .anchor_generator import build_anchor_generator
from .build import PROPOSAL_GENERATOR_REGISTRY
from .proposal_utils import PROPOSAL_RANKINGS, select_rpn_proposals
from .rpn_head import build_rpn_head

__all__ = ["RPN"]


@PROPOSAL_GENERATOR_REGISTRY.register()
class RPN(nn.Module):
    """Region Proposal Network (Ren et al., 2015) over one or more feature levels.

    Called as ``proposals, losses = rpn(images, features, gt_instances)``; returns per image an
    Instances with ``proposal_boxes`` and ``objectness_logits`` (best first, see
    ``proposal_ranking``), and in training the losses ``loss_rpn_cls`` and ``loss_rpn_loc``.
    """

    @configurable
    def __init__(
        self,
        *,
        in_features: List[str],
        head: nn.Module,
        anchor_generator: nn.Module,
        anchor_matcher: Matcher,
        box2box_transform: Box2BoxTransform,
        batch_size_per_image: int,
        positive_fraction: float,
        pre_nms_topk: Tuple[int, int],
        post_nms_topk: Tuple[int, int],
        nms_thresh: float = 0.7,
        min_box_size: float = 0.0,
        anchor_boundary_thresh: float = -1.0,
        loss_weight: Optional[Dict[str, float]] = None,
        box_reg_loss_type: str = "smooth_l1",
        smooth_l1_beta: float = 0.0,
        proposal_ranking: str = "logit",
    ):
        """
        Args:
            in_features: names of the feature maps to use, in level order.
            head: module mapping the feature list to (objectness logits, anchor deltas).
            anchor_generator: module mapping the feature list to one Boxes of anchors per level.
            anchor_matcher: labels anchors against ground truth by IoU.
            box2box_transform: parameterisation of the anchor deltas.
            batch_size_per_image: anchors sampled per image for the losses.
            positive_fraction: largest share of positives among the sampled anchors.
            pre_nms_topk: (training, inference) boxes kept per level before NMS.
            post_nms_topk: (training, inference) proposals kept per image after NMS.
            nms_thresh: IoU threshold of the proposal NMS.
            min_box_size: proposals with a side below this are dropped (0: drop empty boxes).
            anchor_boundary_thresh: anchors crossing the image border by more than this many
                pixels are ignored in training; negative keeps all anchors.
            loss_weight: multipliers of "loss_rpn_cls" and "loss_rpn_loc" (default 1 each).
            box_reg_loss_type: "smooth_l1" (on deltas), or "giou", "diou", "ciou" (on decoded boxes).
            smooth_l1_beta: smooth-L1 transition point; 0 is L1.
            proposal_ranking: what NMS and the post-NMS top-k rank proposals by: "logit"
                (detectron2) or "probability", the sigmoid in float32, where logits above about
                17 all give 1.0 and such ties keep each level's top-k order, levels in order
                (torchvision).
        """
        super().__init__()
        self.in_features = list(in_features)
        self.rpn_head = head
        self.anchor_generator = anchor_generator
        self.anchor_matcher = anchor_matcher
        self.box2box_transform = box2box_transform
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.pre_nms_topk = {True: pre_nms_topk[0], False: pre_nms_topk[1]}
        self.post_nms_topk = {True: post_nms_topk[0], False: post_nms_topk[1]}
        self.nms_thresh = nms_thresh
        self.min_box_size = float(min_box_size)
        self.anchor_boundary_thresh = anchor_boundary_thresh
        self.loss_weight = {"loss_rpn_cls": 1.0, "loss_rpn_loc": 1.0}
        if loss_weight is not None:
            unknown = set(loss_weight) - set(self.loss_weight)
            if unknown:
                raise ValueError(f"Unknown RPN loss names in loss_weight: {sorted(unknown)}")
            self.loss_weight.update(loss_weight)
        self.box_reg_loss_type = check_box_reg_loss_type(box_reg_loss_type, "MODEL.RPN.BBOX_REG_LOSS_TYPE")
        self.smooth_l1_beta = smooth_l1_beta
        if proposal_ranking not in PROPOSAL_RANKINGS:
            raise ValueError(
                f"MODEL.RPN.PROPOSAL_RANKING must be one of {list(PROPOSAL_RANKINGS)}, got {proposal_ranking!r}"
            )
        self.proposal_ranking = proposal_ranking

    @classmethod
    def from_config(cls, cfg, input_shape) -> dict:
        """Constructor arguments from MODEL.RPN / MODEL.ANCHOR_GENERATOR and the ShapeSpec dict."""
        in_features = list(cfg.MODEL.RPN.IN_FEATURES)
        missing = [name for name in in_features if name not in input_shape]
        if missing:
            raise KeyError(
                f"MODEL.RPN.IN_FEATURES names {missing}, which the backbone does not output; "
                f"available: {sorted(input_shape)}"
            )
        level_shapes = [input_shape[name] for name in in_features]
        rpn = cfg.MODEL.RPN
        return {
            "in_features": in_features,
            "head": build_rpn_head(cfg, level_shapes),
            "anchor_generator": build_anchor_generator(cfg, level_shapes),
            "anchor_matcher": Matcher(rpn.IOU_THRESHOLDS, rpn.IOU_LABELS, allow_low_quality_matches=True),
            "box2box_transform": Box2BoxTransform(weights=tuple(rpn.BBOX_REG_WEIGHTS)),
            "batch_size_per_image": rpn.BATCH_SIZE_PER_IMAGE,
            "positive_fraction": rpn.POSITIVE_FRACTION,
            "pre_nms_topk": (rpn.PRE_NMS_TOPK_TRAIN, rpn.PRE_NMS_TOPK_TEST),
            "post_nms_topk": (rpn.POST_NMS_TOPK_TRAIN, rpn.POST_NMS_TOPK_TEST),
            "nms_thresh": rpn.NMS_THRESH,
            "min_box_size": cfg.MODEL.PROPOSAL_GENERATOR.MIN_SIZE,
            "anchor_boundary_thresh": rpn.BOUNDARY_THRESH,
            "loss_weight": {
                "loss_rpn_cls": rpn.LOSS_WEIGHT,
                "loss_rpn_loc": rpn.BBOX_REG_LOSS_WEIGHT * rpn.LOSS_WEIGHT,
            },
            "box_reg_loss_type": rpn.BBOX_REG_LOSS_TYPE,
            "smooth_l1_beta": rpn.SMOOTH_L1_BETA,
            "proposal_ranking": rpn.PROPOSAL_RANKING,
        }

    @torch.no_grad()
    def label_and_sample_anchors(
        self, anchors: List[Boxes], gt_instances: List[Instances]
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Label the anchors of each image and sample the ones that enter the loss.

        Args:
            anchors: per level, the Boxes of that level's anchors (shared by all images).
            gt_instances: per image, Instances with ``gt_boxes``.

        Returns:
            gt_labels: per image, (R,) int labels: 1 sampled positive, 0 sampled negative,
                -1 not sampled or ignored.
            matched_gt_boxes: per image, (R, 4) the ground-truth box matched to each anchor
                (meaningful for positives only).
        """
        targets = self._match_and_sample_anchors(cat([level.tensor for level in anchors]), gt_instances)
        num_images = len(gt_instances)
        if targets.gt_boxes.shape[1] == 0:
            matched = targets.gt_boxes.new_zeros(targets.matches.shape + (targets.gt_boxes.shape[2],))
        else:
            matched = targets.gt_boxes[cached_arange(0, num_images, targets.matches.device)[:, None], targets.matches]
        return list(targets.labels.to(torch.int64).unbind(0)), list(matched.unbind(0))

    @torch.no_grad()
    def _match_and_sample_anchors(self, anchors: torch.Tensor, gt_instances: List[Instances]) -> "_AnchorTargets":
        """Match the anchors (R, 4) of all images to their ground truth at once and sample them
        (see ``label_and_sample_anchors``); the random draws are those of one image at a time."""
        for instances in gt_instances:
            if not instances.has("gt_boxes"):
                raise KeyError("RPN training needs ground truth Instances with a 'gt_boxes' field")
        gt_boxes, num_gt = pad_per_image([instances.gt_boxes.tensor for instances in gt_instances])
        match_quality = pairwise_iou_tensors(gt_boxes, anchors)  # (N, G, R)
        if min(num_gt) < gt_boxes.shape[1]:
            # a missing ground truth never matches (see Matcher)
            match_quality = torch.where(padding_mask(num_gt, anchors.device)[:, :, None], match_quality, -1.0)
        matches, labels = self.anchor_matcher(match_quality)  # (N, R) each

        if self.anchor_boundary_thresh >= 0:
            anchor_boxes = Boxes(anchors)
            inside = torch.stack(
                [anchor_boxes.inside_box(i.image_size, self.anchor_boundary_thresh) for i in gt_instances]
            )
            labels = torch.where(inside, labels, -1)
        sampled, num_positive, num_negative = subsample_labels_batched(
            labels, self.batch_size_per_image, self.positive_fraction, bg_label=0
        )
        flat_labels = labels.flatten()
        sampled_labels = torch.full_like(flat_labels, -1).index_copy_(0, sampled, flat_labels[sampled])
        return _AnchorTargets(sampled_labels.view(labels.shape), matches, gt_boxes, sum(num_positive), len(sampled))

    def losses(
        self,
        anchors: List[Boxes],
        pred_objectness_logits: List[torch.Tensor],
        gt_labels: List[torch.Tensor],
        pred_anchor_deltas: List[torch.Tensor],
        gt_boxes: List[torch.Tensor],
    ) -> Dict[str, torch.Tensor]:
        """RPN losses, each a sum over sampled anchors divided by the number of anchors sampled
        per batch (``batch_size_per_image * N``) and multiplied by its loss weight.

        Args:
            anchors: per level, Boxes of Ri anchors.
            pred_objectness_logits: per level, (N, Ri) logits.
            gt_labels: per image, (R,) labels from ``label_and_sample_anchors``.
            pred_anchor_deltas: per level, (N, Ri, 4) deltas.
            gt_boxes: per image, (R, 4) matched ground-truth boxes.
        """
        num_images = len(gt_labels)
        gt_labels = torch.stack(gt_labels)
        pos_mask = gt_labels == 1

        localization_loss = box_regression_loss(
            anchors,
            self.box2box_transform,
            pred_anchor_deltas,
            gt_boxes,
            pos_mask,
            loss_type=self.box_reg_loss_type,
            smooth_l1_beta=self.smooth_l1_beta,
        )
        valid_mask = gt_labels >= 0
        objectness_loss = F.binary_cross_entropy_with_logits(
            torch.cat(pred_objectness_logits, dim=1)[valid_mask],
            gt_labels[valid_mask].to(torch.float32),
            reduction="sum",
        )
        return self._weighted_losses(objectness_loss, localization_loss, num_images)

    def _losses_of_sampled_anchors(
        self,
        anchors: torch.Tensor,
        pred_objectness_logits: torch.Tensor,
        pred_anchor_deltas: torch.Tensor,
        targets: "_AnchorTargets",
    ) -> Dict[str, torch.Tensor]:
        """``losses`` from the anchors (R, 4), the logits (N, R) and deltas (N, R, 4) of all levels
        and the targets of ``_match_and_sample_anchors``.

        The sampled anchors, and the positive ones, are gathered in (image, anchor) order, the
        order boolean masks select in, so every sum adds the same terms in the same order as
        ``losses``; their counts are known, so nothing waits for the device.
        """
        labels = targets.labels.flatten()
        in_loss = torch.nonzero_static(labels >= 0, size=targets.num_sampled).flatten()
        objectness_loss = F.binary_cross_entropy_with_logits(
            pred_objectness_logits.flatten()[in_loss], labels[in_loss].to(torch.float32), reduction="sum"
        )
        image_index, anchor_index = torch.nonzero_static(targets.labels == 1, size=targets.num_positive).unbind(1)
        localization_loss = box_regression_loss_of_rows(
            self.box2box_transform,
            anchors[anchor_index],
            pred_anchor_deltas[image_index, anchor_index],
            targets.gt_boxes[image_index, targets.matches[image_index, anchor_index]],
            loss_type=self.box_reg_loss_type,
            smooth_l1_beta=self.smooth_l1_beta,
        )
        return self._weighted_losses(objectness_loss, localization_loss, pred_objectness_logits.shape[0])

    def _weighted_losses(
        self, objectness_loss: torch.Tensor, localization_loss: torch.Tensor, num_images: int
    ) -> Dict[str, torch.Tensor]:
        normalizer = self.batch_size_per_image * num_images
        losses = {
            "loss_rpn_cls": objectness_loss / normalizer,
            "loss_rpn_loc": localization_loss / normalizer,
        }
        return {name: loss * self.loss_weight[name] for name, loss in losses.items()}

    def forward(
        self,
        images: ImageList,
        features: Dict[str, torch.Tensor],
        gt_instances: Optional[List[Instances]] = None,
    ) -> Tuple[List[Instances], Dict[str, torch.Tensor]]:
        """Proposals for each image and, in training, the RPN losses.

        Args:
            images: the batched images; only their unpadded ``image_sizes`` are read.
            features: feature maps by name, (N, C, Hi, Wi); ``in_features`` are used.
            gt_instances: per image, Instances with ``gt_boxes``; required in training.
        """
        missing = [name for name in self.in_features if name not in features]
        if missing:
            raise KeyError(f"RPN expects feature maps {missing}; got {sorted(features)}")
        level_features = [features[name] for name in self.in_features]
        if getattr(self.anchor_generator, "strides_from_image_size", False):
            anchors = self.anchor_generator(level_features, tuple(images.tensor.shape[-2:]))
        else:
            anchors = self.anchor_generator(level_features)
        pred_objectness_logits, pred_anchor_deltas = self.rpn_head(level_features)

        level_sizes = [len(level) for level in anchors]
        anchors = cat([level.tensor for level in anchors])
        # all levels side by side, in the anchors' (level, y, x, a) order
        pred_objectness_logits = _logits_by_anchor(pred_objectness_logits)  # (N, R)
        pred_anchor_deltas = _deltas_by_anchor(pred_anchor_deltas, anchors.shape[1])  # (N, R, B)

        if self.training:
            if gt_instances is None:
                raise ValueError("RPN in training mode needs gt_instances")
            targets = self._match_and_sample_anchors(anchors, gt_instances)
            losses = self._losses_of_sampled_anchors(anchors, pred_objectness_logits, pred_anchor_deltas, targets)
        else:
            losses = {}
        proposals = self._predict_proposals(
            anchors, level_sizes, pred_objectness_logits, pred_anchor_deltas, images.image_sizes
        )
        return proposals, losses

    @torch.no_grad()
    def predict_proposals(
        self,
        anchors: List[Boxes],
        pred_objectness_logits: List[torch.Tensor],
        pred_anchor_deltas: List[torch.Tensor],
        image_sizes: List[Tuple[int, int]],
    ) -> List[Instances]:
        """Decode and select the proposals of each image.

        Args:
            anchors: per level, Boxes of Ri anchors.
            pred_objectness_logits: per level, (N, Ri) logits.
            pred_anchor_deltas: per level, (N, Ri, B) deltas.
            image_sizes: N (height, width) of the unpadded images.
        """
        return self._predict_proposals(
            cat([level.tensor for level in anchors]),
            [len(level) for level in anchors],
            cat(list(pred_objectness_logits), dim=1),
            cat(list(pred_anchor_deltas), dim=1),
            image_sizes,
        )

    @torch.no_grad()
    def _predict_proposals(
        self,
        anchors: torch.Tensor,
        level_sizes: List[int],
        pred_objectness_logits: torch.Tensor,
        pred_anchor_deltas: torch.Tensor,
        image_sizes: List[Tuple[int, int]],
    ) -> List[Instances]:
        """``predict_proposals`` from the anchors (R, B) of all levels (``level_sizes`` per level),
        the logits (N, R) and the deltas (N, R, B).

        Each level's ``pre_nms_topk`` anchors with the highest objectness are picked first and
        only those are decoded (all levels in one call): decoding is per box, so this equals
        decoding every anchor and picking afterwards, for a fraction of the work (about 10k of
        the 200k+ anchors of an 800x1067 image). Ranking by probability sorts a level with
        fewer anchors as well, since its order breaks ties of equal probabilities.

        Proposals carry no gradient: the second stage treats them as fixed inputs.
        """
        pre_nms_topk = self.pre_nms_topk[self.training]
        num_images = pred_objectness_logits.shape[0]
        device = pred_objectness_logits.device
        top_logits, top_index = [], []
        start = 0
        for level_logits in pred_objectness_logits.split(level_sizes, dim=1):
            num_anchors = level_logits.shape[1]
            if num_anchors > pre_nms_topk or self.proposal_ranking == "probability":
                level_logits, index = level_logits.topk(min(pre_nms_topk, num_anchors), dim=1)  # (N, k)
                top_index.append(index + start if start else index)
            else:
                top_index.append(cached_arange(start, start + num_anchors, device).expand(num_images, -1))
            top_logits.append(level_logits)
            start += num_anchors
        top_index = cat(top_index, dim=1)  # (N, C) into all levels' anchors
        top_deltas = pred_anchor_deltas[cached_arange(0, num_images, device)[:, None], top_index]  # (N, C, B)
        box_dim = top_deltas.shape[2]
        decoded = self.box2box_transform.apply_deltas(
            top_deltas.view(-1, box_dim), anchors[top_index].view(-1, box_dim)
        ).view(top_deltas.shape)
        return select_rpn_proposals(
            decoded,
            cat(top_logits, dim=1),
            [logits.shape[1] for logits in top_logits],
            image_sizes,
            self.nms_thresh,
            self.post_nms_topk[self.training],
            self.min_box_size,
            self.training,
            ranking=self.proposal_ranking,
        )


class _AnchorTargets(NamedTuple):
    """What the RPN losses need of the ground truth, for all images at once."""

    labels: torch.Tensor  # (N, R) int8: 1 sampled positive, 0 sampled negative, -1 not in the loss
    matches: torch.Tensor  # (N, R) int64 index of each anchor's ground truth in ``gt_boxes``
    gt_boxes: torch.Tensor  # (N, G, 4) each image's ground-truth boxes, padded with zeros
    num_positive: int  # sampled positives in the batch
    num_sampled: int  # sampled anchors in the batch


def _logits_by_anchor(logits: List[torch.Tensor]) -> torch.Tensor:
    """Per level (N, A, Hi, Wi) logits -> (N, R), in the anchors' (level, y, x, a) order."""
    if len({level.shape[1] for level in logits}) == 1:
        # one copy for all levels when they have the same number of anchors per cell
        num_images = logits[0].shape[0]
        return cat([level.flatten(2) for level in logits], dim=2).transpose(1, 2).reshape(num_images, -1)
    return cat([level.permute(0, 2, 3, 1).flatten(1) for level in logits], dim=1)


def _deltas_by_anchor(deltas: List[torch.Tensor], box_dim: int) -> torch.Tensor:
    """Per level (N, A*B, Hi, Wi) deltas -> (N, R, B), in the anchors' (level, y, x, a) order."""
    num_images = deltas[0].shape[0]
    if len({level.shape[1] for level in deltas}) == 1:
        num_anchors = deltas[0].shape[1] // box_dim
        # (N, A, B, Hi*Wi) side by side -> (N, sum Hi*Wi, A, B)
        joined = cat([level.view(num_images, num_anchors, box_dim, -1) for level in deltas], dim=3)
        return joined.permute(0, 3, 1, 2).reshape(num_images, -1, box_dim)
    # (N, A*B, H, W) -> (N, A, B, H, W) -> (N, H, W, A, B) -> (N, H*W*A, B)
    return cat(
        [
            level.view(num_images, -1, box_dim, level.shape[-2], level.shape[-1]).permute(0, 3, 4, 1, 2).flatten(1, -2)
            for level in deltas
        ],
        dim=1,
    )
