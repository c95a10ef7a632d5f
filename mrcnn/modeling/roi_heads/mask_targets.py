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

from mrcnn.structures import BitMasks, Instances, PolygonMasks, polygons_to_bitmask

__all__ = ["MASK_TARGET_MODES", "mask_targets", "roi_align_image_masks"]

MASK_TARGET_MODES = ("crop_and_resize", "roi_align_image_mask")

# RoIs resampled at once from full-image bit masks: each costs one float copy of its mask
_BITMASK_CHUNK = 16


def mask_targets(instances: Instances, mask_size: int, mode: str) -> torch.Tensor:
    """(R, M, M) float32 targets of one image's RoIs (``proposal_boxes``, per-RoI ``gt_masks``)."""
    boxes = instances.proposal_boxes.tensor
    if mode == "crop_and_resize":
        targets = instances.gt_masks.crop_and_resize(boxes, mask_size)
    elif mode == "roi_align_image_mask":
        targets = roi_align_image_masks(instances.gt_masks, boxes, mask_size, instances.image_size)
    else:
        raise ValueError(
            f"Unknown mask target mode {mode!r}; MODEL.ROI_MASK_HEAD.TARGET_MODE is one of {list(MASK_TARGET_MODES)}"
        )
    return targets.to(device=boxes.device, dtype=torch.float32)


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
        image_masks, mask_index = _rasterise_each_instance_once(gt_masks.polygons, image_size)
        image_masks = image_masks.to(device=boxes.device, dtype=boxes.dtype)
        return _resample(image_masks, mask_index.to(boxes.device), boxes, mask_size)
    if isinstance(gt_masks, BitMasks):
        targets = []
        for start in range(0, len(boxes), _BITMASK_CHUNK):
            chunk = gt_masks.tensor[start : start + _BITMASK_CHUNK].to(device=boxes.device, dtype=boxes.dtype)
            index = torch.arange(len(chunk), device=boxes.device)
            targets.append(_resample(chunk, index, boxes[start : start + _BITMASK_CHUNK], mask_size))
        return torch.cat(targets, dim=0)
    raise TypeError(f"roi_align_image_masks: gt_masks must be PolygonMasks or BitMasks, got {type(gt_masks).__name__}")


def _rasterise_each_instance_once(
    polygons_per_roi: Sequence[List[np.ndarray]], image_size: Tuple[int, int]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(U, H, W) bool masks of the U distinct instances among the RoIs' polygon lists, and (R,)
    the index of each RoI's mask among them."""
    height, width = image_size
    first_position = {}
    distinct, mask_index = [], []
    for polygons in polygons_per_roi:
        # identity, not equality: the lists stay alive in polygons_per_roi, so ids are unique
        position = first_position.setdefault(id(polygons), len(distinct))
        if position == len(distinct):
            distinct.append(polygons_to_bitmask(polygons, height, width))
        mask_index.append(position)
    return torch.from_numpy(np.stack(distinct)), torch.tensor(mask_index, dtype=torch.int64)


def _resample(image_masks: torch.Tensor, mask_index: torch.Tensor, boxes: torch.Tensor, mask_size: int) -> torch.Tensor:
    """RoIAlign (spatial scale 1, adaptive sampling, unaligned) of image_masks[mask_index[i]]
    (K, H, W) float inside boxes[i]: (R, M, M)."""
    rois = torch.cat([mask_index.to(boxes.dtype)[:, None], boxes], dim=1)
    return roi_align(image_masks[:, None], rois, (mask_size, mask_size), 1.0, -1, False)[:, 0]
