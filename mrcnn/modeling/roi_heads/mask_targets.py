"""Training targets of the mask head: each foreground RoI's ground-truth mask on the head's M×M grid.

Two constructions are in use, and they give different losses on the same batch:

- "crop_and_resize" (detectron2): the mask is cut out by the proposal box and resampled to M×M
  as a binary mask; polygons are rasterised directly inside the box, bit masks resampled with
  aligned RoIAlign and thresholded at 0.5.
- "roi_align_image_mask" (torchvision): the mask is rasterised on the whole image and resampled
  into the box by unaligned RoIAlign (adaptive sampling), giving soft targets in [0, 1].
"""

from typing import List, Sequence, Tuple, Union

import numpy as np
import torch
from torchvision.ops import roi_align

from mrcnn.layers import cat
from mrcnn.structures import BitMasks, Instances, PolygonMasks, polygons_to_bitmask

__all__ = ["MASK_TARGET_MODES", "mask_targets", "mask_targets_of_images", "roi_align_image_masks"]

MASK_TARGET_MODES = ("crop_and_resize", "roi_align_image_mask")

# RoIs resampled at once from full-image bit masks: each costs one float copy of its mask
_BITMASK_CHUNK = 16


def mask_targets(instances: Instances, mask_size: int, mode: str) -> torch.Tensor:
    """(R, M, M) float32 targets of one image's RoIs (``proposal_boxes``, per-RoI ``gt_masks``)."""
    return mask_targets_of_images([instances], mask_size, mode)


def mask_targets_of_images(instances: Sequence[Instances], mask_size: int, mode: str) -> torch.Tensor:
    """``mask_targets`` of several images' RoIs, concatenated in order: (sum R_i, M, M) float32.

    In "roi_align_image_mask" mode the polygons of consecutive images of one size are
    rasterised together and all their RoIs resampled by one RoIAlign.
    """
    if mode not in MASK_TARGET_MODES:
        raise ValueError(
            f"Unknown mask target mode {mode!r}; MODEL.ROI_MASK_HEAD.TARGET_MODE is one of {list(MASK_TARGET_MODES)}"
        )
    targets, run = [], []  # run: consecutive images of one size with polygon masks
    for per_image in instances:
        if mode == "roi_align_image_mask" and isinstance(per_image.gt_masks, PolygonMasks):
            if run and run[0].image_size != per_image.image_size:
                targets.append(_roi_align_polygon_targets(run, mask_size))
                run = []
            run.append(per_image)
            continue
        if run:
            targets.append(_roi_align_polygon_targets(run, mask_size))
            run = []
        boxes = per_image.proposal_boxes.tensor
        if mode == "crop_and_resize":
            per_image_targets = per_image.gt_masks.crop_and_resize(boxes, mask_size)
            if per_image_targets.device != boxes.device:
                per_image_targets = per_image_targets.to(boxes.device)
            targets.append(per_image_targets)
        else:
            targets.append(roi_align_image_masks(per_image.gt_masks, boxes, mask_size, per_image.image_size))
    if run:
        targets.append(_roi_align_polygon_targets(run, mask_size))
    targets = torch.cat(targets) if len(targets) > 1 else targets[0]
    return targets if targets.dtype == torch.float32 else targets.to(torch.float32)


def _roi_align_polygon_targets(instances: Sequence[Instances], mask_size: int) -> torch.Tensor:
    """``roi_align_image_masks`` of the RoIs of images of one size with PolygonMasks, in one call."""
    boxes = cat([per_image.proposal_boxes.tensor for per_image in instances])
    polygons = [polygon for per_image in instances for polygon in per_image.gt_masks.polygons]
    if len(polygons) != len(boxes):
        raise ValueError(f"roi_align_image_masks: {len(boxes)} boxes for {len(polygons)} masks")
    if len(boxes) == 0:
        return boxes.new_zeros((0, mask_size, mask_size))
    return _resample_polygons(polygons, boxes, mask_size, instances[0].image_size)


def roi_align_image_masks(
    gt_masks: Union[PolygonMasks, BitMasks], boxes: torch.Tensor, mask_size: int, image_size: Tuple[int, int]
) -> torch.Tensor:
    """Soft (R, M, M) targets: RoI i's full-image mask resampled inside boxes[i] (R, 4 XYXY) by
    unaligned RoIAlign with adaptive sampling, as torchvision's Mask R-CNN builds them.

    Polygons are rasterised at ``image_size`` (height, width); RoIs that share an instance's
    polygons (the RoI heads index one PolygonMasks per image) share one rasterisation.
    """
    if len(gt_masks) != len(boxes):
        raise ValueError(f"roi_align_image_masks: {len(boxes)} boxes for {len(gt_masks)} masks")
    if len(boxes) == 0:
        return boxes.new_zeros((0, mask_size, mask_size))
    if isinstance(gt_masks, PolygonMasks):
        return _resample_polygons(gt_masks.polygons, boxes, mask_size, image_size)
    if isinstance(gt_masks, BitMasks):
        targets = []
        for start in range(0, len(boxes), _BITMASK_CHUNK):
            chunk = gt_masks.tensor[start : start + _BITMASK_CHUNK].to(device=boxes.device, dtype=boxes.dtype)
            index = torch.arange(len(chunk), device=boxes.device)
            targets.append(_resample(chunk, index, boxes[start : start + _BITMASK_CHUNK], mask_size))
        return torch.cat(targets, dim=0)
    raise TypeError(f"roi_align_image_masks: gt_masks must be PolygonMasks or BitMasks, got {type(gt_masks).__name__}")


def _resample_polygons(
    polygons_per_roi: Sequence[List[np.ndarray]], boxes: torch.Tensor, mask_size: int, image_size: Tuple[int, int]
) -> torch.Tensor:
    """RoIAlign of each RoI's instance mask, rasterised at ``image_size``, inside boxes (R, 4): (R, M, M)."""
    image_masks, mask_index = _rasterise_each_instance_once(polygons_per_roi, image_size)
    image_masks = torch.from_numpy(image_masks)  # (U, 1, H, W) float32
    rois = torch.from_numpy(mask_index)  # (R, 1) float32
    if boxes.device.type != "cpu":
        image_masks, rois = image_masks.to(boxes.device), rois.to(boxes.device)
    if boxes.dtype != torch.float32:
        image_masks, rois = image_masks.to(boxes.dtype), rois.to(boxes.dtype)
    rois = torch.cat([rois, boxes], dim=1)
    return roi_align(image_masks, rois, (mask_size, mask_size), 1.0, -1, False)[:, 0]


def _rasterise_each_instance_once(
    polygons_per_roi: Sequence[List[np.ndarray]], image_size: Tuple[int, int]
) -> Tuple[np.ndarray, np.ndarray]:
    """(U, 1, H, W) float32 masks of the U distinct instances among the RoIs' polygon lists, and
    (R, 1) float32 the index of each RoI's mask among them."""
    height, width = image_size
    first_position = {}
    distinct, mask_index = [], []
    for polygons in polygons_per_roi:
        # identity, not equality: the lists stay alive in polygons_per_roi, so ids are unique
        position = first_position.setdefault(id(polygons), len(distinct))
        if position == len(distinct):
            distinct.append(polygons_to_bitmask(polygons, height, width))
        mask_index.append(position)
    masks = np.stack(distinct)[:, None].astype(np.float32)
    return masks, np.asarray(mask_index, dtype=np.float32)[:, None]


def _resample(image_masks: torch.Tensor, mask_index: torch.Tensor, boxes: torch.Tensor, mask_size: int) -> torch.Tensor:
    """RoIAlign (spatial scale 1, adaptive sampling, unaligned) of image_masks[mask_index[i]]
    (K, H, W) float inside boxes[i]: (R, M, M)."""
    rois = torch.cat([mask_index.to(boxes.dtype)[:, None], boxes], dim=1)
    return roi_align(image_masks[:, None], rois, (mask_size, mask_size), 1.0, -1, False)[:, 0]
