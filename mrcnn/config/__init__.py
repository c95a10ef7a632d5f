"""Configuration: `get_cfg()` gives every default; yaml files and KEY VALUE pairs override them."""

from .config import CfgNode, load_yaml_with_base
from .defaults import _C
from .errors import ConfigError
from .literals import parse_literal

__all__ = ["CfgNode", "ConfigError", "get_cfg", "load_yaml_with_base", "parse_literal", "configurable"]


def get_cfg() -> CfgNode:
    """A fresh copy of the default config, holding every key the library reads."""
    return _C.clone()


from .configurable import configurable  # noqa: E402
