"""ExportableMaskRCNN: a trained GeneralizedRCNN as one traceable function of decoded images.

The eager model's inference keeps per-image Python lists of Instances and branches on counts,
which a tracer would freeze at the sample image's values. This module runs the model's own
layers (backbone, RPN head, box and mask heads, their weights and settings) through code written
as tensor operations only: every size and count is a tensor, so a traced graph accepts any image
size, any batch size and any number of detections, zero included. It computes what
``GeneralizedRCNN.inference`` computes on the same resized image (the export tests check this
detection by detection).

Input: ``images`` (B, H, W, 3) uint8 in the model's INPUT.FORMAT channel order, B >= 1 images of
one size. Inside: Pillow-style bilinear resize to INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST, pixel
normalisation, padding to the backbone's size divisibility, the detector, boxes scaled back to
H x W and masks pasted at H x W.
Output, flat over the batch, grouped by image and by decreasing score within an image:
``boxes`` (N, 4) float32 XYXY in input pixels, ``scores`` (N,) float32, ``classes`` (N,) int64,
``masks`` (N, H, W) bool (with MODEL.MASK_ON), ``batch_indices`` (N,) int64: the image of each.
"""

from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from mrcnn.layers import paste_masks_in_image
from mrcnn.modeling.meta_arch.rcnn import GeneralizedRCNN
from mrcnn.modeling.proposal_generator.anchor_generator import DefaultAnchorGenerator
from mrcnn.modeling.proposal_generator.rpn import RPN
from mrcnn.modeling.roi_heads.cascade_rcnn import CascadeROIHeads
from mrcnn.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead
from mrcnn.modeling.roi_heads.roi_heads import StandardROIHeads

from .grouped_nms import grouped_nms
from .pillow_resize import pillow_bilinear_resize, resized_shortest_edge_size

__all__ = ["ExportableMaskRCNN", "OUTPUT_NAMES", "check_exportable"]

OUTPUT_NAMES = ("boxes", "scores", "classes", "masks", "batch_indices")


def check_exportable(model: nn.Module) -> None:
    """Raise a ValueError naming the component when ``model`` is not one the export adapter covers."""
    problems = []
    if not isinstance(model, GeneralizedRCNN):
        problems.append(f"MODEL.META_ARCHITECTURE is {type(model).__name__}, export covers GeneralizedRCNN")
    else:
        if not isinstance(model.proposal_generator, RPN):
            problems.append(f"the proposal generator is {type(model.proposal_generator).__name__}, export covers RPN")
        elif not isinstance(model.proposal_generator.anchor_generator, DefaultAnchorGenerator):
            problems.append("the anchor generator is not DefaultAnchorGenerator")
        if not isinstance(model.roi_heads, StandardROIHeads):
            problems.append(
                f"MODEL.ROI_HEADS.NAME is {type(model.roi_heads).__name__}, "
                "export covers StandardROIHeads and CascadeROIHeads (FPN models)"
            )
        elif model.roi_heads.mask_on and not hasattr(model.roi_heads.mask_head, "layers"):
            problems.append("the mask head has no layers() method giving its logits")
    if problems:
        raise ValueError("This model cannot be exported: " + "; ".join(problems) + ".")


def _tie_free_scores(scores: Tensor) -> Tensor:
    """Float32 (K,) scores ordered as (score descending, position ascending), with no two equal.

    The eager model's NMS and top-k keep equal scores in candidate order (stable sorts). ONNX
    Runtime's NonMaxSuppression and TopK break ties arbitrarily, and a model whose scores saturate
    (hundreds of probabilities of exactly 1.0) would then keep another set of boxes. So NMS and the
    ordering below run on K - rank instead, the rank taken in float64 over score * (1 - position *
    2**-45): a relative nudge below half a float32 step (for K < 2**20), so it orders equal scores
    by position and never reorders distinct ones.
    """
    count = torch._shape_as_tensor(scores)[0]
    positions = torch.arange(count, device=scores.device).to(torch.float64)
    wide = scores.to(torch.float64)
    key = wide - wide.abs() * positions * 2.0**-45
    rank = torch.argsort(torch.argsort(key, descending=True))
    return (count - rank).to(torch.float32)


def _order_by_image_then_score(scores: Tensor, batch_indices: Tensor, num_images: Tensor, max_per_image: int) -> Tensor:
    """Indices that sort detections by image, then by decreasing score, keeping ``max_per_image`` per image.

    scores, batch_indices (K,); num_images a 0-d int64 tensor; max_per_image < 0 keeps all.
    """
    by_score = torch.argsort(scores, descending=True)
    image_of = batch_indices[by_score]
    one_hot = (image_of[:, None] == torch.arange(num_images, device=scores.device)[None, :]).to(torch.int64)
    rank_in_image = (torch.cumsum(one_hot, dim=0) * one_hot).sum(dim=1) - 1  # (K,)
    per_image = one_hot.sum(dim=0)  # (B,)
    if max_per_image >= 0:
        kept = rank_in_image < max_per_image
        per_image = torch.clamp(per_image, max=max_per_image)
    else:
        kept = torch.ones_like(rank_in_image, dtype=torch.bool)
    image_start = torch.cumsum(per_image, dim=0) - per_image
    position = image_start[image_of] + rank_in_image
    selected = by_score[kept]
    return selected[torch.argsort(position[kept])]


def _clip(boxes: Tensor, height: Tensor, width: Tensor) -> Tensor:
    """XYXY boxes (..., 4) clamped into [0, width] x [0, height] (float tensors)."""
    x1 = torch.minimum(torch.clamp(boxes[..., 0], min=0), width)
    y1 = torch.minimum(torch.clamp(boxes[..., 1], min=0), height)
    x2 = torch.minimum(torch.clamp(boxes[..., 2], min=0), width)
    y2 = torch.minimum(torch.clamp(boxes[..., 3], min=0), height)
    return torch.stack((x1, y1, x2, y2), dim=-1)


class ExportableMaskRCNN(nn.Module):
    """A GeneralizedRCNN (RPN + StandardROIHeads or CascadeROIHeads) behind ``forward(images) ->
    (boxes, scores, classes, masks, batch_indices)``; see the module docstring for shapes. Holds
    the model, shares its weights."""

    def __init__(self, model: GeneralizedRCNN, min_size_test: int, max_size_test: int):
        super().__init__()
        check_exportable(model)
        self.model = model.eval()
        self.min_size_test = int(min_size_test)
        self.max_size_test = int(max_size_test)
        self.mask_on = bool(model.roi_heads.mask_on)

    @classmethod
    def from_config(cls, cfg, model: GeneralizedRCNN) -> "ExportableMaskRCNN":
        """The adapter of ``model`` with the test-time resize of ``cfg`` (INPUT.MIN/MAX_SIZE_TEST)."""
        return cls(model, cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)

    @property
    def output_names(self) -> List[str]:
        """Names of the outputs, in order."""
        return [name for name in OUTPUT_NAMES if self.mask_on or name != "masks"]

    def preprocess(self, images: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(B, H, W, 3) uint8 -> normalised, padded (B, 3, Hp, Wp) float32 and the resized (height, width)."""
        shape = torch._shape_as_tensor(images)
        height, width = shape[1], shape[2]
        if self.min_size_test > 0:
            new_height, new_width = resized_shortest_edge_size(height, width, self.min_size_test, self.max_size_test)
        else:
            new_height, new_width = height, width
        divisor = max(int(self.model.backbone.size_divisibility), 1)
        padded_height = torch.div(new_height + divisor - 1, divisor, rounding_mode="floor") * divisor
        padded_width = torch.div(new_width + divisor - 1, divisor, rounding_mode="floor") * divisor
        resized = pillow_bilinear_resize(images, new_height, new_width, padded_height, padded_width)
        resized = resized.permute(0, 3, 1, 2)  # (B, 3, Hp, Wp), values 0-255
        normalized = (resized - self.model.pixel_mean) / self.model.pixel_std
        rows = torch.arange(padded_height, device=images.device) < new_height
        cols = torch.arange(padded_width, device=images.device) < new_width
        inside = rows[:, None] & cols[None, :]
        return torch.where(inside, normalized, torch.zeros_like(normalized)), new_height, new_width

    def forward(self, images: Tensor) -> Tuple[Tensor, ...]:
        """Detections of a batch of same-size uint8 images (B, H, W, 3); see the module docstring."""
        shape = torch._shape_as_tensor(images)
        num_images, height, width = shape[0], shape[1], shape[2]
        normalized, new_height, new_width = self.preprocess(images)
        padded = torch._shape_as_tensor(normalized)
        features = self.model.backbone(normalized)
        proposals, proposal_images = self._proposals(
            features, num_images, new_height, new_width, (padded[2], padded[3])
        )
        boxes, scores, classes, batch_indices = self._detections(
            features, proposals, proposal_images, num_images, new_height, new_width
        )
        # detector_postprocess: scale to the input size and clip (float32, as the eager model does)
        scale_x = width.to(torch.float32) / new_width.to(torch.float32)
        scale_y = height.to(torch.float32) / new_height.to(torch.float32)
        output_boxes = _clip(
            boxes * torch.stack([scale_x, scale_y, scale_x, scale_y]), height.to(torch.float32), width.to(torch.float32)
        )
        outputs = [output_boxes, scores, classes]
        if self.mask_on:
            mask_probabilities = self._mask_probabilities(features, boxes, classes, batch_indices)
            outputs.append(
                paste_masks_in_image(
                    mask_probabilities,
                    output_boxes,
                    (height, width),
                    threshold=self.model.mask_threshold,
                    mode=self.model.mask_paste_mode,
                )
            )
        outputs.append(batch_indices)
        return tuple(outputs)

    def _anchors(self, level_features: List[Tensor], padded_size: Tuple[Tensor, Tensor]) -> List[Tensor]:
        """Per level, (Hi*Wi*A, 4) anchors for the feature map's (dynamic) size (DefaultAnchorGenerator)."""
        generator = self.model.proposal_generator.anchor_generator
        from_image_size = getattr(generator, "strides_from_image_size", False)
        anchors = []
        for feature, stride, cell_anchors in zip(level_features, generator.strides, generator.cell_anchors):
            size = torch._shape_as_tensor(feature)
            if from_image_size:  # padded image side // feature map side, per side (torchvision)
                stride_y = torch.div(padded_size[0], size[2], rounding_mode="floor").to(torch.float32)
                stride_x = torch.div(padded_size[1], size[3], rounding_mode="floor").to(torch.float32)
            else:
                stride_y = stride_x = float(stride)
            shifts_x = (torch.arange(size[3], device=feature.device).to(torch.float32) + generator.offset) * stride_x
            shifts_y = (torch.arange(size[2], device=feature.device).to(torch.float32) + generator.offset) * stride_y
            shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
            shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            anchors.append((shifts[:, None, :] + cell_anchors[None, :, :]).reshape(-1, 4))
        return anchors

    def _proposals(
        self,
        features: Dict[str, Tensor],
        num_images: Tensor,
        height: Tensor,
        width: Tensor,
        padded_size: Tuple[Tensor, Tensor],
    ) -> Tuple[Tensor, Tensor]:
        """RPN proposals (M, 4) and their image (M,), by image then decreasing objectness (RPN.predict_proposals)."""
        rpn = self.model.proposal_generator
        level_features = [features[name] for name in rpn.in_features]
        anchors = self._anchors(level_features, padded_size)
        logits, deltas = rpn.rpn_head(level_features)
        pre_nms_topk = rpn.pre_nms_topk[False]
        top_boxes, top_logits, top_levels = [], [], []
        for level, (level_anchors, level_logits, level_deltas) in enumerate(zip(anchors, logits, deltas)):
            num_cell_anchors = level_logits.shape[1]
            level_logits = level_logits.permute(0, 2, 3, 1).flatten(1)  # (B, Hi*Wi*A)
            level_deltas = level_deltas.unflatten(1, (num_cell_anchors, 4)).permute(0, 3, 4, 1, 2).flatten(1, -2)
            num_anchors = torch._shape_as_tensor(level_logits)[1]
            k = torch.clamp(num_anchors, max=pre_nms_topk)
            level_logits, index = level_logits.topk(k, dim=1)  # (B, k)
            batch = torch.arange(num_images, device=index.device)[:, None]
            picked_deltas = level_deltas[batch, index]  # (B, k, 4)
            picked_anchors = level_anchors[index]  # (B, k, 4)
            decoded = rpn.box2box_transform.apply_deltas(picked_deltas.reshape(-1, 4), picked_anchors.reshape(-1, 4))
            top_boxes.append(decoded.reshape(picked_deltas.shape))
            top_logits.append(level_logits)
            top_levels.append(torch.full_like(index, level))
        boxes = _clip(torch.cat(top_boxes, dim=1), height.to(torch.float32), width.to(torch.float32))
        scores = torch.cat(top_logits, dim=1)  # (B, R)
        levels = torch.cat(top_levels, dim=1)
        images = torch.arange(num_images, device=boxes.device)[:, None].expand_as(levels)
        widths, heights = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
        if rpn.min_box_size > 0:
            large = (widths >= rpn.min_box_size) & (heights >= rpn.min_box_size)
        else:
            large = (widths > 0) & (heights > 0)
        # clamping turns non-finite boxes finite, so finiteness is judged before it, as eager does
        finite = torch.isfinite(torch.cat(top_boxes, dim=1)).all(dim=2) & torch.isfinite(scores)
        valid = torch.nonzero((large & finite).flatten()).squeeze(1)
        boxes, scores = boxes.reshape(-1, 4)[valid], scores.flatten()[valid]
        images, levels = images.flatten()[valid], levels.flatten()[valid]
        if getattr(rpn, "proposal_ranking", "logit") == "probability":
            scores = scores.to(torch.float32).sigmoid()  # proposal_utils.proposal_scores
        ranked = _tie_free_scores(scores)
        num_levels = len(level_features)
        keep = grouped_nms(boxes, ranked, images * num_levels + levels, num_images * num_levels, rpn.nms_thresh)
        order = keep[_order_by_image_then_score(ranked[keep], images[keep], num_images, rpn.post_nms_topk[False])]
        return boxes[order], images[order]

    def _pool(self, pooler: nn.Module, level_features: List[Tensor], boxes: Tensor, images: Tensor) -> Tensor:
        """ROIPooler.forward on (M, 4) boxes of images (M,): each box from the level its size picks."""
        rois = torch.cat([images[:, None].to(boxes.dtype), boxes], dim=1)
        poolers = pooler.level_poolers
        if len(poolers) == 1:
            single = poolers[0]
            return roi_align(
                level_features[0], rois, single.output_size, single.spatial_scale, single.sampling_ratio, single.aligned
            )
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        levels = torch.floor(pooler.canonical_level + torch.log2(torch.sqrt(areas) / pooler.canonical_box_size) + 1e-6)
        levels = torch.clamp(levels, min=pooler.min_level, max=pooler.max_level).to(torch.int64) - pooler.min_level
        pooled, order = [], []
        for level, (feature, level_pooler) in enumerate(zip(level_features, poolers)):
            members = torch.nonzero(levels == level).squeeze(1)
            pooled.append(
                roi_align(
                    feature,
                    rois[members],
                    level_pooler.output_size,
                    level_pooler.spatial_scale,
                    level_pooler.sampling_ratio,
                    level_pooler.aligned,
                )
            )
            order.append(members)
        return torch.cat(pooled)[torch.argsort(torch.cat(order))]

    def _detections(
        self,
        features: Dict[str, Tensor],
        proposals: Tensor,
        proposal_images: Tensor,
        num_images: Tensor,
        height: Tensor,
        width: Tensor,
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Box branch and fast_rcnn_inference: boxes (D, 4) in resized pixels, scores, classes, images."""
        heads = self.model.roi_heads
        level_features = [features[name] for name in heads.box_in_features]
        boxes, probabilities, predictor = self._box_predictions(
            level_features, proposals, proposal_images, height, width
        )
        roi_finite = torch.isfinite(boxes).all(dim=1) & torch.isfinite(probabilities).all(dim=1)
        scores = probabilities[:, :-1]
        num_classes = predictor.num_classes
        boxes = _clip(boxes.unflatten(1, (-1, 4)), height.to(torch.float32), width.to(torch.float32))
        candidates = (scores > predictor.test_score_thresh) & roi_finite[:, None]
        roi_index, class_index = torch.nonzero(candidates, as_tuple=True)
        if boxes.shape[1] == 1:
            boxes = boxes[roi_index, 0]
        else:
            boxes = boxes[roi_index, class_index]
        scores = scores[roi_index, class_index]
        images = proposal_images[roi_index]
        if predictor.test_min_box_size > 0:
            size = predictor.test_min_box_size
            large = ((boxes[:, 2] - boxes[:, 0]) >= size) & ((boxes[:, 3] - boxes[:, 1]) >= size)
            large = torch.nonzero(large).squeeze(1)
            boxes, scores, class_index, images = boxes[large], scores[large], class_index[large], images[large]
        ranked = _tie_free_scores(scores)
        keep = grouped_nms(
            boxes, ranked, images * num_classes + class_index, num_images * num_classes, predictor.test_nms_thresh
        )
        order = keep[_order_by_image_then_score(ranked[keep], images[keep], num_images, predictor.test_topk_per_image)]
        return boxes[order], scores[order], class_index[order], images[order]

    def _box_predictions(
        self, level_features: List[Tensor], proposals: Tensor, proposal_images: Tensor, height: Tensor, width: Tensor
    ) -> Tuple[Tensor, Tensor, nn.Module]:
        """Decoded boxes (R, K*4) or (R, 4), class probabilities (R, K+1) and the predictor whose
        test settings apply, for the R proposals.

        A cascade runs its stages as CascadeROIHeads' inference does: each stage scores the boxes
        the previous one predicted (clipped to the image, none dropped), the probabilities are
        averaged over the stages and the last stage's boxes are kept.
        """
        heads = self.model.roi_heads
        if not isinstance(heads, CascadeROIHeads):
            box_features = heads.box_head(self._pool(heads.box_pooler, level_features, proposals, proposal_images))
            class_logits, box_deltas = heads.box_predictor(box_features)
            boxes = heads.box_predictor.box2box_transform.apply_deltas(box_deltas, proposals)
            return boxes, F.softmax(class_logits, dim=-1), heads.box_predictor
        num_stages = heads.num_cascade_stages
        boxes, summed = proposals, None
        for stage in range(num_stages):
            if stage > 0:
                boxes = _clip(boxes, height.to(torch.float32), width.to(torch.float32))
            pooled = self._pool(heads.box_pooler, level_features, boxes, proposal_images)
            class_logits, box_deltas = heads.box_predictor[stage](heads.box_head[stage](pooled))
            probabilities = F.softmax(class_logits, dim=-1)
            summed = probabilities if summed is None else summed + probabilities
            boxes = heads.box_predictor[stage].box2box_transform.apply_deltas(box_deltas, boxes)
        return boxes, summed * (1.0 / num_stages), heads.box_predictor[num_stages - 1]

    def _mask_probabilities(
        self, features: Dict[str, Tensor], boxes: Tensor, classes: Tensor, images: Tensor
    ) -> Tensor:
        """Mask head on the detections: (D, M, M) probabilities of each detection's class (mask_rcnn_inference)."""
        heads = self.model.roi_heads
        head = heads.mask_head
        level_features = [features[name] for name in heads.mask_in_features]
        mask_features = self._pool(heads.mask_pooler, level_features, boxes, images)
        num_outputs = head.predictor.out_channels if hasattr(head, "predictor") else None
        if num_outputs is not None and num_outputs > 1 and type(head).layers is MaskRCNNConvUpsampleHead.layers:
            # the eager head's own shortcut: only each detection's class channel of the 1x1 predictor
            hidden = head.features(mask_features)
            weight = head.predictor.weight[classes, :, 0, 0]
            logits = torch.einsum("rdhw,rd->rhw", hidden, weight.to(hidden.dtype))
            if head.predictor.bias is not None:
                logits = logits + head.predictor.bias[classes].to(logits.dtype)[:, None, None]
        else:
            all_logits = head.layers(mask_features)
            if all_logits.shape[1] == 1:
                logits = all_logits[:, 0]
            else:
                logits = all_logits[torch.arange(classes.shape[0], device=classes.device), classes]
        return logits.sigmoid()
