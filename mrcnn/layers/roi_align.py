"""ROIAlign module over torchvision.ops.roi_align."""
import threading
from typing import List, Tuple, Union

import torch
from torch import nn
from torchvision.ops import roi_align

# Fewer RoIs than this per thread are not worth a thread start.
_MIN_ROIS_PER_THREAD = 32


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


class ROIAlign(nn.Module):
    """Bilinear RoI pooling of (K, 5) rois [batch_index, x0, y0, x1, y1] into (K, C, *output_size).

    `aligned=True` shifts box coordinates by -0.5 so a box's corners land on pixel
    corners, which is what Mask R-CNN needs for pixel-accurate masks.
    """

    def __init__(
        self,
        output_size: Union[int, Tuple[int, int]],
        spatial_scale: float,
        sampling_ratio: int,
        aligned: bool = True,
    ):
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """input (N, C, H, W), rois (K, 5) -> (K, C, out_h, out_w)."""
        if rois.dim() != 2 or rois.size(1) != 5:
            raise ValueError(f"ROIAlign expects rois of shape (K, 5), got {tuple(rois.shape)}")
        rois = rois.to(dtype=input.dtype)
        args = (self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)
        num_threads = min(torch.get_num_threads(), rois.shape[0] // _MIN_ROIS_PER_THREAD)
        if (
            input.device.type == "cpu"
            and num_threads > 1
            and not torch.is_grad_enabled()
            and not torch.jit.is_tracing()  # a trace records the calling thread only
        ):
            return _roi_align_in_threads(input, rois, num_threads, *args)
        return roi_align(input, rois, *args)

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )
