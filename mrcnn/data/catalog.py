"""Name → dataset and name → metadata catalogs, shared by training, evaluation and visualization."""

import copy
import logging
from collections import UserDict
from typing import Any, Callable, Dict, List

__all__ = ["DatasetCatalog", "MetadataCatalog", "Metadata"]

logger = logging.getLogger(__name__)


class _DatasetCatalog(UserDict):
    """Maps a dataset name to a function that returns its list of dataset dicts.

    The function is called lazily, on every `get`, so registering costs nothing and large
    annotation files are only read by the runs that use them.
    """

    def register(self, name: str, func: Callable[[], List[dict]]) -> None:
        """Register ``func`` (no arguments, returns ``list[dict]``) under ``name``; names are unique."""
        if not callable(func):
            raise TypeError(f"DatasetCatalog.register('{name}'): expected a callable, got {type(func).__name__}")
        if name in self.data:
            raise ValueError(f"Dataset '{name}' is already registered; pick another name or remove it first.")
        self.data[name] = func

    def get(self, name: str) -> List[dict]:  # type: ignore[override]
        """Call the function registered under ``name`` and return its dataset dicts."""
        if name not in self.data:
            registered = ", ".join(sorted(self.data)) or "(none)"
            raise KeyError(f"Dataset '{name}' is not registered. Registered datasets: {registered}")
        dicts = self.data[name]()
        if not isinstance(dicts, list):
            raise TypeError(f"Dataset '{name}' must load as a list of dicts, got {type(dicts).__name__}")
        return dicts

    def list(self) -> List[str]:
        """Registered names, in registration order."""
        return list(self.data.keys())

    def remove(self, name: str) -> None:
        """Forget a dataset (its metadata stays in MetadataCatalog)."""
        self.data.pop(name)

    def __str__(self) -> str:
        return f"DatasetCatalog(registered datasets: {', '.join(self.data)})"

    __repr__ = __str__


DatasetCatalog = _DatasetCatalog()


class Metadata:
    """Attributes describing one dataset (thing_classes, json_file, evaluator_type, ...).

    An attribute may be set once; setting it again to a different value is an error, which
    catches two registrations disagreeing about, e.g., the class list.
    """

    def __init__(self, name: str = "", **kwargs: Any):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_fields", {})
        self.set(**kwargs)

    def __getattr__(self, key: str) -> Any:
        fields = object.__getattribute__(self, "_fields")
        if key in fields:
            return fields[key]
        name = object.__getattribute__(self, "name")
        raise AttributeError(
            f"Metadata of dataset '{name}' has no field '{key}'. Available fields: {sorted(fields) or '(none)'}"
        )

    def __setattr__(self, key: str, value: Any) -> None:
        if key == "name":
            raise AttributeError("Metadata.name is fixed at creation")
        fields = self._fields
        if key in fields:
            if not _same(fields[key], value):
                raise ValueError(
                    f"Metadata field '{key}' of dataset '{self.name}' is already set to a different value "
                    f"({_short(fields[key])} vs {_short(value)})"
                )
            return  # keep the first value
        fields[key] = value

    def __delattr__(self, key: str) -> None:
        del self._fields[key]

    def set(self, **kwargs: Any) -> "Metadata":
        """Set several fields at once; returns self."""
        for key, value in kwargs.items():
            setattr(self, key, value)
        return self

    def get(self, key: str, default: Any = None) -> Any:
        """The field's value, or ``default`` when unset."""
        return self._fields.get(key, default)

    def as_dict(self) -> Dict[str, Any]:
        """A copy of all fields plus the name."""
        return {"name": self.name, **copy.copy(self._fields)}

    def __contains__(self, key: str) -> bool:
        return key in self._fields

    def __repr__(self) -> str:
        return f"Metadata(name={self.name!r}, {', '.join(f'{k}={_short(v)}' for k, v in self._fields.items())})"

    def __getstate__(self) -> dict:
        return {"name": self.name, "_fields": self._fields}

    def __setstate__(self, state: dict) -> None:
        object.__setattr__(self, "name", state["name"])
        object.__setattr__(self, "_fields", state["_fields"])


def _same(a: Any, b: Any) -> bool:
    # lists from yaml and tuples from code describe the same class list
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays: ambiguous truth value
        return a is b


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _MetadataCatalog(UserDict):
    """Maps a dataset name to its `Metadata`; `get` creates an empty one on first use."""

    def get(self, name: str) -> Metadata:  # type: ignore[override]
        """The metadata of ``name``, created empty when absent."""
        if name not in self.data:
            self.data[name] = Metadata(name=name)
        return self.data[name]

    def list(self) -> List[str]:
        """Names that have metadata."""
        return list(self.data.keys())

    def remove(self, name: str) -> None:
        """Forget the metadata of ``name``."""
        self.data.pop(name)

    def __str__(self) -> str:
        return f"MetadataCatalog(registered metadata: {', '.join(self.data)})"

    __repr__ = __str__


MetadataCatalog = _MetadataCatalog()
