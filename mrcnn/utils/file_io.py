"""``PathManager`` where detectron2 users import it from (``utils.file_io``): iopath's file access
for local paths, http(s):// URLs (downloaded once into iopath's cache) and ``detectron2://`` files
of detectron2's model zoo.

    from mrcnn.utils.file_io import PathManager
    with PathManager.open("datasets/coco/annotations/instances_val2017.json") as f: ...
    local = PathManager.get_local_path("detectron2://ImageNetPretrained/MSRA/R-50.pkl")
"""

from typing import Any, List

from iopath.common.file_io import HTTPURLHandler, OneDrivePathHandler, PathHandler
from iopath.common.file_io import PathManager as PathManagerBase

__all__ = ["PathManager", "PathHandler"]

_MODEL_ZOO_URL = "https://dl.fbaipublicfiles.com/detectron2/"  # where detectron2:// paths point


class _Detectron2ZooHandler(PathHandler):
    """``detectron2://<path>``: the file at <path> of detectron2's model zoo, through the URL handler."""

    PREFIX = "detectron2://"

    def _get_supported_prefixes(self) -> List[str]:
        return [self.PREFIX]

    def _url(self, path: str) -> str:
        return _MODEL_ZOO_URL + path[len(self.PREFIX) :].lstrip("/")

    def _get_local_path(self, path: str, **kwargs: Any) -> str:
        return PathManager.get_local_path(self._url(path), **kwargs)

    def _open(self, path: str, mode: str = "r", **kwargs: Any):
        return PathManager.open(self._url(path), mode, **kwargs)


PathManager = PathManagerBase()
PathManager.register_handler(HTTPURLHandler())
PathManager.register_handler(OneDrivePathHandler())
PathManager.register_handler(_Detectron2ZooHandler())
