"""Convolution, frozen norm, residual add and ReLU as one oneDNN call in CPU inference.

In inference a frozen (or eval-mode) batch norm is a per-channel affine map, so it folds into
the convolution's weight and bias; the ReLU and a residual add can then run inside the
convolution kernel as oneDNN post-ops, while the output is still in cache. On a ResNet-FPN at
800 px this removes a full pass over a large activation for every norm, ReLU and residual add.

The fused path is taken only where it cannot change what autograd or tracing sees: float32 CPU
tensors, no gradient needed, no autocast, not tracing or scripting. Everywhere else the same
functions run as separate ops (with the norm still folded, see ``Conv2d``).

Without gradients, the folded weights (and their copy in oneDNN's blocked layout, which saves a
reorder of every weight at every call) are cached per conv, and recomputed when a parameter
or buffer is modified in place (load_state_dict, optimizer steps) or replaced (``.to()``); the
cache is dropped at the next forward with gradients. Writes through ``.data`` bypass the version
counters and need ``clear_folded_weights(model)``.
"""
import weakref
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .batch_norm import clear_frozen_affine, is_affine_norm, norm_as_affine
from .tensor_versions import version_key

__all__ = [
    "clear_folded_weights",
    "conv_add_relu",
    "conv_relu",
    "conv_transpose_relu",
    "folded_weight_and_bias",
    "is_relu",
]

_RELU_FUNCTIONS = (F.relu, F.relu_, torch.relu, torch.relu_)

# Per-conv cache of folded / packed weights, outside the modules so that deepcopy, pickling and
# state_dict never see it (packed oneDNN tensors cannot be copied or serialised).
_CACHES: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def is_relu(activation) -> bool:
    """Whether ``activation`` (a module or a function) is a plain ReLU."""
    return isinstance(activation, nn.ReLU) or activation in _RELU_FUNCTIONS


def _cache_key(conv: nn.Module) -> Optional[tuple]:
    """None when caching is off: gradients enabled (training), tracing (the trace must record the
    folding), or tensors without version counters."""
    if torch.jit.is_tracing():
        return None
    if torch.is_grad_enabled():
        # a cache from an earlier evaluation would be stale after the next optimizer step
        _CACHES.pop(conv, None)
        return None
    return version_key(conv)


def _cached(conv: nn.Module, key: Optional[tuple], name: str, compute):
    if key is None:
        return compute()
    cache = _CACHES.get(conv)
    if cache is None or cache["key"] != key:
        cache = {"key": key}
        _CACHES[conv] = cache
    if name not in cache:
        cache[name] = compute()
    return cache[name]


def _fold(conv: nn.Conv2d) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    norm = getattr(conv, "norm", None)
    affine = norm_as_affine(norm) if norm is not None else None
    if affine is None:
        return conv.weight, conv.bias
    scale, shift = affine
    weight = conv.weight * scale.to(conv.weight.dtype).reshape(-1, 1, 1, 1)
    bias = shift if conv.bias is None else conv.bias * scale + shift
    return weight, bias.to(conv.weight.dtype)


def folded_weight_and_bias(conv: nn.Conv2d) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """conv's weight and bias with its norm folded in (when the norm is an affine map).

    weight: (C_out, C_in / groups, kh, kw); bias (C_out,) or None. Differentiable when computed
    with gradients enabled; cached per conv when not.
    """
    norm = getattr(conv, "norm", None)
    if norm is None or not is_affine_norm(norm):
        return conv.weight, conv.bias
    return _cached(conv, _cache_key(conv), "folded", lambda: _fold(conv))


def _onednn_weight_and_bias(conv: nn.Conv2d, x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Folded weight in oneDNN's blocked layout (reordered once, not at every call) and bias.

    Only the blocked copy is cached: it is all the fused kernel reads.
    """
    key = _cache_key(conv)
    if key is None:
        return _fold(conv)

    def pack() -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        weight, bias = _fold(conv)
        packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
            weight.detach().to_mkldnn(), list(conv.padding), list(conv.stride), list(conv.dilation),
            conv.groups, list(x.shape),
        )
        return packed, bias

    return _cached(conv, key, "packed", pack)


def folded_conv_for_training(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """norm(conv(x)) with the norm folded into the weight, for a forward that records gradients.

    Autograd would keep the folded weight alive for the backward pass: a second copy of every
    trainable weight. The saved-tensor hooks store the recipe instead (the parameter and the
    per-channel scale) and refold in the backward pass, so the memory equals an unfolded conv's.
    """
    _CACHES.pop(conv, None)  # stale after the next optimizer step
    scale, shift = norm_as_affine(conv.norm)
    scale = scale.to(conv.weight.dtype).reshape(-1, 1, 1, 1)
    folded = conv.weight * scale
    bias = shift if conv.bias is None else conv.bias * scale.reshape(-1) + shift
    bias = bias.to(conv.weight.dtype)
    if not folded.requires_grad:
        return conv._conv_forward(x, folded, bias)
    weight = conv.weight
    # autograd keeps the hooks until backward: they must not hold the folded tensor itself
    folded_identity = (folded.data_ptr(), folded.shape, folded.dtype)

    def pack(saved: torch.Tensor):
        if (saved.data_ptr(), saved.shape, saved.dtype) == folded_identity:
            return (_REFOLD, weight, scale)
        return saved

    def unpack(packed):
        if isinstance(packed, tuple) and packed[0] is _REFOLD:
            return packed[1] * packed[2]
        return packed

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        return conv._conv_forward(x, folded, bias)


_REFOLD = object()


def clear_folded_weights(module: nn.Module) -> None:
    """Drop the cached folded and packed weights of every conv in ``module``, and the cached
    scale and shift of its frozen norms."""
    for child in module.modules():
        _CACHES.pop(child, None)
    clear_frozen_affine(module)


def _onednn_usable(conv: nn.Conv2d, x: torch.Tensor, residual: Optional[torch.Tensor]) -> bool:
    """Whether the fused oneDNN kernel computes exactly what the separate ops would, here."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 4:
        return False
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return False
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.is_autocast_enabled("cpu"):
        return False
    if torch.is_grad_enabled() and (
        x.requires_grad
        or (residual is not None and residual.requires_grad)
        or any(p.requires_grad for p in conv.parameters())
    ):
        return False
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str) or conv.weight.dtype != torch.float32:
        return False
    if residual is not None and (residual.dtype != torch.float32 or residual.device != x.device):
        return False
    norm = getattr(conv, "norm", None)
    return norm is None or is_affine_norm(norm)


def _fused(conv: nn.Conv2d, x: torch.Tensor, residual: Optional[torch.Tensor], relu: bool) -> torch.Tensor:
    weight, bias = _onednn_weight_and_bias(conv, x)
    geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    if residual is None:
        return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, *geometry, "relu" if relu else "none", [], "")
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x, residual, weight, bias, *geometry, "add", None, "relu" if relu else None, [], ""
    )


def conv_relu(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """ReLU(conv(x)) for an mrcnn Conv2d without its own activation (its norm included)."""
    if getattr(conv, "activation", None) is None and _onednn_usable(conv, x, None):
        return _fused(conv, x, None, relu=True)
    return F.relu_(conv(x))


def conv_add_relu(conv: nn.Conv2d, x: torch.Tensor, residual: torch.Tensor, relu: bool = True) -> torch.Tensor:
    """ReLU(conv(x) + residual) (or without the ReLU) for a Conv2d without its own activation.

    residual must have conv(x)'s shape; the last convolution of a residual block, or an FPN
    lateral conv merged with the upsampled coarser level.
    """
    if getattr(conv, "activation", None) is None and _onednn_usable(conv, x, residual):
        return _fused(conv, x, residual.contiguous(memory_format=_memory_format(x)), relu)
    out = conv(x) + residual
    return F.relu_(out) if relu else out


def conv_forward(conv: nn.Conv2d, x: torch.Tensor) -> Optional[torch.Tensor]:
    """activation(norm(conv(x))) fused, or None where the fused kernel does not apply."""
    if torch.is_grad_enabled():
        _CACHES.pop(conv, None)  # training: a cache from an earlier evaluation would go stale
    activation = getattr(conv, "activation", None)
    if (activation is None or is_relu(activation)) and _onednn_usable(conv, x, None):
        return _fused(conv, x, None, relu=activation is not None)
    return None


def conv_transpose_relu(deconv: nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    """ReLU(deconv(x)), the transposed conv and the ReLU in one oneDNN call where it applies."""
    if _onednn_usable(deconv, x, None):
        return torch.ops.mkldnn._convolution_transpose_pointwise(
            x, deconv.weight, deconv.bias, list(deconv.padding), list(deconv.output_padding),
            list(deconv.stride), list(deconv.dilation), deconv.groups, "relu", [], "",
        )
    return F.relu(deconv(x))


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.is_contiguous():
        return torch.contiguous_format
    if x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format
