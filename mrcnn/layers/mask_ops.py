"""Pasting box-frame mask predictions into full images, all masks of an image at once.

An axis-aligned bilinear resize is separable: resampling the M×M mask of box n
onto the H×W image is ``Wy[n] @ mask[n] @ Wx[n]^T``, where row y of Wy (H×M)
holds the (at most two) bilinear weights that output row y gives to mask rows,
and likewise Wx (W×M) for columns. Building Wy and Wx is cheap (N×H×M and
N×W×M), and two batched matmuls paste every mask with no per-mask Python loop.

Two sampling conventions are offered, each reproducing a reference exactly:

* ``mode="grid"`` (detectron2's): the mask covers the continuous box
  [x0, x1]×[y0, y1]; output pixel x samples mask coordinate
  ``(x + 0.5 - x0) / (x1 - x0) * M - 0.5`` with zeros outside the mask, i.e.
  ``F.grid_sample(..., align_corners=False, padding_mode="zeros")``.
* ``mode="torchvision"`` (torchvision's ``paste_masks_in_image`` with padding 1):
  the mask is padded by one zero pixel, its box enlarged by (M+2)/M about the
  center and truncated to integers, the padded mask resized to the integer
  box with ``F.interpolate(bilinear, align_corners=False)`` and written into
  rows y0..y1, columns x0..x1 (inclusive), clipped to the image. Unlike the
  reference, boxes lying entirely left of or above the image paste nothing
  (the reference fails on them with a slice-shape error).

On the CPU the matmuls run per mask over the rows and columns its weights touch (its
box plus a pixel of margin) instead of the whole image: the same weights and products,
but the work scales with the boxes' area rather than N×H×W. GPUs take the batched form.
Under ONNX export and TorchScript tracing, where a Python loop over masks or a size turned
into an int would freeze the sample's values, the batched form runs with symbolic sizes.
"""

from contextlib import contextmanager
from typing import Iterator, Tuple, Union

import torch

from ..structures import Boxes

__all__ = ["paste_masks_in_image"]

PASTE_MODES = ("grid", "torchvision")

# float32 elements of one chunk of pasted masks (256 MiB) before thresholding to bool
_CHUNK_ELEMENTS = 1 << 26


def _one_hot_bilinear(
    lower: torch.Tensor, upper: torch.Tensor, frac: torch.Tensor, valid: torch.Tensor, size: int
) -> torch.Tensor:
    """Interpolation matrix (N, L, size): weight 1-frac at `lower`, frac at `upper`, rows zero where invalid.

    lower, upper (N, L) int64 in [0, size); frac (N, L) float32; valid (N, L) bool.
    One-hot comparisons instead of scatter_add_ keep this deterministic on every device.
    """
    positions = torch.arange(size, device=lower.device)
    lower_weight = torch.where(valid, 1.0 - frac, torch.zeros_like(frac))
    upper_weight = torch.where(valid, frac, torch.zeros_like(frac))
    return (positions == lower[..., None]) * lower_weight[..., None] + (positions == upper[..., None]) * upper_weight[
        ..., None
    ]


def _grid_weights(start: torch.Tensor, end: torch.Tensor, num_pixels: int, mask_size: int) -> torch.Tensor:
    """detectron2 / grid_sample weights (N, num_pixels, mask_size) for box extents start, end (N,)."""
    pixel_centers = torch.arange(num_pixels, device=start.device, dtype=torch.float32) + 0.5
    extent = (end - start)[:, None]
    valid = extent > 0
    # the same arithmetic as building a grid_sample grid and unnormalizing it
    grid = (pixel_centers[None, :] - start[:, None]) / extent * 2 - 1
    source = ((grid + 1) * mask_size - 1) / 2
    valid = valid & torch.isfinite(source)
    # anything beyond one pixel outside the mask samples only zero padding
    source = torch.where(valid, source, torch.zeros_like(source)).clamp(-2.0, mask_size + 1.0)
    lower_float = source.floor()
    frac = source - lower_float
    lower = lower_float.to(torch.int64)
    upper = lower + 1
    # shift by one into a buffer with a slot each side for out-of-mask neighbours, then drop those slots
    weights = _one_hot_bilinear(
        (lower + 1).clamp(0, mask_size + 1), (upper + 1).clamp(0, mask_size + 1), frac, valid, mask_size + 2
    )
    return weights[..., 1:-1]


def _interpolate_weights(
    box_start: torch.Tensor, box_end: torch.Tensor, num_pixels: int, padded_size: int
) -> torch.Tensor:
    """torchvision-paste weights (N, num_pixels, padded_size) for integer box extents start..end inclusive.

    Reproduces F.interpolate(bilinear, align_corners=False) of the padded mask to
    the integer box length, written at pixels start..end that lie in the image.
    """
    pixels = torch.arange(num_pixels, device=box_start.device)
    length = (box_end - box_start + 1).clamp(min=1)  # (N,)
    valid = (pixels[None, :] >= box_start[:, None]) & (pixels[None, :] <= box_end[:, None])
    offset = (pixels[None, :] - box_start[:, None]).to(torch.float32)
    scale = padded_size / length.to(torch.float32)
    source = (scale[:, None] * (offset + 0.5) - 0.5).clamp(min=0)
    source = torch.where(valid, source, torch.zeros_like(source))
    lower = source.to(torch.int64).clamp(max=padded_size - 1)
    frac = (source - lower.to(torch.float32)).clamp(0.0, 1.0)
    # the last row/column has no upper neighbour: interpolate replicates the edge
    upper = (lower + 1).clamp(max=padded_size - 1)
    return _one_hot_bilinear(lower, upper, frac, valid, padded_size)


def _torchvision_boxes(boxes: torch.Tensor, mask_width: int) -> torch.Tensor:
    """Boxes enlarged for the one-pixel mask padding and truncated to int64, as torchvision does."""
    scale = float(mask_width + 2) / mask_width
    half_width = (boxes[:, 2] - boxes[:, 0]) * 0.5
    half_height = (boxes[:, 3] - boxes[:, 1]) * 0.5
    center_x = (boxes[:, 2] + boxes[:, 0]) * 0.5
    center_y = (boxes[:, 3] + boxes[:, 1]) * 0.5
    half_width = half_width * scale
    half_height = half_height * scale
    expanded = torch.stack(
        [center_x - half_width, center_y - half_height, center_x + half_width, center_y + half_height], dim=1
    )
    return expanded.to(torch.int64)


@contextmanager
def _float32_matmul(device: torch.device) -> Iterator[None]:
    """Run matmuls in true float32: no autocast to half, no TF32 on CUDA (it would move pixels across the threshold)."""
    restore_tf32 = None
    if device.type == "cuda":
        try:
            if torch.backends.cuda.matmul.allow_tf32:
                restore_tf32 = True
                torch.backends.cuda.matmul.allow_tf32 = False
        except RuntimeError:  # precision configured through the newer API; leave it alone
            restore_tf32 = None
    try:
        with torch.autocast(device_type=device.type, enabled=False):
            yield
    finally:
        if restore_tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32 = restore_tf32


def paste_masks_in_image(
    masks: torch.Tensor,
    boxes: Union[torch.Tensor, Boxes],
    image_shape: Tuple[int, int],
    threshold: float = 0.5,
    mode: str = "grid",
) -> torch.Tensor:
    """Paste box-frame mask probabilities (N, Mh, Mw) at boxes (N, 4 XYXY) into (N, H, W) image masks.

    Returns bool masks (probability >= threshold), or the float32 probabilities
    when threshold < 0. `mode` picks the sampling convention (see module docs).
    """
    if mode not in PASTE_MODES:
        raise ValueError(f"paste_masks_in_image: unknown mode '{mode}'; valid modes are {list(PASTE_MODES)}")
    if isinstance(boxes, Boxes):
        boxes = boxes.tensor
    if masks.dim() != 3:
        raise ValueError(f"paste_masks_in_image: masks must be (N, M, M), got shape {tuple(masks.shape)}")
    if boxes.dim() != 2 or boxes.shape[1] != 4 or boxes.shape[0] != masks.shape[0]:
        raise ValueError(
            f"paste_masks_in_image: boxes must be ({masks.shape[0]}, 4) to match the masks, got {tuple(boxes.shape)}"
        )
    if _exporting():
        return _paste_traceable(masks, boxes, image_shape, threshold, mode)
    height, width = int(image_shape[0]), int(image_shape[1])
    # plain ints: under jit tracing (fvcore's FLOP counter) sizes are CPU tensors, which would
    # then meet CUDA tensors in clamp()
    num_masks, mask_height, mask_width = (int(size) for size in masks.shape)
    device = masks.device
    if num_masks == 0:
        out_dtype = torch.bool if threshold >= 0 else torch.float32
        return torch.zeros(0, height, width, dtype=out_dtype, device=device)

    masks = masks.to(torch.float32)
    boxes = boxes.to(device=device, dtype=torch.float32)
    if mode == "grid":
        row_weights = _grid_weights(boxes[:, 1], boxes[:, 3], height, mask_height)
        col_weights = _grid_weights(boxes[:, 0], boxes[:, 2], width, mask_width)
    else:
        int_boxes = _torchvision_boxes(boxes, mask_width)
        # the padding rows/columns of the padded mask are zero, so their weights can be dropped
        row_weights = _interpolate_weights(int_boxes[:, 1], int_boxes[:, 3], height, mask_height + 2)[..., 1:-1]
        col_weights = _interpolate_weights(int_boxes[:, 0], int_boxes[:, 2], width, mask_width + 2)[..., 1:-1]

    with _float32_matmul(device):
        if device.type == "cpu":
            return _paste_within_boxes(masks, row_weights, col_weights, threshold)
        return _paste_full_images(masks, row_weights, col_weights, threshold)


def _exporting() -> bool:
    """Whether ONNX export or a TorchScript tracer records the ops (sizes and counts must stay symbolic)."""
    return torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()


def _paste_traceable(
    masks: torch.Tensor,
    boxes: torch.Tensor,
    image_shape: Tuple[Union[int, torch.Tensor], Union[int, torch.Tensor]],
    threshold: float,
    mode: str,
) -> torch.Tensor:
    """The batched-matmul paste with every size and count left symbolic, for exported graphs.

    The same weights and products as the eager paths (which restrict the CPU matmuls to each box
    and loop over masks in Python): image_shape may hold 0-d tensors, N may be 0.
    """
    height, width = image_shape
    mask_height, mask_width = masks.shape[1], masks.shape[2]  # fixed by the mask head
    masks = masks.to(torch.float32)
    boxes = boxes.to(device=masks.device, dtype=torch.float32)
    if mode == "grid":
        row_weights = _grid_weights(boxes[:, 1], boxes[:, 3], height, mask_height)
        col_weights = _grid_weights(boxes[:, 0], boxes[:, 2], width, mask_width)
    else:
        int_boxes = _torchvision_boxes(boxes, mask_width)
        row_weights = _interpolate_weights(int_boxes[:, 1], int_boxes[:, 3], height, mask_height + 2)[..., 1:-1]
        col_weights = _interpolate_weights(int_boxes[:, 0], int_boxes[:, 2], width, mask_width + 2)[..., 1:-1]
    resized_cols = torch.bmm(masks, col_weights.transpose(1, 2))  # (N, Mh, W)
    probabilities = torch.bmm(row_weights, resized_cols)  # (N, H, W)
    return probabilities if threshold < 0 else probabilities >= threshold


def _paste_full_images(
    masks: torch.Tensor, row_weights: torch.Tensor, col_weights: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Two batched matmuls over whole images, in chunks that bound the float32 intermediate."""
    num_masks, height, width = masks.shape[0], row_weights.shape[1], col_weights.shape[1]
    out_dtype = torch.bool if threshold >= 0 else torch.float32
    pasted = torch.empty(num_masks, height, width, dtype=out_dtype, device=masks.device)
    chunk = num_masks if threshold < 0 else max(1, _CHUNK_ELEMENTS // max(height * width, 1))
    for start in range(0, num_masks, chunk):
        part = slice(start, start + chunk)
        resized_cols = torch.bmm(masks[part], col_weights[part].transpose(1, 2))  # (n, Mh, W)
        probabilities = torch.bmm(row_weights[part], resized_cols)  # (n, H, W)
        pasted[part] = probabilities if threshold < 0 else probabilities >= threshold
    return pasted


def _nonzero_extent(weights: torch.Tensor) -> torch.Tensor:
    """(N, 2) [first, last + 1) of the rows of weights (N, L, M) that are not all zero; [0, 0) if none."""
    touched = (weights != 0).any(dim=2)  # (N, L)
    length = touched.shape[1]
    first = touched.to(torch.uint8).argmax(dim=1)
    end = length - touched.flip(1).to(torch.uint8).argmax(dim=1)
    any_touched = touched.any(dim=1)
    return torch.stack([torch.where(any_touched, first, 0), torch.where(any_touched, end, 0)], dim=1)


def _paste_within_boxes(
    masks: torch.Tensor, row_weights: torch.Tensor, col_weights: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Per mask, the two matmuls restricted to the rows and columns its weights reach; zeros elsewhere."""
    num_masks, height, width = masks.shape[0], row_weights.shape[1], col_weights.shape[1]
    out_dtype = torch.bool if threshold >= 0 else torch.float32
    pasted = torch.zeros(num_masks, height, width, dtype=out_dtype, device=masks.device)
    row_extents = _nonzero_extent(row_weights).tolist()
    col_extents = _nonzero_extent(col_weights).tolist()
    for index, ((y0, y1), (x0, x1)) in enumerate(zip(row_extents, col_extents)):
        if y1 <= y0 or x1 <= x0:
            continue
        resized_cols = masks[index] @ col_weights[index, x0:x1].t()  # (Mh, w)
        probabilities = row_weights[index, y0:y1] @ resized_cols  # (h, w)
        pasted[index, y0:y1, x0:x1] = probabilities if threshold < 0 else probabilities >= threshold
    return pasted
