"""RoIAlign on the CPU: the forward split over threads, and a gradient that is 3x faster.

torchvision's CPU kernel runs on one core, and its gradient recomputes the sampling geometry for
every channel and output element. Both functions here compute what torchvision's do: the
threaded forward is bit-identical (each RoI goes through the same kernel), the gradient equal to
float rounding. The fast ROIAlign of this package uses them.
"""

import threading
from typing import List, Tuple

import torch
from torchvision.ops import roi_align

__all__ = ["roi_align_cpu"]

# Fewer RoIs than this per thread are not worth a thread start.
_MIN_ROIS_PER_THREAD = 32
# Elements of the RoI gradient windows computed at once in the CPU backward (64 MB in float32).
_GRAD_WINDOW_ELEMENTS = 16 * 1024 * 1024
# RoIs share a chunk while their windows padded to the chunk's window stay within this factor
# of their own, and their heights within one bucket of rows when sorted.
_MAX_PADDING = 1.5
_SPAN_BUCKET = 4


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
    grid: torch.Tensor,
    max_grid: int,
    size: int,
    window_start: torch.Tensor,
    window: int,
) -> torch.Tensor:
    """(R, num_bins, window) weights of each feature row (or column) in each bin, per RoI.

    A bin's value is the mean over ``grid[r]`` samples (along this axis) of bilinear
    interpolations; the interpolation weights along y and x multiply, so a RoI's pooled output is
    ``Wy @ feature_window @ Wx^T`` per channel. ``grid`` (R,) may differ between RoIs: every RoI
    gets ``max_grid`` sample slots and those beyond its own count weigh nothing. Rows are counted
    from ``window_start`` (R,). Follows torchvision's kernel: samples beyond one pixel outside the
    map contribute nothing, samples just outside are clamped to the border.
    """
    dtype, device = start.dtype, start.device
    slots = torch.arange(max_grid, dtype=dtype, device=device)
    samples = grid.to(dtype).clamp(min=1).view(-1, 1, 1)  # (R, 1, 1)
    offsets = torch.arange(num_bins, dtype=dtype, device=device).view(1, -1, 1) + (slots + 0.5) / samples
    coords = start.view(-1, 1, 1) + offsets * bin_size.view(-1, 1, 1)  # (R, num_bins, max_grid)
    weight = ((coords >= -1.0) & (coords <= size) & (slots < grid.view(-1, 1, 1))).to(dtype) / samples
    # torchvision moves a sample below 0 to 0 and one at or past the last row onto the last row;
    # its two interpolation weights are then the "tent" 1 - |y - row| of the rows around it
    rows = window_start.view(-1, 1, 1, 1) + torch.arange(window, device=device)  # (R, 1, 1, window)
    tents = (1 - (coords.clamp(0, size - 1).unsqueeze(3) - rows).abs()).clamp_(min=0)
    return torch.matmul(weight.unsqueeze(2), tents).squeeze(2)  # (R, num_bins, window)


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
    element on one core; here the geometry of all RoIs is computed at once as two small matrices
    per RoI, each RoI's gradient window is ``Wy^T @ grad @ Wx`` (batched matmuls over chunks of
    RoIs of similar size) and the windows are added into the map with one index_add_ per chunk.
    """
    num_images, channels, height, width = input_shape
    grad_input = grad_output.new_zeros(num_images * height * width, channels)
    if rois.shape[0] == 0:
        return grad_input.view(num_images, height, width, channels).permute(0, 3, 1, 2)
    num_rois, _, pooled_h, pooled_w = grad_output.shape
    offset = 0.5 if aligned else 0.0
    boxes = rois[:, 1:].to(grad_output.dtype) * spatial_scale - offset
    start_x, start_y = boxes[:, 0], boxes[:, 1]
    roi_w, roi_h = boxes[:, 2] - start_x, boxes[:, 3] - start_y
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    if sampling_ratio > 0:
        grid_h = grid_w = torch.full_like(roi_h, sampling_ratio, dtype=torch.long)
    else:
        grid_h = torch.ceil(roi_h / pooled_h).long()
        grid_w = torch.ceil(roi_w / pooled_w).long()
    # Rows (columns) one RoI touches: from the floor of its lower edge to one past its upper.
    # RoIs are taken in order of their window's height (in buckets), then width, in chunks whose
    # window is their largest member's, so that a small RoI is not padded to the call's largest.
    spans_h = (roi_h.abs().ceil().long() + 2).clamp(max=height)
    spans_w = (roi_w.abs().ceil().long() + 2).clamp(max=width)
    order = torch.argsort((spans_h // _SPAN_BUCKET) * (width + 1) + spans_w, stable=True)
    grid_h, grid_w, spans_h, spans_w = grid_h[order], grid_w[order], spans_h[order], spans_w[order]
    start_y, start_x, roi_h, roi_w = start_y[order], start_x[order], roi_h[order], roi_w[order]
    # the sizes the host needs, read in one go
    host = torch.cat([grid_h.max()[None], grid_w.max()[None], spans_h, spans_w]).tolist()
    max_grid_h, max_grid_w, host_h, host_w = host[0], host[1], host[2 : 2 + num_rois], host[2 + num_rois :]
    if max_grid_h <= 0 or max_grid_w <= 0:
        return grad_input.view(num_images, height, width, channels).permute(0, 3, 1, 2)  # no samples at all
    max_h, max_w = max(host_h), max(host_w)
    y0 = torch.minimum(start_y, start_y + roi_h).clamp(min=0).floor().long().minimum(height - spans_h)
    x0 = torch.minimum(start_x, start_x + roi_w).clamp(min=0).floor().long().minimum(width - spans_w)
    weights_y = _bilinear_weights_1d(start_y, roi_h / pooled_h, pooled_h, grid_h, max_grid_h, height, y0, max_h)
    weights_x = _bilinear_weights_1d(start_x, roi_w / pooled_w, pooled_w, grid_w, max_grid_w, width, x0, max_w)
    grad = grad_output[order].permute(0, 2, 3, 1).contiguous()  # (R, ph, pw, C)
    # map row of every window element (x, y) of every RoI, (R, max_w, max_h); a window's rows and
    # columns past the map's edge have zero weight and are clamped to stay inside
    rows = (y0[:, None] + torch.arange(max_h)).clamp_(max=height - 1) + rois[order, 0, None].long() * height
    cols = (x0[:, None] + torch.arange(max_w)).clamp_(max=width - 1)
    map_index = rows[:, None, :] * width + cols[:, :, None]
    # chunks of RoIs: each grows while its windows, padded to its largest member's, stay within
    # the memory budget and near the members' own size
    chunks: List[Tuple[int, int, int]] = []  # (count, window_h, window_w)
    first = 0
    while first < num_rois:
        last, window_h, window_w = first + 1, host_h[first], host_w[first]
        area = window_h * window_w  # of the members' own windows
        while last < num_rois:
            grown_h, grown_w = max(window_h, host_h[last]), max(window_w, host_w[last])
            grown_area = area + host_h[last] * host_w[last]
            padded = (last + 1 - first) * grown_h * grown_w
            if padded * channels > _GRAD_WINDOW_ELEMENTS or padded > _MAX_PADDING * grown_area:
                break
            last, window_h, window_w, area = last + 1, grown_h, grown_w, grown_area
        chunks.append((last - first, window_h, window_w))
        first = last
    counts = [count for count, _, _ in chunks]
    parts = zip(chunks, weights_y.split(counts), weights_x.split(counts), grad.split(counts), map_index.split(counts))
    for (_, window_h, window_w), part_y, part_x, part_grad, part_index in parts:
        # Wy^T @ grad @ Wx of each RoI and channel, channels last: (n, window_w, window_h, C)
        rows_grad = torch.einsum("nhy,nhwc->nwyc", part_y[..., :window_h], part_grad)
        windows = torch.einsum("nwyc,nwx->nxyc", rows_grad, part_x[..., :window_w])
        grad_input.index_add_(0, part_index[:, :window_w, :window_h].reshape(-1), windows.reshape(-1, channels))
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
        dtype = grad_output.dtype
        # named for profilers: one kernel's work, dispatched as many small operators
        with torch.profiler.record_function("mrcnn::roi_align_backward_cpu"):
            if dtype in (torch.float16, torch.bfloat16):  # accumulated in float32
                grad = _roi_align_grad_cpu(grad_output.float(), rois, ctx.input_shape, *ctx.args).to(dtype)
            else:
                grad = _roi_align_grad_cpu(grad_output, rois, ctx.input_shape, *ctx.args)
        # Channels-last strides whatever the input's: a copy to NCHW would double the largest
        # tensor of the backward pass, and on the CPU the features it flows into are NHWC.
        return grad, None, None, None, None, None


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
    if not input.is_contiguous():
        input = input.contiguous()
    args = (output_size, spatial_scale, sampling_ratio, aligned)
    if torch.is_grad_enabled() and input.requires_grad:
        return _ROIAlignCPUFunction.apply(input, rois, *args)
    return _roi_align_cpu(input, rois, *args)
