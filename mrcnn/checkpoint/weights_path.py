"""Where MODEL.WEIGHTS points: a local file, an http(s) URL, ``torchvision://`` or ``detectron2://``.

* ``/path/to/model.pth`` -- used as is (``~`` expanded).
* ``https://host/file.pth`` -- downloaded once into the cache (``$MRCNN_CACHE``, else iopath's
  ``$FVCORE_CACHE`` or ``~/.torch/iopath_cache``, which detectron2 users already have).
* ``torchvision://maskrcnn_resnet50_fpn_v2`` -- torchvision's published weights for a model name
  (its default weights), ``torchvision://resnet50.IMAGENET1K_V1`` or
  ``torchvision://ResNet50_Weights.IMAGENET1K_V1`` for a particular set, or
  ``torchvision://<file>.pth`` for a file of download.pytorch.org/models. A copy already in
  torch's hub cache (``~/.cache/torch/hub/checkpoints``) is used without downloading.
* ``detectron2://ImageNetPretrained/MSRA/R-50.pkl`` -- a file of detectron2's model zoo.
* ``catalog://ImageNetPretrained/FAIR/R-50-GN`` -- an ImageNet backbone of the original Detectron,
  by the catalog name detectron2's zoo configs use (GroupNorm, ResNeXt-152 IN5k, ...).

The prefixes are iopath path handlers, so ``weights_path_manager().get_local_path(...)`` and
``open(...)`` understand them too. Without network access the error names the URL and says how
to download it by hand.
"""

import difflib
import logging
import os
from typing import Any, List, Optional

from iopath.common.file_io import HTTPURLHandler, PathHandler, PathManager

__all__ = [
    "DETECTRON2_MODEL_ZOO_URL",
    "TORCHVISION_MODELS_URL",
    "WeightsDownloadError",
    "resolve_weights_path",
    "weights_cache_dir",
    "weights_path_manager",
    "weights_url",
]

logger = logging.getLogger(__name__)

DETECTRON2_MODEL_ZOO_URL = "https://dl.fbaipublicfiles.com/detectron2/"
TORCHVISION_MODELS_URL = "https://download.pytorch.org/models/"
TORCHVISION_PREFIX = "torchvision://"
DETECTRON2_PREFIX = "detectron2://"
CATALOG_PREFIX = "catalog://"
DETECTRON_MODEL_ZOO_URL = "https://dl.fbaipublicfiles.com/detectron/"
# catalog:// names of Detectron's Caffe2 ImageNet backbones -> their files under DETECTRON_MODEL_ZOO_URL
_DETECTRON_IMAGENET_FILES = {
    "ImageNetPretrained/MSRA/R-50": "ImageNetPretrained/MSRA/R-50.pkl",
    "ImageNetPretrained/MSRA/R-101": "ImageNetPretrained/MSRA/R-101.pkl",
    "ImageNetPretrained/FAIR/R-50-GN": "ImageNetPretrained/47261647/R-50-GN.pkl",
    "ImageNetPretrained/FAIR/R-101-GN": "ImageNetPretrained/47592356/R-101-GN.pkl",
    "ImageNetPretrained/FAIR/X-101-32x8d": "ImageNetPretrained/20171220/X-101-32x8d.pkl",
    "ImageNetPretrained/FAIR/X-101-64x4d": "ImageNetPretrained/FBResNeXt/X-101-64x4d.pkl",
    "ImageNetPretrained/FAIR/X-152-32x8d-IN5k": "ImageNetPretrained/25093814/X-152-32x8d-IN5k.pkl",
}


class WeightsDownloadError(OSError):
    """Weights named by URL could not be downloaded (offline, wrong URL, server error)."""


def weights_cache_dir() -> Optional[str]:
    """``$MRCNN_CACHE`` if set; None lets iopath choose (``$FVCORE_CACHE`` or ``~/.torch/iopath_cache``)."""
    value = os.environ.get("MRCNN_CACHE", "").strip()
    return os.path.expanduser(value) if value else None


def _torchvision_weights_url(name: str) -> str:
    """torchvision model or weights name -> the URL torchvision publishes it at."""
    if name.endswith((".pth", ".pt")):
        return TORCHVISION_MODELS_URL + name
    from torchvision import models

    try:
        if "_Weights." in name:
            return models.get_weight(name).url
        model_name, _, tag = name.partition(".")
        weights_enum = models.get_model_weights(model_name)
        return (weights_enum[tag] if tag else weights_enum.DEFAULT).url
    except (KeyError, ValueError, AttributeError) as error:
        known = models.list_models()
        close = difflib.get_close_matches(name.partition(".")[0], known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown torchvision weights '{TORCHVISION_PREFIX}{name}' ({error}). Use a model name "
            f"(torchvision://maskrcnn_resnet50_fpn_v2), model.TAG (torchvision://resnet50.IMAGENET1K_V1) "
            f"or a weights name (torchvision://ResNet50_Weights.IMAGENET1K_V1).{hint}"
        ) from None


def weights_url(path: str) -> Optional[str]:
    """The download URL that ``path`` names, or None for a local path."""
    if path.startswith(TORCHVISION_PREFIX):
        return _torchvision_weights_url(path[len(TORCHVISION_PREFIX) :])
    if path.startswith(DETECTRON2_PREFIX):
        return DETECTRON2_MODEL_ZOO_URL + path[len(DETECTRON2_PREFIX) :].lstrip("/")
    if path.startswith(CATALOG_PREFIX):
        name = path[len(CATALOG_PREFIX) :].strip("/")
        if name not in _DETECTRON_IMAGENET_FILES:
            raise ValueError(f"Unknown catalog entry '{path}'; known: {sorted(_DETECTRON_IMAGENET_FILES)}.")
        return DETECTRON_MODEL_ZOO_URL + _DETECTRON_IMAGENET_FILES[name]
    if path.startswith(("http://", "https://", "ftp://")):
        return path
    return None


class _RedirectHandler(PathHandler):
    """An iopath handler for a ``prefix://`` that downloads the URL `weights_url` gives."""

    def __init__(self, prefix: str, http_manager: PathManager):
        super().__init__()
        self._prefix = prefix
        self._http = http_manager

    def _get_supported_prefixes(self) -> List[str]:
        return [self._prefix]

    def _get_local_path(self, path: str, force: bool = False, cache_dir: Optional[str] = None, **kwargs: Any) -> str:
        self._check_kwargs(kwargs)
        url = weights_url(path)
        if path.startswith(TORCHVISION_PREFIX):
            hub_copy = _torch_hub_copy(url)
            if hub_copy and not force:
                return hub_copy
        return self._http.get_local_path(url, force=force, cache_dir=cache_dir)

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs: Any):
        self._check_kwargs(kwargs)
        return open(self._get_local_path(path), mode)

    def _isfile(self, path: str, **kwargs: Any) -> bool:
        return False  # remote until downloaded


def _torch_hub_copy(url: str) -> Optional[str]:
    """The file torchvision itself would have downloaded for ``url``, if it is there."""
    try:
        import torch.hub

        candidate = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    except Exception:  # no usable hub directory
        return None
    return candidate if os.path.isfile(candidate) else None


def weights_path_manager() -> PathManager:
    """A PathManager that understands http(s)://, torchvision://, detectron2:// and catalog:// paths."""
    http = PathManager()
    http.register_handler(HTTPURLHandler())
    manager = PathManager()
    manager.register_handler(HTTPURLHandler())
    manager.register_handler(_RedirectHandler(TORCHVISION_PREFIX, http))
    manager.register_handler(_RedirectHandler(DETECTRON2_PREFIX, http))
    manager.register_handler(_RedirectHandler(CATALOG_PREFIX, http))
    return manager


def _files_inside(directory: str) -> str:
    """A hint naming the weights files in ``directory`` ("" when it has none)."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith((".pth", ".pkl", ".pt")))
    except OSError:
        return ""
    if not names:
        return " (it holds no .pth or .pkl file)"
    return f"; did you mean one of {[os.path.join(directory, n) for n in names[-3:]]}?"


def resolve_weights_path(path: str, cache_dir: Optional[str] = None) -> str:
    """A local file for MODEL.WEIGHTS ``path``, downloading (once, into the cache) when it is remote.

    Raises FileNotFoundError for a missing local file, IsADirectoryError for a directory, and
    WeightsDownloadError, naming the URL and the manual way out, when a download fails.
    """
    path = str(path).strip()
    url = weights_url(path)
    if url is None:
        local = os.path.expanduser(path)
        if os.path.isdir(local):
            raise IsADirectoryError(f"Weights file '{path}' is a directory, not a file{_files_inside(local)}.")
        if not os.path.isfile(local):
            raise FileNotFoundError(f"Weights file not found: '{path}' (MODEL.WEIGHTS or --weights).")
        return local
    cache_dir = cache_dir if cache_dir is not None else weights_cache_dir()
    try:
        local = weights_path_manager().get_local_path(path, cache_dir=cache_dir)
    except OSError as error:  # urllib's URLError/HTTPError are OSErrors
        reason = getattr(error, "reason", None) or error
        raise WeightsDownloadError(
            f"Cannot download weights '{path}' from {url} ({reason}). If this machine is offline, "
            f"download {url} on one that is not and set MODEL.WEIGHTS to the local path of the file."
        ) from None
    logger.info(f"Weights '{path}' are at {local}")
    return local
