"""Recognise where a loaded weights file comes from and bring it to mrcnn's parameter names.

`convert_foreign_checkpoint` is what DetectionCheckpointer runs on every file it reads:

* ``.pkl`` files: detectron2 model zoo, Detectron (Caffe2) and MSRA ImageNet formats;
* torchvision state dicts (detection models and ImageNet ResNets), bare or under "model";
* Caffe2-named dicts inside a ``.pth``;
* anything else (our own and detectron2's ``.pth``) is returned unchanged.
"""

import logging
from typing import Any, Dict, Iterable, Optional

from .c2_names import convert_c2_names, is_c2_state_dict
from .convert_torchvision import convert_torchvision_state_dict, is_torchvision_state_dict
from .detectron2_convert import convert_detectron2_pickle

__all__ = ["convert_foreign_checkpoint", "describe_loading", "SOURCE_KEY"]

logger = logging.getLogger(__name__)

# The entry naming a file's origin; detectron2 uses the same key in its model-zoo files.
SOURCE_KEY = "__author__"


def _state_dict_of(checkpoint: Any) -> Optional[Dict[str, Any]]:
    if not isinstance(checkpoint, dict):
        return None
    inner = checkpoint.get("model")
    return inner if isinstance(inner, dict) else checkpoint


def convert_foreign_checkpoint(checkpoint: Any, filename: str) -> Any:
    """A loaded file's content -> ``{"model": state_dict with mrcnn names, "__author__": origin, ...}``.

    Files already in mrcnn/detectron2 names are returned unchanged. For converted foreign
    formats only the weights are kept: their optimizer or epoch entries mean nothing here.
    """
    if str(filename).endswith(".pkl"):
        return convert_detectron2_pickle(checkpoint, filename)
    state_dict = _state_dict_of(checkpoint)
    if not state_dict:
        return checkpoint
    if is_torchvision_state_dict(state_dict):
        kind = "detection model" if any(k.startswith("backbone.body.") for k in state_dict) else "ImageNet ResNet"
        logger.info(f"'{filename}' is a torchvision {kind} state dict; converting its names.")
        return {"model": convert_torchvision_state_dict(state_dict), SOURCE_KEY: f"torchvision {kind}"}
    if is_c2_state_dict(state_dict):
        logger.info(f"'{filename}' uses Caffe2 blob names; converting them.")
        return {"model": convert_c2_names(state_dict, logger.info), SOURCE_KEY: "Caffe2"}
    return checkpoint


def describe_loading(
    model_keys: Iterable[str],
    num_in_file: int,
    missing_keys: Iterable[str],
    unexpected_keys: Iterable[str],
    skipped_shapes: Iterable[Any],
    source: Optional[str] = None,
) -> str:
    """One line: how many model tensors were loaded, skipped (shape), missing, and unused in the file."""
    model_keys = list(model_keys)
    skipped = {entry[0] for entry in skipped_shapes}
    missing = set(missing_keys) - skipped
    unexpected = list(unexpected_keys)
    loaded = len(model_keys) - len(missing) - len(skipped)
    origin = f" (format: {source})" if source else ""
    return (
        f"Loaded {loaded} of {len(model_keys)} model tensors from {num_in_file} in the file{origin}; "
        f"{len(skipped)} skipped for another shape, {len(missing)} missing (keep their initial "
        f"values), {len(unexpected)} in the file unused."
    )
