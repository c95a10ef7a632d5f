"""A name → object registry per component kind, with errors that list what is registered."""

from typing import Any

from fvcore.common.registry import Registry as _FvcoreRegistry

__all__ = ["Registry"]


class Registry(_FvcoreRegistry):
    """fvcore's registry whose lookup error lists the registered names.

    Use ``@REGISTRY.register()`` on a class or function, then ``REGISTRY.get(name)``.
    """

    def get(self, name: str) -> Any:
        """Return the object registered under ``name``; a KeyError lists the registered names."""
        obj = self._obj_map.get(name)
        if obj is None:
            registered = ", ".join(sorted(self._obj_map)) or "(none)"
            raise KeyError(
                f"No object named '{name}' in the {self._name} registry. "
                f"Registered: {registered}. A plugin must be imported (MODEL.PLUGINS / --plugin) "
                f"before the model is built for its names to appear here."
            )
        return obj

    def names(self) -> list:
        """Sorted registered names."""
        return sorted(self._obj_map)
