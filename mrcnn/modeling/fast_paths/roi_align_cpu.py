"""RoIAlign on the CPU: the forward split over threads, and a gradient that is 3x faster.

torchvision's CPU kernel runs on one core, and its gradient recomputes the sampling geometry for
every channel and output element. Both functions here compute what torchvision's do: the
threaded forward is bit-identical (each RoI goes through the same kernel), the gradient equal to
float rounding. The fast ROIAlign of this package uses them.
"""

import math
import threading
from typing import List, Tuple

import torch
from torchvision.ops import roi_align

__all__ = ["roi_align_cpu"]

# Fewer RoIs than this per thread are not worth a thread start.
_MIN_ROIS_PER_THREAD = 32
# Elements of the RoI gradient windows computed at once in the CPU backward (16 MB in float32).
_GRAD_WINDOW_ELEMENTS = 4 * 1024 * 1024


def _roi_align_in_threads(input: torch.Tensor, rois: torch.Tensor, num_threads: int, *args) -> torch.Tensor:
    """torchvision's roi_align over ``num_threads`` slices of the RoIs at once, concatenated.

    Its CPU kernel runs on one core and releases the GIL, so Python threads use the others; every
    RoI is computed by the same kernel as in one call, so the result is bit-identical.
    """
    chunks = rois.chunk(num_threads)
    results: List[torch.Tensor] = [None] * len(chunks)
    errors: List[BaseException] = []

    def work(index: int) -> None:
        try:
            with torch.no_grad():
                results[index] = roi_align(input, chunks[index], *args)
        except BaseException as error:  # re-raised in the calling thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(1, len(chunks))]
    for thread in threads:
        thread.start()
    work(0)
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return torch.cat(results)


def _roi_align_cpu(input: torch.Tensor, rois: torch.Tensor, *args) -> torch.Tensor:
    """roi_align without autograd, split over the CPU threads when there are RoIs enough."""
    num_threads = min(torch.get_num_threads(), rois.shape[0] // _MIN_ROIS_PER_THREAD)
    if num_threads > 1:
        return _roi_align_in_threads(input, rois, num_threads, *args)
    return roi_align(input, rois, *args)


def _bilinear_weights_1d(
    start: torch.Tensor,
    bin_size: torch.Tensor,
    num_bins: int,
    grid: int,
    size: int,
    window_start: torch.Tensor,
    window: int,
) -> torch.Tensor:
    """(R, num_bins, window) weights of each feature row (or column) in each bin, per RoI.

    A bin's value is the mean over ``grid`` samples (along this axis) of bilinear interpolations;
    the interpolation weights along y and x multiply, so a RoI's pooled output is
    ``Wy @ feature_window @ Wx^T`` per channel. Rows are counted from ``window_start``.
    Follows torchvision's kernel: samples beyond one pixel outside the map contribute nothing,
    samples just outside are clamped to the border.
    """
    num_rois = start.shape[0]
    offsets = (
        torch.arange(num_bins, dtype=start.dtype, device=start.device)[:, None]
        + (torch.arange(grid, dtype=start.dtype, device=start.device)[None, :] + 0.5) / grid
    )
    coords = start[:, None, None] + offsets[None] * bin_size[:, None, None]  # (R, num_bins, grid)
    valid = (coords >= -1.0) & (coords <= size)
    coords = coords.clamp(min=0)
    low = coords.floor().long()
    at_border = low >= size - 1
    low = torch.where(at_border, torch.full_like(low, size - 1), low)
    high = torch.where(at_border, low, low + 1)
    frac = torch.where(at_border, torch.zeros_like(coords), coords - low.to(coords.dtype))
    scale = valid.to(coords.dtype) / grid
    index = torch.cat([low, high], dim=2) - window_start[:, None, None]
    values = torch.cat([(1 - frac) * scale, frac * scale], dim=2)
    weights = coords.new_zeros(num_rois, num_bins, window)
    return weights.scatter_add_(2, index.clamp(0, window - 1), values)


def _add_roi_windows(
    grad_input: torch.Tensor,
    grad: torch.Tensor,
    image_index: torch.Tensor,
    start_y: torch.Tensor,
    roi_h: torch.Tensor,
    start_x: torch.Tensor,
    roi_w: torch.Tensor,
    grid: Tuple[int, int],
    map_size: Tuple[int, int],
    window: Tuple[int, int],
) -> None:
    """Adds R RoIs' gradient windows into grad_input (N*H*W, C).

    grad (R, ph, pw, C) channels last; every RoI samples ``grid`` points per bin and touches at
    most a ``window`` of rows and columns of the (H, W) map.
    """
    num, pooled_h, pooled_w, channels = grad.shape
    height, width = map_size
    window_h, window_w = window
    # Rows (columns) one RoI touches: from the floor of its lower edge to one past its upper.
    y0 = torch.minimum(start_y, start_y + roi_h).clamp(min=0).floor().clamp(max=height - window_h).long()
    x0 = torch.minimum(start_x, start_x + roi_w).clamp(min=0).floor().clamp(max=width - window_w).long()
    weights_y = _bilinear_weights_1d(start_y, roi_h / pooled_h, pooled_h, grid[0], height, y0, window_h)
    weights_x = _bilinear_weights_1d(start_x, roi_w / pooled_w, pooled_w, grid[1], width, x0, window_w)
    # Wy^T @ grad @ Wx per RoI and channel as two batched matmuls, channels last throughout:
    # (R, ph, pw, C) -> (R, window_h, pw, C) -> (R, window_w, window_h, C).
    rows_grad = weights_y.transpose(1, 2) @ grad.reshape(num, pooled_h, pooled_w * channels)
    rows_grad = rows_grad.view(num, window_h, pooled_w, channels).transpose(1, 2)
    windows = weights_x.transpose(1, 2) @ rows_grad.reshape(num, pooled_w, window_h * channels)
    rows = (y0[:, None] + torch.arange(window_h)[None]) * width  # (R, window_h)
    cols = x0[:, None] + torch.arange(window_w)[None]  # (R, window_w)
    image = image_index * (height * width)
    index = (image[:, None, None] + cols[:, :, None] + rows[:, None, :]).reshape(-1)
    grad_input.index_add_(0, index, windows.view(-1, channels))


def _roi_align_grad_cpu(
    grad_output: torch.Tensor,
    rois: torch.Tensor,
    input_shape: Tuple[int, int, int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    """Gradient of roi_align w.r.t. its (N, C, H, W) input, from grad_output (K, C, ph, pw).

    torchvision's CPU kernel recomputes the sampling geometry for every channel and output
    element on one core; here the geometry is computed once per RoI as two small matrices and
    each RoI's gradient window is ``Wy^T @ grad @ Wx`` (batched matmuls), added into the map
    with one index_add_. RoIs are grouped by their number of samples per bin.
    """
    num_images, channels, height, width = input_shape
    grad_input = grad_output.new_zeros(num_images * height * width, channels)
    if rois.shape[0] == 0:
        return grad_input.view(num_images, height, width, channels).permute(0, 3, 1, 2)
    pooled_h, pooled_w = grad_output.shape[2:]
    grad_channels_last = grad_output.permute(0, 2, 3, 1).contiguous()
    offset = 0.5 if aligned else 0.0
    boxes = rois[:, 1:].to(grad_output.dtype) * spatial_scale - offset
    start_x, start_y = boxes[:, 0], boxes[:, 1]
    roi_w, roi_h = boxes[:, 2] - start_x, boxes[:, 3] - start_y
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    if sampling_ratio > 0:
        grid_h = torch.full_like(roi_h, sampling_ratio, dtype=torch.long)
        grid_w = torch.full_like(roi_w, sampling_ratio, dtype=torch.long)
    else:
        grid_h = torch.ceil(roi_h / pooled_h).long()
        grid_w = torch.ceil(roi_w / pooled_w).long()
    groups = grid_h * (int(grid_w.max()) + 1) + grid_w
    for key in groups.unique().tolist():
        members = (groups == key).nonzero().squeeze(1)
        gh, gw = int(grid_h[members[0]]), int(grid_w[members[0]])
        if gh <= 0 or gw <= 0:
            continue  # no samples: the output is zero whatever the input
        window_h = min(height, int(math.ceil(float(roi_h[members].abs().max()))) + 2)
        window_w = min(width, int(math.ceil(float(roi_w[members].abs().max()))) + 2)
        # RoIs a chunk, so that the temporary windows stay small next to the map itself.
        chunk = max(1, _GRAD_WINDOW_ELEMENTS // (window_h * window_w * channels))
        for chunk_members in members.split(chunk):
            _add_roi_windows(
                grad_input,
                grad_channels_last[chunk_members],
                rois[chunk_members, 0].long(),
                start_y[chunk_members],
                roi_h[chunk_members],
                start_x[chunk_members],
                roi_w[chunk_members],
                (gh, gw),
                (height, width),
                (window_h, window_w),
            )
    return grad_input.view(num_images, height, width, channels).permute(0, 3, 1, 2)


class _ROIAlignCPUFunction(torch.autograd.Function):
    """torchvision's roi_align forward; the gradient from `_roi_align_grad_cpu`, (N, C, H, W)
    with channels-last strides."""

    @staticmethod
    def forward(ctx, input, rois, output_size, spatial_scale, sampling_ratio, aligned):
        ctx.save_for_backward(rois)
        ctx.input_shape = tuple(input.shape)
        ctx.args = (spatial_scale, sampling_ratio, aligned)
        return _roi_align_cpu(input, rois, output_size, spatial_scale, sampling_ratio, aligned)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        (rois,) = ctx.saved_tensors
        compute_dtype = torch.promote_types(grad_output.dtype, torch.float32)
        grad = _roi_align_grad_cpu(grad_output.to(compute_dtype), rois, ctx.input_shape, *ctx.args)
        # Channels-last strides whatever the input's: a copy to NCHW would double the largest
        # tensor of the backward pass, and on the CPU the features it flows into are NHWC.
        return grad.to(grad_output.dtype), None, None, None, None, None


def roi_align_cpu(
    input: torch.Tensor,
    rois: torch.Tensor,
    output_size: Tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    """torchvision's roi_align of input (N, C, H, W) at rois (K, 5) -> (K, C, *output_size), on the
    CPU threads, with the fast gradient when ``input`` needs one."""
    # torchvision's kernel copies a non-contiguous input at every call, in every thread
    input = input.contiguous()
    args = (output_size, spatial_scale, sampling_ratio, aligned)
    if torch.is_grad_enabled() and input.requires_grad:
        return _ROIAlignCPUFunction.apply(input, rois, *args)
    return _roi_align_cpu(input, rois, *args)
