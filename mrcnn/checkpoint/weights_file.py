"""Read a weights file, and say what is wrong with it when it cannot be one.

`read_weights_file` loads ``.pth`` files with ``torch.load(weights_only=True)`` and ``.pkl`` files
with the safe unpickler. When that fails, the file's first bytes tell what it really is (empty,
text, an HTML page, a Git LFS pointer, a truncated zip archive, a plain pickle, ...), and the
error names the file and that. `check_weights_match_model` refuses a file none of whose tensor
names the model has (another framework's layout), which would otherwise train from scratch
after a few warnings.
"""

import os
import pickle
import zipfile
from typing import Any, Iterable, List, Mapping

import torch

from .safe_pickle import UnsafePickleError, load_safe_pickle

__all__ = ["WeightsFileError", "read_weights_file", "describe_unreadable_file", "check_weights_match_model"]

# torch.save's legacy (non-zip) format starts with this pickled magic number.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_ZIP_MAGIC = b"PK\x03\x04"
_HEAD_BYTES = 512


class WeightsFileError(ValueError):
    """A weights file that exists but cannot be used; the message names the file and the problem."""


def _text_head(head: bytes) -> str:
    """The first line of ``head`` if it reads as text, else ""."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        if len(head) < _HEAD_BYTES:
            return ""
        try:  # the 512-byte window may cut a multi-byte character
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return ""
    if not text or any(ch < " " and ch not in "\t\r\n\f" for ch in text):
        return ""
    lines = text.strip().splitlines()
    return lines[0][:60] if lines else "(blank lines)"


def _describe_zip(filename: str, size: int) -> str:
    try:
        with zipfile.ZipFile(filename) as archive:
            names = archive.namelist()
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError):
        return (
            f"it begins like a zip archive (the format torch.save writes) but its end is missing or corrupt "
            f"({size} bytes on disk): the file is truncated; copy or download it again"
        )
    if damaged is not None:
        return f"it is a zip archive (the format torch.save writes) whose entry '{damaged}' is corrupt"
    if any(name.endswith("constants.pkl") or "/code/" in name for name in names):
        return (
            "it is a TorchScript archive (torch.jit.save), not a state dict; load it with torch.jit.load "
            "and save its state_dict() with torch.save"
        )
    if not any(name.endswith("data.pkl") for name in names):
        return f"it is a zip archive but not one torch.save wrote (entries: {names[:5]})"
    return ""


def describe_unreadable_file(filename: str) -> str:
    """What ``filename`` is, judged from its first bytes, when it did not load as weights; "" if unclear."""
    size = os.path.getsize(filename)
    if size == 0:
        return "it is empty (0 bytes); the program that wrote it was probably interrupted"
    with open(filename, "rb") as f:
        head = f.read(_HEAD_BYTES)
    if head.startswith(_ZIP_MAGIC):
        return _describe_zip(filename, size)
    if head.startswith(_LEGACY_TORCH_MAGIC):
        return f"it is in torch.save's legacy format but ends early ({size} bytes on disk); it is truncated"
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:  # a pickle's protocol header
        if filename.endswith(".pkl"):
            return f"it is a pickle that ends early or is corrupt ({size} bytes on disk)"
        return (
            "it is a plain pickle, not torch.save's format; if it holds numpy arrays "
            "(detectron2's model-zoo format), give it the .pkl extension"
        )
    text = _text_head(head)
    if text:
        lowered = text.lower()
        if lowered.startswith("version https://git-lfs"):
            return "it is a Git LFS pointer, not the weights themselves; fetch them with `git lfs pull`"
        if lowered.startswith(("<!doctype html", "<html", "<?xml")):
            return f"it is an HTML/XML page (a failed download?), beginning '{text}'"
        return f"it is a text file, not a weights file (it begins '{text}')"
    return f"it is not a format weights are saved in (it begins with bytes {head[:8].hex(' ')})"


def read_weights_file(filename: str) -> Any:
    """The object stored in a ``.pth`` (torch.load, weights only) or ``.pkl`` (safe unpickler) file.

    Raises WeightsFileError naming the file and what it is instead when it cannot be read
    (empty, text, truncated, ...), and a ValueError naming the refused object when the file
    holds something a weights file never needs.
    """
    if os.path.isdir(filename):
        raise WeightsFileError(f"Weights file '{filename}' is a directory, not a file.")
    if filename.endswith(".pkl"):
        try:
            return load_safe_pickle(filename)
        except UnsafePickleError:
            raise
        except pickle.UnpicklingError as error:
            reason = describe_unreadable_file(filename) or str(error)
            raise WeightsFileError(f"Cannot load weights file '{filename}': {reason}.") from None
    try:
        return torch.load(filename, map_location=torch.device("cpu"), weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, ValueError, OSError) as error:
        reason = describe_unreadable_file(filename)
        if reason:
            raise WeightsFileError(f"Cannot load weights file '{filename}': {reason}.") from None
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if isinstance(error, pickle.UnpicklingError):  # a genuine torch file with objects beyond tensors
            raise ValueError(
                f"Cannot load '{filename}' safely (torch.load with weights_only=True refused it: {first_line}). "
                f"If you trust the file, load it with torch.load(weights_only=False) and save its state_dict() "
                f"as a new .pth file."
            ) from None
        reason = f"{type(error).__name__}: {first_line}"
        raise WeightsFileError(f"Cannot load weights file '{filename}': {reason}.") from None


def _strip_ddp_prefix(keys: Iterable[str]) -> List[str]:
    keys = [str(k) for k in keys]
    if keys and all(k.startswith("module.") for k in keys):
        return [k[len("module.") :] for k in keys]
    return keys


def check_weights_match_model(state_dict: Mapping[str, Any], model_keys: Iterable[str], filename: str) -> None:
    """Raise WeightsFileError when ``state_dict`` has entries but none is named like a model tensor.

    Such a file comes from another framework or model family (e.g. an MMDetection checkpoint);
    loading it would leave every weight at its initial value.
    """
    file_keys = _strip_ddp_prefix(state_dict.keys())
    model_keys = _strip_ddp_prefix(model_keys)
    if not file_keys or not model_keys or set(file_keys) & set(model_keys):
        return
    file_examples, model_examples = file_keys[:3], model_keys[:3]
    hint = ""
    if any(k.startswith(("neck.", "roi_head.", "rpn_head.", "bbox_head.")) for k in file_keys):
        hint = " It looks like an MMDetection checkpoint, which has no converter here."
    raise WeightsFileError(
        f"Weights file '{filename}' has {len(file_keys)} entries but none with a name this model uses "
        f"(the file has e.g. {file_examples}; the model {model_examples}).{hint} Loading it would leave "
        f"every weight at its initial value; convert it to this library's names first."
    )
