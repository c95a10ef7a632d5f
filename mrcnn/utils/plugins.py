"""Plugins: python modules that register their own components, imported before anything is built.

A plugin is any importable module (``projects.my_backbone``, ``my_package.heads``). Importing it
runs its ``@REGISTRY.register()`` decorators. A plugin that adds config keys defines
``add_config(cfg)``; it is called before the yaml file is merged so those keys are accepted.

A plugin is looked up on sys.path first. If its top-level package is not there but is a folder
(or ``.py`` file) of the current working directory, it is imported from there, as ``python -m``
would find it: so ``projects.MobileNetBackbone.mobilenet_backbone`` imports when a tool runs from
the repository root (``python tools/train_net.py ...`` puts tools/, not the root, on sys.path).
The directory is then appended to sys.path, after everything else, so it shadows no installed module.
"""

import importlib
import os
import sys
from types import ModuleType
from typing import Any, Iterable, List, Optional, Sequence

from mrcnn.config import load_yaml_with_base, parse_literal

__all__ = ["import_plugins", "add_plugin_configs", "plugin_names_from_sources"]


def import_plugins(names: Iterable[str]) -> List[ModuleType]:
    """Import every module in ``names`` (in order), from sys.path or else the working directory;
    an unimportable one raises naming it."""
    modules = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ImportError(f"Plugin names must be non-empty module names; got {name!r} in MODEL.PLUGINS.")
        try:
            modules.append(_import_module(name.strip()))
        except ImportError as error:
            raise ImportError(
                f"Cannot import plugin module '{name}' (from MODEL.PLUGINS / --plugin): {error}. "
                f"The module must be importable from sys.path or from the current directory (run "
                f"from the repository root for 'projects.*' modules), or installed."
            ) from error
    return modules


def _import_module(name: str) -> ModuleType:
    """``importlib.import_module(name)``, falling back to the working directory for the top-level package."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        top_level = name.split(".")[0]
        working_directory = os.getcwd()
        if error.name != top_level or not _holds_module(working_directory, top_level):
            raise
    if working_directory not in sys.path:
        sys.path.append(working_directory)
    importlib.invalidate_caches()
    return importlib.import_module(name)


def _holds_module(directory: str, name: str) -> bool:
    return os.path.isdir(os.path.join(directory, name)) or os.path.isfile(os.path.join(directory, name + ".py"))


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
