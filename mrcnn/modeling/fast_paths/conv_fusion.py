"""Convolutions with their frozen norm folded in, and oneDNN kernels that add the ReLU and residual.

A frozen (or eval-mode) batch norm is a per-channel affine map, so it folds into the
convolution's weight and bias: the same function, one pass over the activations fewer, and no
extra activation kept for backward. In CPU float32 inference the folded conv, a ReLU and a
residual add can run as one oneDNN kernel while the output is still in cache; on a ResNet-FPN at
800 px that removes a full pass over a large activation for every norm, ReLU and residual add.

The oneDNN kernels run only where they compute what the separate ops would and no gradient is
needed; everywhere else the same functions run as separate ops (with the norm still folded).
Callers (the fast modules of this package) run these functions only while the fast paths are
active, so tracing and export never see them.

Without gradients, the folded weights (and their copy in oneDNN's blocked layout, which saves a
reorder of every weight at every call) are cached per conv, and recomputed when a parameter or
buffer is modified in place (load_state_dict, optimizer steps) or replaced (``.to()``); the
cache is dropped at the next forward with gradients. Writes through ``.data`` bypass the version
counters and need ``clear_fast_path_caches(model)``. The caches live here, outside the modules,
so that deepcopy, pickling and state_dict never see them (packed oneDNN tensors cannot be copied).
"""

import weakref
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mrcnn.layers import FrozenBatchNorm2d, is_affine_norm, norm_as_affine

from .torch_private import (
    conv_add_pointwise,
    conv_pointwise,
    conv_transpose_pointwise,
    onednn_fusion_available,
    reorder_conv_weight,
    tensor_version,
)

__all__ = [
    "clear_fast_path_caches",
    "conv_add_relu",
    "conv_norm_activation",
    "conv_relu",
    "conv_transpose_relu",
    "folded_weight_and_bias",
    "is_relu",
]

_RELU_FUNCTIONS = (F.relu, F.relu_, torch.relu, torch.relu_)

# conv -> {"key": version key, "folded": (weight, bias), "packed": (blocked weight, bias)}
_CONV_CACHES: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()
# FrozenBatchNorm2d -> (version key, scale, shift): frozen statistics do not change between
# training steps, and on a GPU each of the five small ops that compute them is a kernel launch.
_FROZEN_AFFINE: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


def is_relu(activation) -> bool:
    """Whether ``activation`` (a module or a function) is a plain ReLU."""
    return isinstance(activation, nn.ReLU) or activation in _RELU_FUNCTIONS


def _version_key(module: nn.Module) -> Optional[tuple]:
    """Identity and in-place version of every parameter and buffer of ``module``; None if untracked.

    The key changes when a tensor is replaced (``.to()``, assignment) or written in place
    (``copy_``, ``load_state_dict``, optimizer steps), not when written through ``.data``.
    """
    try:
        return tuple(
            (t.data_ptr(), tensor_version(t), t.dtype, t.device)
            for t in list(module.parameters()) + list(module.buffers())
        )
    except RuntimeError:  # inference-mode tensors carry no version counter
        return None


def _norm_affine(norm: nn.Module, dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
    """norm_as_affine(norm) as (scale (C, 1, 1, 1), shift (C,)) in ``dtype``, ready to fold into a
    conv weight; for a FrozenBatchNorm2d computed again only when a buffer changed (a frozen
    norm's statistics do not change between training steps, and each small op is a dispatch)."""
    frozen = isinstance(norm, FrozenBatchNorm2d)
    tensors = (norm.weight, norm.bias, norm.running_mean, norm.running_var) if frozen else ()
    key = _version_key(norm) if frozen and not any(t.requires_grad for t in tensors) else None
    if key is not None:
        key += (norm.eps, dtype)
        cached = _FROZEN_AFFINE.get(norm)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
    scale, shift = norm_as_affine(norm)
    if scale.dtype != dtype:
        scale, shift = scale.to(dtype), shift.to(dtype)
    scale = scale.reshape(-1, 1, 1, 1)
    if key is not None:
        _FROZEN_AFFINE[norm] = (key, scale, shift)
    return scale, shift


def _cache_key(conv: nn.Module) -> Optional[tuple]:
    """None when caching is off: a conv that trains (gradients enabled and a parameter requiring
    one) or tensors without version counters. A frozen conv (FREEZE_AT) keeps its folded, packed
    weight between training steps, as in inference."""
    if torch.is_grad_enabled() and any(p.requires_grad for p in conv.parameters()):
        # a cache from an earlier evaluation would be stale after the next optimizer step
        _CONV_CACHES.pop(conv, None)
        return None
    return _version_key(conv)


def _cached(conv: nn.Module, key: Optional[tuple], name: str, compute):
    if key is None:
        return compute()
    cache = _CONV_CACHES.get(conv)
    if cache is None or cache["key"] != key:
        cache = {"key": key}
        _CONV_CACHES[conv] = cache
    if name not in cache:
        cache[name] = compute()
    return cache[name]


def _fold_affine(conv: nn.Conv2d) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(folded weight, folded bias, the norm's scale (C_out, 1, 1, 1)) of a conv whose norm is affine."""
    scale, shift = _norm_affine(conv.norm, conv.weight.dtype)
    bias = shift if conv.bias is None else conv.bias * scale.view(-1) + shift
    return conv.weight * scale, bias, scale


def _fold(conv: nn.Conv2d) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    norm = getattr(conv, "norm", None)
    if norm is None or not is_affine_norm(norm):
        return conv.weight, conv.bias
    weight, bias, _ = _fold_affine(conv)
    return weight, bias


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
        packed = reorder_conv_weight(weight, conv.padding, conv.stride, conv.dilation, conv.groups, x.shape)
        return packed, bias

    return _cached(conv, key, "packed", pack)


_REFOLD = object()


def _folded_conv_for_training(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """norm(conv(x)) with the norm folded into the weight, for a forward that records gradients.

    Autograd would keep the folded weight alive for the backward pass: a second copy of every
    trainable weight. The saved-tensor hooks store the recipe instead (the parameter and the
    per-channel scale) and refold in the backward pass, so the memory equals an unfolded conv's.
    """
    if not any(p.requires_grad for p in conv.parameters()):
        # a frozen conv (FREEZE_AT) and norm: the folded weight is cached as in inference
        return conv._conv_forward(x, *folded_weight_and_bias(conv))
    _CONV_CACHES.pop(conv, None)  # an inference cache is stale after the next optimizer step
    folded, bias, scale = _fold_affine(conv)
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


def clear_fast_path_caches(module: nn.Module) -> None:
    """Drop the cached folded and packed weights of every conv in ``module``, and the cached scale
    and shift of its frozen norms (needed only after writing tensors through ``.data``)."""
    for child in module.modules():
        _CONV_CACHES.pop(child, None)
        _FROZEN_AFFINE.pop(child, None)


def _onednn_usable(conv: nn.Module, x: torch.Tensor, residual: Optional[torch.Tensor]) -> bool:
    """Whether the fused oneDNN kernel computes exactly what the separate ops would, here."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 4:
        return False
    if torch.is_autocast_enabled("cpu") or not onednn_fusion_available():
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
    geometry = (conv.padding, conv.stride, conv.dilation, conv.groups)
    if residual is None:
        return conv_pointwise(x, weight, bias, *geometry, relu=relu)
    return conv_add_pointwise(x, residual, weight, bias, *geometry, relu=relu)


def conv_norm_activation(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """activation(norm(conv(x))) of an mrcnn Conv2d, its affine norm folded into the weights and,
    in CPU inference with a ReLU (or no) activation, all of it one oneDNN kernel."""
    activation = conv.activation
    norm = conv.norm
    if (activation is None or is_relu(activation)) and _onednn_usable(conv, x, None):
        return _fused(conv, x, None, relu=activation is not None)
    if norm is not None and is_affine_norm(norm):
        if torch.is_grad_enabled():
            x = _folded_conv_for_training(conv, x)
        else:
            x = conv._conv_forward(x, *folded_weight_and_bias(conv))
    else:
        x = conv._conv_forward(x, conv.weight, conv.bias)
        if norm is not None:
            x = norm(x)
    return activation(x) if activation is not None else x


def conv_relu(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """ReLU(conv(x)) for an mrcnn Conv2d without its own activation (its norm included)."""
    if conv.activation is None and _onednn_usable(conv, x, None):
        return _fused(conv, x, None, relu=True)
    return F.relu_(conv(x))


def conv_add_relu(conv: nn.Conv2d, x: torch.Tensor, residual: torch.Tensor, relu: bool = True) -> torch.Tensor:
    """ReLU(conv(x) + residual) (or without the ReLU) for an mrcnn Conv2d without its own activation.

    residual must have conv(x)'s shape: the last convolution of a residual block, or an FPN
    lateral conv merged with the upsampled coarser level.
    """
    if conv.activation is None and _onednn_usable(conv, x, residual):
        return _fused(conv, x, residual.contiguous(memory_format=_memory_format(x)), relu)
    out = conv(x) + residual
    return F.relu_(out) if relu else out


def conv_transpose_relu(deconv: nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    """ReLU(deconv(x)), the transposed conv and the ReLU in one oneDNN call where it applies."""
    if _onednn_usable(deconv, x, None):
        return conv_transpose_pointwise(
            x,
            deconv.weight,
            deconv.bias,
            deconv.padding,
            deconv.output_padding,
            deconv.stride,
            deconv.dilation,
            deconv.groups,
        )
    return F.relu(deconv(x))


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.is_contiguous():
        return torch.contiguous_format
    if x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format
