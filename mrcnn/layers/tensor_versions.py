"""The state of a module's tensors as a comparable key, for caches of values derived from them."""
from typing import Optional

from torch import nn

__all__ = ["version_key"]


def version_key(module: nn.Module) -> Optional[tuple]:
    """Identity and in-place version of every parameter and buffer of ``module``; None if untracked.

    The key changes when a tensor is replaced (``.to()``, assignment) or written in place
    (``copy_``, ``load_state_dict``, optimizer steps), not when written through ``.data``.
    """
    try:
        return tuple(
            (t.data_ptr(), t._version, t.dtype, t.device)
            for t in list(module.parameters()) + list(module.buffers())
        )
    except RuntimeError:  # inference-mode tensors carry no version counter
        return None
