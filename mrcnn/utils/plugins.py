"""Plugins: python modules that register their own components, imported before anything is built.

A plugin is any importable module (``projects.my_backbone``, ``my_package.heads``). Importing it
runs its ``@REGISTRY.register()`` decorators. A plugin that adds config keys defines
``add_config(cfg)``; it is called before the yaml file is merged so those keys are accepted.
"""
import importlib
import sys
from types import ModuleType
from typing import Any, Iterable, List, Optional, Sequence

from mrcnn.config import load_yaml_with_base, parse_literal

__all__ = ["import_plugins", "add_plugin_configs", "plugin_names_from_sources"]


def import_plugins(names: Iterable[str]) -> List[ModuleType]:
    """Import every module in ``names`` (in order); an unimportable one raises naming it."""
    modules = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ImportError(f"Plugin names must be non-empty module names; got {name!r} in MODEL.PLUGINS.")
        try:
            modules.append(importlib.import_module(name.strip()))
        except ImportError as error:
            raise ImportError(
                f"Cannot import plugin module '{name}' (from MODEL.PLUGINS / --plugin): {error}. "
                f"The module must be importable from sys.path; run from the repository root for "
                f"'projects.*' modules, or install the package that provides it."
            ) from error
    return modules


def add_plugin_configs(cfg: Any, modules: Sequence[ModuleType]) -> None:
    """Let each plugin module that defines ``add_config(cfg)`` add its keys to ``cfg``."""
    for module in modules:
        add_config = getattr(module, "add_config", None)
        if callable(add_config):
            add_config(cfg)


def plugin_names_from_sources(
    config_file: Optional[str] = None,
    opts: Optional[Sequence[str]] = None,
    extra: Optional[Iterable[str]] = None,
) -> List[str]:
    """Plugin module names named by a yaml file's MODEL.PLUGINS, KEY VALUE overrides and ``extra``.

    The yaml is read without merging, because the plugins may add the keys that merging needs.
    """
    names: List[str] = []
    if config_file:
        data = load_yaml_with_base(config_file)
        names.extend(_as_list((data.get("MODEL") or {}).get("PLUGINS", [])))
    opts = list(opts or [])
    for key, value in zip(opts[0::2], opts[1::2]):
        if key == "MODEL.PLUGINS":
            names.extend(_as_list(parse_literal(value) if isinstance(value, str) else value))
    names.extend(extra or [])
    unique = []
    for name in names:
        if name not in unique:
            unique.append(name)
    return unique


def _as_list(value: Any) -> List[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def ensure_on_sys_path(path: str) -> None:
    """Put ``path`` first on sys.path if it is not there (e.g. the repository root for projects/)."""
    if path not in sys.path:
        sys.path.insert(0, path)
