"""detectron2 and Detectron weights files -> ``{"model": state_dict with mrcnn names, ...}``.

Our parameter names are detectron2's, so its files need no renaming; what differs is the layout:

* detectron2 ``.pth`` (what its trainer saves): ``{"model": tensors, "optimizer": ..., "iteration": ...}``
  -- used as is (only "model" is read when fine-tuning).
* detectron2 model-zoo ``.pkl``: ``{"model": numpy arrays, "__author__": ...}`` -- used as is, but
  for the anchor generator's ``cell_anchors``: detectron2 saved them as buffers when the zoo was
  trained, and they are computed from MODEL.ANCHOR_GENERATOR (ours are not saved), so they are
  dropped rather than reported as unused tensors.
* Detectron (Caffe2) detection ``.pkl``: ``{"blobs": {caffe2 name: array}, ...}`` -- renamed.
* MSRA / Caffe2 ImageNet ``.pkl``: ``{caffe2 name: array}`` -- renamed (backbone only).
"""

import logging
import re
from typing import Any, Dict, Optional

from .c2_names import convert_c2_names, is_c2_state_dict

__all__ = ["convert_detectron2_pickle", "is_detectron2_checkpoint"]

logger = logging.getLogger(__name__)

_CELL_ANCHORS = re.compile(r"(^|\.)anchor_generator\.cell_anchors\.\d+$")


def _without_cell_anchors(model: Dict[str, Any]) -> Dict[str, Any]:
    """The weights without the anchor generator's saved cell anchors (derived from the config)."""
    anchors = [key for key in model if _CELL_ANCHORS.search(key)]
    if not anchors:
        return model
    logger.info(f"Not loading {len(anchors)} cell-anchor tensors; anchors come from MODEL.ANCHOR_GENERATOR.")
    return {key: value for key, value in model.items() if key not in anchors}


def is_detectron2_checkpoint(checkpoint: Any) -> bool:
    """True for a dict holding a "model" dict (detectron2's .pth / model-zoo .pkl layout)."""
    return isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict)


def convert_detectron2_pickle(data: Any, filename: str = "<pickle>") -> Dict[str, Any]:
    """A loaded detectron2 / Detectron / MSRA ``.pkl`` -> ``{"model": ..., "__author__": ...}``.

    Raises ValueError naming ``filename`` when the pickle holds no weights dict.
    """
    if not isinstance(data, dict):
        raise ValueError(f"'{filename}' holds a {type(data).__name__}, not a dict of weights.")
    if is_detectron2_checkpoint(data):
        model = data["model"]
        author = data.get("__author__", "detectron2")
        if is_c2_state_dict(model):
            model, author = convert_c2_names(model, logger.info), f"{author} (Caffe2 names)"
        else:
            model = _without_cell_anchors(model)
        return {**{k: v for k, v in data.items() if k != "model"}, "model": model, "__author__": author}
    if isinstance(data.get("blobs"), dict):  # Detectron detection models
        extra = {k: v for k, v in data.items() if k != "blobs"}
        blobs = {k: v for k, v in data["blobs"].items() if not k.endswith("_momentum")}
        if is_c2_state_dict(blobs):
            return {**extra, "model": convert_c2_names(blobs, logger.info), "__author__": "Caffe2 (Detectron)"}
        return {**extra, "model": blobs, "__author__": _author(data)}
    arrays = {k: v for k, v in data.items() if hasattr(v, "shape")}
    if not arrays:
        raise ValueError(
            f"'{filename}' is a pickle without weights: expected a 'model' or 'blobs' dict, or "
            f"arrays by name; found keys {sorted(map(str, data))[:10]}."
        )
    if is_c2_state_dict(arrays):
        return {"model": convert_c2_names(arrays, logger.info), "__author__": "Caffe2 (MSRA ImageNet)"}
    return {"model": arrays, "__author__": _author(data)}


def _author(data: Dict[str, Any]) -> Optional[str]:
    author = data.get("__author__")
    return author if isinstance(author, str) else "pickle"
