"""Training targets of the mask head: each foreground RoI's ground-truth mask on the head's M×M grid.

Two constructions are in use, and they give different losses on the same batch:

- "crop_and_resize" (detectron2): the mask is cut out by the proposal box and resampled to M×M
  as a binary mask; polygons are rasterised directly inside the box, bit masks resampled with
  aligned RoIAlign and thresholded at 0.5.
- "roi_align_image_mask" (torchvision): the mask is rasterised on the whole image and resampled
  into the box by unaligned RoIAlign (adaptive sampling), giving soft targets in [0, 1].
"""

import itertools
from typing import List, Sequence, Tuple, Union

import numpy as np
import torch
from torchvision.ops import roi_align

from mrcnn.layers import cat
from mrcnn.structures import BitMasks, Instances, PolygonMasks, polygons_to_bitmask_in_window

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
    if mode == "crop_and_resize":
        return _crop_and_resize_targets(instances, mask_size)
    targets, run = [], []  # run: consecutive images of one size with polygon masks
    for per_image in instances:
        if isinstance(per_image.gt_masks, PolygonMasks):
            if run and run[0].image_size != per_image.image_size:
                targets.append(_roi_align_polygon_targets(run, mask_size))
                run = []
            run.append(per_image)
            continue
        if run:
            targets.append(_roi_align_polygon_targets(run, mask_size))
            run = []
        boxes = per_image.proposal_boxes.tensor
        targets.append(roi_align_image_masks(per_image.gt_masks, boxes, mask_size, per_image.image_size))
    if run:
        targets.append(_roi_align_polygon_targets(run, mask_size))
    targets = torch.cat(targets) if len(targets) > 1 else targets[0]
    return targets if targets.dtype == torch.float32 else targets.to(torch.float32)


def _crop_and_resize_targets(instances: Sequence[Instances], mask_size: int) -> torch.Tensor:
    """ "crop_and_resize" targets of several images' RoIs: (sum R_i, M, M) float32 on the boxes' device.

    Polygons are rasterised on the host; when every image has polygons, the boxes of all images
    come back from the device in one copy and the targets go there in one, instead of a wait for
    the device per image each way.
    """
    boxes = [per_image.proposal_boxes.tensor for per_image in instances]
    device = boxes[0].device
    if device.type != "cpu" and all(isinstance(per_image.gt_masks, PolygonMasks) for per_image in instances):
        host_boxes = torch.cat(boxes).cpu().split([len(b) for b in boxes])
        targets = [per_image.gt_masks.crop_and_resize(b, mask_size) for per_image, b in zip(instances, host_boxes)]
        return torch.cat(targets).to(device, non_blocking=True).to(torch.float32)
    targets = []
    for per_image, per_image_boxes in zip(instances, boxes):
        per_image_targets = per_image.gt_masks.crop_and_resize(per_image_boxes, mask_size)
        # a .to() that changes nothing still costs a dispatch
        targets.append(per_image_targets if per_image_targets.device == device else per_image_targets.to(device))
    targets = torch.cat(targets)
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
    image_masks, mask_index = _rasterise_each_instance_once(polygons_per_roi, image_size, boxes.device, boxes.dtype)
    rois = torch.cat([mask_index, boxes], dim=1)
    return roi_align(image_masks, rois, (mask_size, mask_size), 1.0, -1, False)[:, 0]


def _rasterise_each_instance_once(
    polygons_per_roi: Sequence[List[np.ndarray]],
    image_size: Tuple[int, int],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(U, 1, H, W) masks on ``device`` of the U distinct instances among the RoIs' polygon lists,
    and (R, 1) the index of each RoI's mask among them, both in ``dtype``.

    Each instance is rasterised only inside its bounding box (``polygons_to_bitmask_in_window``,
    the same pixels as a whole-image rasterisation), the windows travel to the device as one uint8
    buffer and are placed into zeroed masks there: on a GPU the host neither rasterises nor sends
    whole images (at 800×1067 that was about 1 ms of pycocotools and 3.4 MB per instance). For the
    CPU the windows are placed on the host, into one array.
    """
    height, width = image_size
    first_position = {}
    distinct, mask_index = [], []
    for polygons in polygons_per_roi:
        # identity, not equality: the lists stay alive in polygons_per_roi, so ids are unique
        position = first_position.setdefault(id(polygons), len(distinct))
        if position == len(distinct):
            distinct.append(polygons)
        mask_index.append(position)
    column = np.asarray(mask_index, dtype=np.float32)[:, None]
    windows = [polygons_to_bitmask_in_window(polygons, height, width) for polygons in distinct]
    if device.type == "cpu":
        # placed by numpy into one array: no operator per instance
        host_masks = np.zeros((len(distinct), 1, height, width), dtype=np.float32)
        for index, (window, top, left) in enumerate(windows):
            rows, columns = window.shape
            host_masks[index, 0, top : top + rows, left : left + columns] = window
        masks, rois = torch.from_numpy(host_masks), torch.from_numpy(column)
        return (masks, rois) if dtype == torch.float32 else (masks.to(dtype), rois.to(dtype))
    masks = torch.zeros((len(distinct), 1, height, width), dtype=dtype, device=device)
    sizes = [window.size for window, _, _ in windows]
    if sum(sizes):
        packed = np.concatenate([window.reshape(-1) for window, _, _ in windows]).view(np.uint8)
        packed = torch.from_numpy(packed).to(device, non_blocking=True)
        for index, ((window, top, left), start) in enumerate(zip(windows, itertools.accumulate([0] + sizes))):
            rows, columns = window.shape
            if window.size:
                masks[index, 0, top : top + rows, left : left + columns] = packed[start : start + window.size].view(
                    rows, columns
                )
    return masks, torch.from_numpy(column).to(device, dtype, non_blocking=True)


def _resample(image_masks: torch.Tensor, mask_index: torch.Tensor, boxes: torch.Tensor, mask_size: int) -> torch.Tensor:
    """RoIAlign (spatial scale 1, adaptive sampling, unaligned) of image_masks[mask_index[i]]
    (K, H, W) float inside boxes[i]: (R, M, M)."""
    rois = torch.cat([mask_index.to(boxes.dtype)[:, None], boxes], dim=1)
    return roi_align(image_masks[:, None], rois, (mask_size, mask_size), 1.0, -1, False)[:, 0]
