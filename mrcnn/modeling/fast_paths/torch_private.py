"""The private torch calls the fast paths rely on, in one place, checked against the running torch.

oneDNN's fused convolutions (``torch.ops.mkldnn._convolution_pointwise`` and its ``binary`` and
transposed forms), its weight reorder (``torch._C._nn.mkldnn_reorder_conv2d_weight``) and a
tensor's in-place version counter (``Tensor._version``) are not public API: a torch release may
rename them or change their arguments. Nothing else in mrcnn calls them. `private_api_problem()`
runs each once on a small input against the public op it replaces and says what no longer
matches; the fast paths call it once per torch version and, where it finds a problem, warn and
use the public ops instead. tests/modeling/test_modeling_fast_paths_torch_private.py fails on
such a torch release, naming the call.
"""

import functools
import warnings
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "MIN_TORCH_VERSION",
    "conv_add_pointwise",
    "conv_pointwise",
    "conv_transpose_pointwise",
    "onednn_fusion_available",
    "private_api_problem",
    "reorder_conv_weight",
    "tensor_version",
]

# The oldest torch whose private signatures below were checked (the package requires it too).
MIN_TORCH_VERSION = (2, 4)


def tensor_version(tensor: torch.Tensor) -> int:
    """How many times ``tensor`` was written in place; raises RuntimeError for inference tensors."""
    return tensor._version


def conv_pointwise(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    padding: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    relu: bool,
) -> torch.Tensor:
    """conv2d(x) followed by an optional ReLU in one oneDNN call; x (N, C, H, W) float32 on the CPU."""
    return torch.ops.mkldnn._convolution_pointwise(
        x, weight, bias, list(padding), list(stride), list(dilation), groups, "relu" if relu else "none", [], ""
    )


def conv_add_pointwise(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    padding: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    relu: bool,
) -> torch.Tensor:
    """conv2d(x) + residual, then an optional ReLU, in one oneDNN call (residual has the output's shape)."""
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x,
        residual,
        weight,
        bias,
        list(padding),
        list(stride),
        list(dilation),
        groups,
        "add",
        None,
        "relu" if relu else None,
        [],
        "",
    )


def conv_transpose_pointwise(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    padding: Sequence[int],
    output_padding: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> torch.Tensor:
    """ReLU(conv_transpose2d(x)) in one oneDNN call."""
    return torch.ops.mkldnn._convolution_transpose_pointwise(
        x, weight, bias, list(padding), list(output_padding), list(stride), list(dilation), groups, "relu", [], ""
    )


def reorder_conv_weight(
    weight: torch.Tensor,
    padding: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    input_size: Sequence[int],
) -> torch.Tensor:
    """``weight`` (C_out, C_in / groups, kh, kw) in oneDNN's blocked layout for inputs of ``input_size``:
    what the fused kernels read, so that they do not reorder the weight at every call."""
    return torch._C._nn.mkldnn_reorder_conv2d_weight(
        weight.detach().to_mkldnn(), list(padding), list(stride), list(dilation), groups, list(input_size)
    )


def _torch_version() -> tuple:
    parts = []
    for piece in torch.__version__.split("+")[0].split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def private_api_problem() -> Optional[str]:
    """None when every private call above exists and computes what its public equivalent computes
    on this torch; otherwise a sentence naming the first call that does not."""
    # the first fast forward may run under inference_mode, whose tensors have no version counter
    with torch.inference_mode(False), torch.no_grad():
        return _first_private_api_problem()


def _first_private_api_problem() -> Optional[str]:
    if _torch_version() < MIN_TORCH_VERSION:
        return (
            f"torch {torch.__version__} is older than {MIN_TORCH_VERSION}, the oldest the private calls were checked on"
        )
    try:
        tensor_version(torch.zeros(1))
    except (AttributeError, RuntimeError) as error:
        return f"Tensor._version is unusable on torch {torch.__version__}: {error}"
    if not torch.backends.mkldnn.is_available():
        return "torch was built without oneDNN (torch.backends.mkldnn.is_available() is False)"
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 6, 5, generator=generator)
    weight = torch.randn(6, 2, 3, 3, generator=generator)
    bias = torch.randn(6, generator=generator)
    residual = torch.randn(1, 6, 6, 5, generator=generator)
    geometry = ([1, 1], [1, 1], [1, 1], 2)
    expected = F.conv2d(x, weight, bias, 1, 1, 1, 2)
    deconv_weight = torch.randn(4, 3, 2, 2, generator=generator)
    deconv_bias = torch.randn(3, generator=generator)
    checks: List[tuple] = [
        (
            "torch.ops.mkldnn._convolution_pointwise",
            lambda: conv_pointwise(x, weight, bias, *geometry, relu=True),
            lambda: F.relu(expected),
        ),
        (
            "torch.ops.mkldnn._convolution_pointwise.binary",
            lambda: conv_add_pointwise(x, residual, weight, bias, *geometry, relu=True),
            lambda: F.relu(expected + residual),
        ),
        (
            "torch._C._nn.mkldnn_reorder_conv2d_weight (with _convolution_pointwise)",
            lambda: conv_pointwise(x, reorder_conv_weight(weight, *geometry, x.shape), bias, *geometry, relu=False),
            lambda: expected,
        ),
        (
            "torch.ops.mkldnn._convolution_transpose_pointwise",
            lambda: conv_transpose_pointwise(x, deconv_weight, deconv_bias, [0, 0], [0, 0], [2, 2], [1, 1], 1),
            lambda: F.relu(F.conv_transpose2d(x, deconv_weight, deconv_bias, stride=2)),
        ),
    ]
    for name, private, public in checks:
        try:
            got = private()
        except Exception as error:  # any failure means the call changed under us
            return f"{name} fails on torch {torch.__version__}: {type(error).__name__}: {error}"
        if got.shape != public().shape or not torch.allclose(got, public(), atol=1e-4, rtol=1e-4):
            return f"{name} no longer computes what its public equivalent does on torch {torch.__version__}"
    return None


@functools.cache
def _checked_for(version: str) -> bool:
    problem = private_api_problem()
    if problem is not None:
        warnings.warn(
            f"mrcnn fast paths: {problem}; using the public torch ops instead (same results, slower).", stacklevel=2
        )
    return problem is None


def onednn_fusion_available() -> bool:
    """Whether the fused oneDNN calls can be used here: checked once per torch version, and the
    oneDNN backend enabled now (``torch.backends.mkldnn.enabled``)."""
    return torch.backends.mkldnn.enabled and _checked_for(torch.__version__)
