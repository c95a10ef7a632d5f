"""Small constant tensors the model indexes with (ranges, level ids), made once per device.

A tensor built from Python numbers inside a step costs a host-to-device copy and a few
dispatched operators every time; these are the same from step to step, so they are cached.
They are created outside inference mode, so that a training step may save them for backward
after an inference-mode call cached them. Callers must not modify them in place.
"""

import functools
from typing import Tuple

import torch

__all__ = ["cached_arange", "cached_tensor"]


@functools.lru_cache(maxsize=256)
def cached_tensor(values: Tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.tensor(values, dtype=dtype, device=device)``, made once."""
    with torch.inference_mode(False), torch.no_grad():
        return torch.tensor(values, dtype=dtype, device=device)


@functools.lru_cache(maxsize=256)
def cached_arange(start: int, end: int, device: torch.device) -> torch.Tensor:
    """``torch.arange(start, end)`` (int64), made once."""
    with torch.inference_mode(False), torch.no_grad():
        return torch.arange(start, end, device=device)
