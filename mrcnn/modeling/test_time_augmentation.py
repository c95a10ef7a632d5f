"""Test-time augmentation (TEST.AUG): a trained R-CNN run on resized and flipped copies of each
image, its detections merged.

Each image is run at every shortest-edge size of TEST.AUG.MIN_SIZES (capped by MAX_SIZE), and with
TEST.AUG.FLIP also mirrored left-right. The boxes of every pass are mapped back to the image's
"height" × "width" and merged by TEST.AUG.MERGE:

* "nms" (detectron2's): the detections of all passes pooled, class-wise NMS at
  MODEL.ROI_HEADS.NMS_THRESH_TEST, the best TEST.DETECTIONS_PER_IMAGE kept.
* "average": the detections of the first pass (the first size, not flipped) kept, each with box and
  score averaged with the best-overlapping detection of the same class of every other pass that
  overlaps it by IoU >= TEST.AUG.MATCH_IOU. Averaging boxes predicted on mirrored and resized
  copies evens out where a single pass places an edge, which is what AP at IoU 0.85-0.95 needs.

Masks (as detectron2 does) are predicted for the merged boxes in every pass, mirrored back where
the pass was flipped, averaged as probabilities and pasted. Each pass resizes the image tensor the
test loader made (bilinearly), so sizes are relative to that image, not re-read from the file.
"""

import contextlib
from typing import Any, Dict, Iterator, List, NamedTuple, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, box_iou

from mrcnn.config import configurable
from mrcnn.structures import Boxes, Instances
from mrcnn.utils.resize_shape import shortest_edge_resized_shape

from .postprocessing import detector_postprocess

__all__ = ["GeneralizedRCNNWithTTA", "MERGE_MODES"]

MERGE_MODES = ("nms", "average")


class GeneralizedRCNNWithTTA(nn.Module):
    """Wrap a `GeneralizedRCNN` (in eval mode) so that calling it runs every augmentation and merges.

    Takes and returns what the model's inference does: a list of dicts with "image" (C, H, W), and
    optional "height"/"width" (the size detections are returned at), to a list of
    ``{"instances": Instances}``.
    """

    @configurable
    def __init__(
        self,
        model: nn.Module,
        *,
        min_sizes: Sequence[int],
        max_size: int,
        flip: bool,
        merge: str = "nms",
        match_iou: float = 0.7,
        nms_thresh: float = 0.5,
        detections_per_image: int = 100,
    ):
        """
        Args:
            model: the detector; a DistributedDataParallel wrapper is looked through.
            min_sizes: shortest-edge sizes to run at (the first, unflipped, is the "average" reference).
            max_size: longest-edge cap of each size.
            flip: also run each size mirrored left-right.
            merge: "nms" or "average" (module docstring).
            match_iou: "average": least IoU of a detection of another pass to be averaged in.
            nms_thresh: "nms": IoU threshold of the class-wise NMS.
            detections_per_image: "nms": detections kept per image.
        """
        super().__init__()
        model = getattr(model, "module", model)
        if not hasattr(model.roi_heads, "forward_with_given_boxes"):
            raise ValueError(
                f"Test-time augmentation needs RoI heads with forward_with_given_boxes; got {type(model.roi_heads)}."
            )
        if merge not in MERGE_MODES:
            raise ValueError(f"TEST.AUG.MERGE must be one of {MERGE_MODES}; got '{merge}'.")
        if not min_sizes:
            raise ValueError("TEST.AUG.MIN_SIZES is empty: name at least one test size.")
        self.model = model
        flips = (False, True) if flip else (False,)
        self.passes: List[Tuple[int, bool]] = [(int(size), flipped) for size in min_sizes for flipped in flips]
        self.max_size = int(max_size)
        self.merge = merge
        self.match_iou = float(match_iou)
        self.nms_thresh = float(nms_thresh)
        self.detections_per_image = int(detections_per_image)

    @classmethod
    def from_config(cls, cfg, model: nn.Module) -> Dict[str, Any]:
        return {
            "model": model,
            "min_sizes": list(cfg.TEST.AUG.MIN_SIZES),
            "max_size": cfg.TEST.AUG.MAX_SIZE,
            "flip": cfg.TEST.AUG.FLIP,
            "merge": cfg.TEST.AUG.MERGE,
            "match_iou": cfg.TEST.AUG.MATCH_IOU,
            "nms_thresh": cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST,
            "detections_per_image": cfg.TEST.DETECTIONS_PER_IMAGE,
        }

    @contextlib.contextmanager
    def _masks_off(self) -> Iterator[None]:
        heads = self.model.roi_heads
        saved = heads.mask_on
        heads.mask_on = False
        try:
            yield
        finally:
            heads.mask_on = saved

    def forward(self, batched_inputs: List[Dict[str, Any]]) -> List[Dict[str, Instances]]:
        return [{"instances": self._inference_one(inputs)} for inputs in batched_inputs]

    def _augmented(self, inputs: Dict[str, Any], size: int, flipped: bool) -> Dict[str, Any]:
        image = inputs["image"]
        height, width = image.shape[-2:]
        new_h, new_w = shortest_edge_resized_shape(height, width, size, self.max_size)
        if (new_h, new_w) != (height, width):
            resized = F.interpolate(image[None].float(), size=(new_h, new_w), mode="bilinear", align_corners=False)[0]
            image = resized.round().clamp(0, 255).to(image.dtype) if not image.is_floating_point() else resized
        if flipped:
            image = image.flip(-1)
        return {**inputs, "image": image}

    def _inference_one(self, inputs: Dict[str, Any]) -> Instances:
        out_h = int(inputs.get("height", inputs["image"].shape[-2]))
        out_w = int(inputs.get("width", inputs["image"].shape[-1]))
        runs = []
        for size, flipped in self.passes:
            augmented = self._augmented(inputs, size, flipped)
            images = self.model.preprocess_image([augmented])
            features = self.model.backbone(images.tensor)
            proposals, _ = self.model.proposal_generator(images, features, None)
            with self._masks_off():
                detections = self.model.roi_heads(images, features, proposals, None)[0][0]
            pass_size = images.image_sizes[0]
            boxes = _to_output(detections.pred_boxes.tensor, pass_size, flipped, (out_h, out_w))
            runs.append(_PassResult(pass_size, flipped, features, boxes, detections.scores, detections.pred_classes))
        boxes, scores, classes = self._merge([(run.boxes, run.scores, run.classes) for run in runs])
        merged = Instances((out_h, out_w), pred_boxes=Boxes(boxes), scores=scores, pred_classes=classes)
        if self.model.roi_heads.mask_on:
            merged.pred_masks = self._averaged_masks(runs, merged)
        return detector_postprocess(merged, out_h, out_w, self.model.mask_threshold, self.model.mask_paste_mode)

    def _merge(
        self, detections: List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.merge == "nms":
            boxes = torch.cat([d[0] for d in detections])
            scores = torch.cat([d[1] for d in detections])
            classes = torch.cat([d[2] for d in detections])
            keep = batched_nms(boxes, scores, classes, self.nms_thresh)[: self.detections_per_image]
            return boxes[keep], scores[keep], classes[keep]
        boxes, scores, classes = detections[0]
        box_sum, score_sum = boxes.clone(), scores.clone()
        count = torch.ones_like(scores)
        for other_boxes, other_scores, other_classes in detections[1:]:
            if len(boxes) == 0 or len(other_boxes) == 0:
                continue
            overlap = box_iou(boxes, other_boxes) * (classes[:, None] == other_classes[None, :])
            best, index = overlap.max(dim=1)
            matched = best >= self.match_iou
            box_sum[matched] += other_boxes[index[matched]]
            score_sum[matched] += other_scores[index[matched]]
            count += matched.to(count.dtype)
        return box_sum / count[:, None], score_sum / count, classes

    def _averaged_masks(self, runs: List["_PassResult"], merged: Instances) -> torch.Tensor:
        """(N, 1, M, M) mask probabilities of the merged boxes, averaged over the passes."""
        total = None
        for run in runs:
            boxes = _from_output(merged.pred_boxes.tensor, run.image_size, run.flipped, merged.image_size)
            given = Instances(run.image_size, pred_boxes=Boxes(boxes), pred_classes=merged.pred_classes)
            masks = self.model.roi_heads.forward_with_given_boxes(run.features, [given])[0].pred_masks
            masks = masks.flip(-1) if run.flipped else masks
            total = masks if total is None else total + masks
        return total / len(runs)


Size = Tuple[int, int]


class _PassResult(NamedTuple):
    """One augmented pass: its image size and mirroring, its features (for the masks), and its
    detections with boxes (N, 4) already in the output's coordinates."""

    image_size: Size
    flipped: bool
    features: Dict[str, torch.Tensor]
    boxes: torch.Tensor
    scores: torch.Tensor
    classes: torch.Tensor


def _mirrored(boxes: torch.Tensor, width: int) -> torch.Tensor:
    """Boxes (N, 4) of an image ``width`` wide, mirrored left-right."""
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)


def _to_output(boxes: torch.Tensor, pass_size: Size, flipped: bool, out_size: Size) -> torch.Tensor:
    """Boxes (N, 4) of a pass (its image ``pass_size``, mirrored if ``flipped``) in output coordinates."""
    height, width = pass_size
    if flipped:
        boxes = _mirrored(boxes, width)
    return boxes * boxes.new_tensor([out_size[1] / width, out_size[0] / height] * 2)


def _from_output(boxes: torch.Tensor, pass_size: Size, flipped: bool, out_size: Size) -> torch.Tensor:
    """The inverse of `_to_output`."""
    height, width = pass_size
    boxes = boxes * boxes.new_tensor([width / out_size[1], height / out_size[0]] * 2)
    return _mirrored(boxes, width) if flipped else boxes
