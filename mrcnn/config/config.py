"""The configuration tree: attribute access, yaml files with `_BASE_`, strict typed merging."""

import copy
import difflib
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

import yaml
from omegaconf import OmegaConf

from .compat import accept_detectron2_key
from .errors import ConfigError
from .literals import parse_literal

__all__ = ["CfgNode", "ConfigError", "load_yaml_with_base"]

BASE_KEY = "_BASE_"


class CfgNode(dict):
    """A nested dict with attribute access (``cfg.MODEL.WEIGHTS``), freezing and strict merges.

    Merging from files or the command line only accepts keys that already exist, and converts
    each value to the type of its default; an unknown key raises :class:`ConfigError` naming the
    closest valid keys. Python code may still add keys (``cfg.MY_PLUGIN = CfgNode()``) to extend
    the tree before merging, which is how plugins add their own options.
    """

    _FROZEN = "__frozen__"

    def __init__(self, init_dict: Optional[Dict[str, Any]] = None):
        super().__init__()
        object.__setattr__(self, CfgNode._FROZEN, False)
        for key, value in (init_dict or {}).items():
            self[key] = CfgNode(value) if isinstance(value, dict) and not isinstance(value, CfgNode) else value

    # --- attribute access -------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"Config has no key '{name}'") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if self.is_frozen():
            raise AttributeError(f"Cannot set '{name}': the config is frozen (call cfg.defrost() first).")
        self[name] = CfgNode(value) if isinstance(value, dict) and not isinstance(value, CfgNode) else value

    def __getstate__(self) -> Dict[str, Any]:
        return {"frozen": self.is_frozen(), "items": dict(self)}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        object.__setattr__(self, CfgNode._FROZEN, False)
        self.update(state["items"])
        object.__setattr__(self, CfgNode._FROZEN, state["frozen"])

    def __reduce__(self):
        return (CfgNode, (), self.__getstate__())

    def __deepcopy__(self, memo):
        out = CfgNode()
        for key, value in self.items():
            dict.__setitem__(out, key, copy.deepcopy(value, memo))
        return out

    # --- freezing -----------------------------------------------------------------------------
    def freeze(self) -> "CfgNode":
        """Make this node and every child immutable."""
        self._set_frozen(True)
        return self

    def defrost(self) -> "CfgNode":
        """Make this node and every child mutable again."""
        self._set_frozen(False)
        return self

    def is_frozen(self) -> bool:
        """Whether the node is frozen."""
        return object.__getattribute__(self, CfgNode._FROZEN)

    def _set_frozen(self, frozen: bool) -> None:
        object.__setattr__(self, CfgNode._FROZEN, frozen)
        for value in self.values():
            if isinstance(value, CfgNode):
                value._set_frozen(frozen)

    def clone(self) -> "CfgNode":
        """A deep, unfrozen copy."""
        return copy.deepcopy(self)

    # --- conversion ---------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """Plain nested dicts and lists (tuples become lists)."""

        def convert(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [convert(v) for v in value]
            return value

        return convert(self)

    def dump(self, **kwargs: Any) -> str:
        """The whole config as yaml text (through omegaconf)."""
        return OmegaConf.to_yaml(OmegaConf.create(self.to_dict()), **kwargs)

    def __str__(self) -> str:
        return self.dump()

    def all_keys(self, prefix: str = "") -> List[str]:
        """Every leaf key as a dotted path, e.g. ``MODEL.RPN.NMS_THRESH``."""
        keys = []
        for key, value in self.items():
            full = f"{prefix}{key}"
            if isinstance(value, CfgNode):
                keys.extend(value.all_keys(full + "."))
            else:
                keys.append(full)
        return keys

    # --- merging ------------------------------------------------------------------------------
    def merge_from_file(self, path: str) -> "CfgNode":
        """Merge a yaml file (following its `_BASE_` chain) into this config."""
        loaded = load_yaml_with_base(path)
        self._merge_dict(loaded, source=str(path))
        return self

    def merge_from_dict(self, values: Dict[str, Any], source: str = "a dict") -> "CfgNode":
        """Merge a nested dict of overrides."""
        self._merge_dict(values, source=source)
        return self

    def merge_from_list(self, pairs: Iterable[Any]) -> "CfgNode":
        """Merge ``["KEY.PATH", "value", ...]`` pairs from the command line."""
        pairs = list(pairs)
        if len(pairs) % 2 != 0:
            raise ConfigError(f"Overrides must come as KEY VALUE pairs; got an odd number of items: {pairs}")
        for dotted, raw in zip(pairs[0::2], pairs[1::2]):
            value = parse_literal(raw) if isinstance(raw, str) else raw
            if not self._has_key(str(dotted)) and accept_detectron2_key(str(dotted), value, "the command line"):
                continue
            node, leaf = self._locate(str(dotted), source="the command line")
            node._assign(leaf, value, full_key=str(dotted), source="the command line")
        _resolve_interpolations(self)
        return self

    def _has_key(self, dotted: str) -> bool:
        node: Any = self
        for part in dotted.split("."):
            if not isinstance(node, CfgNode) or part not in node:
                return False
            node = node[part]
        return True

    def _locate(self, dotted: str, source: str) -> Tuple["CfgNode", str]:
        node = self
        parts = dotted.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if not isinstance(child, CfgNode):
                self._unknown_key(".".join(parts[: i + 1]), source)
            node = child
        if parts[-1] not in node:
            self._unknown_key(dotted, source)
        return node, parts[-1]

    def _unknown_key(self, dotted: str, source: str) -> None:
        candidates = self.all_keys()
        close = difflib.get_close_matches(dotted, candidates, n=3, cutoff=0.6)
        if not close:
            last = dotted.split(".")[-1]
            close = [k for k in candidates if k.split(".")[-1] == last][:3]
        hint = f" Closest valid keys: {', '.join(close)}." if close else ""
        raise ConfigError(f"Unknown config key '{dotted}' (from {source}).{hint}")

    def _merge_dict(
        self, values: Dict[str, Any], source: str, prefix: str = "", root: Optional["CfgNode"] = None
    ) -> None:
        root = root if root is not None else self
        if self.is_frozen():
            raise AttributeError("Cannot merge into a frozen config (call cfg.defrost() first).")
        for key, value in values.items():
            full_key = f"{prefix}{key}"
            if key not in self:
                if accept_detectron2_key(full_key, value, source):
                    continue  # a detectron2-only key at its default: nothing to set
                root._unknown_key(full_key, source)
            if isinstance(self[key], CfgNode):
                if not isinstance(value, dict):
                    raise ConfigError(
                        f"Config key '{full_key}' (from {source}) is a group of keys; got the value {value!r}."
                    )
                self[key]._merge_dict(value, source, prefix=full_key + ".", root=root)
            else:
                self._assign(key, value, full_key=full_key, source=source)
        if root is self:
            _resolve_interpolations(self)

    def _assign(self, key: str, value: Any, full_key: str, source: str) -> None:
        if self.is_frozen():
            raise AttributeError(f"Cannot set '{full_key}': the config is frozen.")
        dict.__setitem__(self, key, _coerce(self[key], value, full_key, source))


def _type_name(value: Any) -> str:
    return {bool: "a bool", int: "an int", float: "a float", str: "a string"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _coerce(default: Any, value: Any, full_key: str, source: str) -> Any:
    """Convert ``value`` to the type of ``default`` or raise a ConfigError saying what was wanted."""

    def fail(wanted: str) -> None:
        raise ConfigError(
            f"Config key '{full_key}' (from {source}) wants {wanted}; got {value!r} ({_type_name(value)})."
        )

    if default is None or value is None:
        return value
    if isinstance(value, str) and _is_interpolation(value):
        return value  # resolved after the merge
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        fail("a bool (true/false)")
    if isinstance(default, int):
        if isinstance(value, bool):
            fail("an int")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        fail("an int")
    if isinstance(default, float):
        if isinstance(value, bool):
            fail("a float")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        fail("a float")
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        fail("a string")
    if isinstance(default, (list, tuple)):
        if isinstance(value, str):
            parsed = parse_literal(value)
            # A bare word stands for a one-element list ("DATASETS.TRAIN shapes_train").
            value = list(parsed) if isinstance(parsed, (list, tuple)) else [parsed]
        if isinstance(value, (list, tuple)):
            return _to_lists(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return [value]
        fail("a list")
    return value


def _to_lists(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_to_lists(v) for v in value]
    return value


def _is_interpolation(text: str) -> bool:
    return "${" in text


def _resolve_interpolations(cfg: CfgNode) -> None:
    """Resolve omegaconf interpolations such as ``${OUTPUT_DIR}/eval`` or ``${oc.env:HOME}``."""
    if not any(isinstance(v, str) and _is_interpolation(v) for v in _leaf_values(cfg)):
        return
    resolved = OmegaConf.to_container(OmegaConf.create(cfg.to_dict()), resolve=True)

    def write_back(node: CfgNode, values: Dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(node[key], CfgNode):
                write_back(node[key], value)
            elif isinstance(node[key], str) and _is_interpolation(node[key]):
                dict.__setitem__(node, key, value)

    write_back(cfg, resolved)


def _leaf_values(cfg: CfgNode) -> Iterable[Any]:
    for value in cfg.values():
        if isinstance(value, CfgNode):
            yield from _leaf_values(value)
        else:
            yield value


def load_yaml_with_base(path: str, _chain: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """Read a yaml file and merge it over the files its `_BASE_` names (paths relative to it)."""
    path = os.path.expanduser(str(path))
    if not os.path.isfile(path):
        if _chain:
            raise FileNotFoundError(f"_BASE_ file not found: looked for '{path}' (named in '{_chain[-1]}').")
        raise FileNotFoundError(f"Config file not found: '{path}'.")
    if os.path.abspath(path) in _chain:
        raise ConfigError(f"_BASE_ cycle: '{path}' includes itself via {' -> '.join(_chain)}.")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file '{path}' is not valid yaml: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"Config file '{path}' must hold a mapping of keys, got {type(data).__name__}.")
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    bases = base if isinstance(base, (list, tuple)) else [base]
    merged: Dict[str, Any] = {}
    for base_path in bases:
        base_path = os.path.expanduser(str(base_path))
        if not os.path.isabs(base_path):
            base_path = os.path.join(os.path.dirname(path), base_path)
        _deep_update(merged, load_yaml_with_base(base_path, _chain + (os.path.abspath(path),)))
    _deep_update(merged, data)
    return merged


def _deep_update(target: Dict[str, Any], source: Dict[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
