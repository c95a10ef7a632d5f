"""The configurable pattern: explicit constructor arguments plus a `from_config` classmethod.

A component written as::

    class Head(nn.Module):
        @configurable
        def __init__(self, *, num_classes: int, dim: int): ...

        @classmethod
        def from_config(cls, cfg, input_shape):
            return {"num_classes": cfg.MODEL.ROI_HEADS.NUM_CLASSES, "dim": input_shape.channels}

can be built either with plain arguments, ``Head(num_classes=3, dim=256)``, or from a config,
``Head(cfg, input_shape)``: when the first argument is a config, `from_config` maps it to the
arguments (extra keyword arguments override them).
"""

import functools
import inspect
from typing import Any, Callable

from .config import CfgNode

__all__ = ["configurable"]


def configurable(init_func: Callable) -> Callable:
    """Decorate an ``__init__`` so the class may also be constructed from a config."""
    if init_func.__name__ != "__init__":
        raise TypeError("@configurable decorates __init__ methods only.")

    @functools.wraps(init_func)
    def wrapped(self, *args: Any, **kwargs: Any) -> None:
        if args and isinstance(args[0], CfgNode) or isinstance(kwargs.get("cfg"), CfgNode):
            from_config = getattr(type(self), "from_config", None)
            if from_config is None:
                raise AttributeError(f"{type(self).__name__} needs a from_config classmethod.")
            explicit = _call_from_config(from_config, args, kwargs)
            init_func(self, **explicit)
        else:
            init_func(self, *args, **kwargs)

    return wrapped


def _call_from_config(from_config: Callable, args: tuple, kwargs: dict) -> dict:
    signature = inspect.signature(from_config)
    accepted = set(signature.parameters)
    takes_var_kw = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    from_config_kwargs = {k: v for k, v in kwargs.items() if takes_var_kw or k in accepted}
    overrides = {k: v for k, v in kwargs.items() if k not in from_config_kwargs}
    result = from_config(*args, **from_config_kwargs)
    result.update(overrides)
    return result
