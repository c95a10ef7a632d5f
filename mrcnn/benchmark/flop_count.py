"""FLOPs of one detector forward, counted by fvcore on a traced call."""

import copy
import warnings
from typing import Callable

import torch
from torch import nn

__all__ = ["count_gflops"]


class _TensorOutputs(nn.Module):
    """A detector as a function of one image tensor returning a tuple of tensors, for tracing."""

    def __init__(self, model: nn.Module, call: Callable[[nn.Module, torch.Tensor], tuple]):
        super().__init__()
        self.model = model
        self.call = call

    def forward(self, image: torch.Tensor) -> tuple:
        return self.call(self.model, image)


def count_gflops(model: nn.Module, call: Callable[[nn.Module, torch.Tensor], tuple], image: torch.Tensor) -> float:
    """fvcore's FLOP count of one forward (fvcore counts one multiply-add as one flop), in GFLOP
    of two operations per multiply-add, the unit of the matmul rate.

    Counted on a CPU copy when ``image`` is elsewhere: the count does not depend on the device,
    and torchvision's detectors cannot be traced on CUDA (their traced mask pasting mixes devices).
    """
    # imported here: fvcore.nn scripts functions when imported, which warns on recent torch
    from fvcore.nn import FlopCountAnalysis

    if image.device.type != "cpu":
        model, image = copy.deepcopy(model).cpu(), image.cpu()

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about data-dependent control flow
        analysis = FlopCountAnalysis(_TensorOutputs(model, call), (image,))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return 2 * analysis.total() / 1e9
