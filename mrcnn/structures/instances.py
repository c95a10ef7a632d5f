"""Instances: the per-image bag of equally long fields (boxes, scores, classes, masks...)."""

from __future__ import annotations

import itertools
from typing import Any, Dict, List, Tuple, Union

import numpy as np
import torch


class Instances:
    """Per-instance fields of one image; every field has the same length N.

    Fields are set and read as attributes (``inst.pred_boxes = boxes``) or with
    ``set/get/has/remove``. A field may be a tensor, a list, or any object with
    ``__len__`` and ``__getitem__`` (Boxes, BitMasks, PolygonMasks...).
    """

    def __init__(self, image_size: Tuple[int, int], **fields: Any):
        if len(image_size) != 2:
            raise ValueError(f"Instances image_size must be (height, width), got {image_size!r}")
        # tensors are kept as-is so that sizes stay symbolic under tracing
        self._image_size = tuple(s if isinstance(s, torch.Tensor) else int(s) for s in image_size)
        self._fields: Dict[str, Any] = {}
        for name, value in fields.items():
            self.set(name, value)

    @property
    def image_size(self) -> Tuple[int, int]:
        """(height, width) of the image the instances belong to."""
        return self._image_size

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, value)
        else:
            self.set(name, value)

    def __getattr__(self, name: str) -> Any:
        # only reached when normal lookup fails, i.e. for fields
        if name == "_fields" or name not in self.__dict__.get("_fields", {}):
            raise AttributeError(
                f"Instances has no field '{name}'; fields are {list(self.__dict__.get('_fields', {}))}"
            )
        return self._fields[name]

    def set(self, name: str, value: Any) -> None:
        """Set field `name`; its length must equal the length of the existing fields."""
        if name == "image_size":
            raise AttributeError("image_size is fixed at construction and cannot be set as a field")
        try:
            value_len = len(value)
        except TypeError:
            raise TypeError(f"Instances field '{name}' must have a length; got {type(value).__name__}") from None
        others = [other for other in self._fields if other != name]
        if others:
            expected = len(self._fields[others[0]])
            if value_len != expected:
                raise ValueError(
                    f"Instances field '{name}' has length {value_len}, but the other fields "
                    f"({', '.join(others)}) have length {expected}"
                )
        self._fields[name] = value

    def has(self, name: str) -> bool:
        """Whether field `name` exists."""
        return name in self._fields

    def remove(self, name: str) -> None:
        """Delete field `name`."""
        if name not in self._fields:
            raise KeyError(f"Instances has no field '{name}' to remove; fields are {list(self._fields)}")
        del self._fields[name]

    def __delattr__(self, name: str) -> None:
        if name.startswith("_"):
            super().__delattr__(name)
        else:
            self.remove(name)

    def get(self, name: str) -> Any:
        """Field `name`."""
        if name not in self._fields:
            raise KeyError(f"Instances has no field '{name}'; fields are {list(self._fields)}")
        return self._fields[name]

    def get_fields(self) -> Dict[str, Any]:
        """The name -> value dict of all fields (the live dict, not a copy)."""
        return self._fields

    def to(self, *args: Any, **kwargs: Any) -> Instances:
        """A new Instances whose fields having `.to` are moved (e.g. to a device)."""
        moved = Instances(self._image_size)
        for name, value in self._fields.items():
            if hasattr(value, "to"):
                value = value.to(*args, **kwargs)
            moved.set(name, value)
        return moved

    def __getitem__(self, item: Union[int, slice, torch.Tensor, List[int]]) -> Instances:
        """Select instances by int (keeps a length-1 Instances), slice, bool mask or index tensor."""
        if isinstance(item, (int, np.integer)):
            n = len(self)
            if item >= n or item < -n:
                raise IndexError(f"Instances index {item} out of range for length {n}")
            item = int(item)
            item = slice(item, None, n) if item >= 0 else slice(n + item, None, n)
        selected = Instances(self._image_size)
        for name, value in self._fields.items():
            if isinstance(value, list) and not isinstance(item, slice):
                index = torch.as_tensor(item)
                if index.dtype == torch.bool:
                    index = index.nonzero().flatten()
                selected.set(name, [value[i] for i in index.tolist()])
            else:
                selected.set(name, value[item])
        return selected

    def __len__(self) -> int:
        for value in self._fields.values():
            return len(value)
        raise NotImplementedError("An Instances without fields has no length")

    def __iter__(self):
        raise NotImplementedError("Instances is not iterable; index it or read its fields")

    @staticmethod
    def cat(instance_lists: List[Instances]) -> Instances:
        """Concatenate Instances of the same image size and the same fields."""
        if len(instance_lists) == 0:
            raise ValueError("Instances.cat needs at least one Instances")
        if not all(isinstance(i, Instances) for i in instance_lists):
            raise TypeError("Instances.cat: every element must be an Instances")
        if len(instance_lists) == 1:
            return instance_lists[0]
        image_size = instance_lists[0].image_size
        for other in instance_lists[1:]:
            if other.image_size != image_size:
                raise ValueError(f"Instances.cat: image sizes differ ({image_size} vs {other.image_size})")
        result = Instances(image_size)
        for name in instance_lists[0]._fields:
            values = [i.get(name) for i in instance_lists]
            first = values[0]
            if isinstance(first, torch.Tensor):
                joined = torch.cat(values, dim=0)
            elif isinstance(first, list):
                joined = list(itertools.chain(*values))
            elif hasattr(type(first), "cat"):
                joined = type(first).cat(values)
            else:
                raise ValueError(f"Instances.cat: field '{name}' of type {type(first).__name__} has no cat()")
            result.set(name, joined)
        return result

    def __repr__(self) -> str:
        parts = [
            f"num_instances={len(self) if self._fields else 0}",
            f"image_height={self._image_size[0]}",
            f"image_width={self._image_size[1]}",
        ]
        fields = ", ".join(f"{name}: {value}" for name, value in self._fields.items())
        return f"Instances({', '.join(parts)}, fields=[{fields}])"

    __str__ = __repr__
