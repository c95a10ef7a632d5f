"""Unpickling weights files without trusting them.

A pickle is a program: every global it names is imported and may be called while it loads, so a
crafted ``.pkl`` can run any command. Weights files (detectron2's model zoo, the Caffe2/MSRA
ImageNet backbones) only need numpy arrays, dtypes, numbers, strings and containers, so
:class:`SafeUnpickler` resolves exactly those globals and refuses every other one *before* it is
imported, naming it in the error.
"""

import _compat_pickle
import pickle
from typing import IO, Any, FrozenSet, Tuple, Union

import numpy as np

__all__ = ["SafeUnpickler", "UnsafePickleError", "load_safe_pickle", "ALLOWED_GLOBALS"]


# (module, name) pairs a weights file may name. numpy moved numpy.core to numpy._core in 2.0 and
# files written by either version name their own; both spellings are listed.
ALLOWED_GLOBALS: FrozenSet[Tuple[str, str]] = frozenset(
    [
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol-5 arrays
        ("numpy._core.numeric", "_frombuffer"),
        ("collections", "OrderedDict"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "complex"),
        ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 spell bytes with it
    ]
)


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle asked for something a weights file never needs (a class or function to call)."""


def _resolve_numpy(module: str, name: str) -> Any:
    """The numpy object a (possibly numpy-1 spelled) global names, under this numpy's layout."""
    if module == "numpy":
        return getattr(np, name)
    if module.startswith("numpy.core") and not hasattr(np, "core"):
        module = "numpy._core" + module[len("numpy.core") :]
    elif module.startswith("numpy._core") and not hasattr(np, "_core"):
        module = "numpy.core" + module[len("numpy._core") :]
    submodule = __import__(module, fromlist=[name])
    return getattr(submodule, name)


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds only numpy arrays, dtypes, scalars and plain containers.

    Anything else (``os.system``, ``builtins.open``, ``subprocess.Popen``, any class) raises
    :class:`UnsafePickleError` naming it, without importing or calling it.
    """

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 pickles (as Detectron wrote them) use the old names ("__builtin__.set"); map
        # them as pickle itself would, so that both the check and the error see Python 3 names.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"refused '{module}.{name}', which is not allowed in a weights file (only numpy "
                f"arrays, numbers, strings and containers are)"
            )
        if module.startswith("numpy"):
            return _resolve_numpy(module, name)
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refused persistent id {pid!r}: a weights file never refers to objects outside itself")


def load_safe_pickle(source: Union[str, IO[bytes]]) -> Any:
    """Load a pickled weights file (a path or a binary file object) with :class:`SafeUnpickler`.

    Python 2 pickles (Detectron, MSRA backbones) are decoded with latin1, as numpy needs. Errors
    name the file and the refused object.
    """
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        with open(source, "rb") as handle:
            return _load(handle, str(source))
    return _load(source, getattr(source, "name", "<stream>"))


def _load(handle: IO[bytes], name: str) -> Any:
    try:
        return SafeUnpickler(handle, encoding="latin1").load()
    except UnsafePickleError as error:
        raise UnsafePickleError(
            f"Cannot load '{name}' safely: {error}. If you trust the file, load it with plain "
            f"pickle and save its arrays again (e.g. as a dict of numpy arrays)."
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise pickle.UnpicklingError(f"'{name}' is not a readable pickle: {error}") from None
