"""Implementations of the COCO metric, chosen by name (config key TEST.EVAL_BACKEND).

Two backends compute the same numbers:

- ``"pycocotools"`` (default): the reference COCO API. Its per-image matching is pure
  Python and takes minutes on COCO-sized output.
- ``"faster_coco_eval"``: the `faster-coco-eval` package, whose matching and accumulation
  run in C++ (and mask IoUs on several threads). It is an optional dependency::

      pip install -e .[fast-eval]        # or: pip install faster-coco-eval

  then set ``TEST.EVAL_BACKEND faster_coco_eval`` (or pass ``backend="faster_coco_eval"`` to
  `COCOEvaluator`). Its precision tables equal pycocotools' (the test suite checks every
  metric to 1e-6); it is several times faster on large outputs. Measure both on your own
  machine with `mrcnn.benchmark.time_coco_evaluation`.

A backend reads the ground-truth json once (`load_ground_truth`) and returns, for a list of
COCO results, the precision table ``[T, R, K, A, M]`` that COCO's summary is computed from:
T IoU thresholds (0.50:0.05:0.95), R recall thresholds (101), K categories (ascending
dataset ids), A area ranges (all, small, medium, large), M max-detections settings.
"""

import contextlib
import io
import logging
from typing import Any, Dict, List, Optional, Sequence, Type

import numpy as np

__all__ = ["COCO_EVAL_BACKENDS", "COCOEvalBackend", "get_coco_eval_backend", "register_coco_eval_backend"]

logger = logging.getLogger(__name__)

# name (the value of TEST.EVAL_BACKEND) -> backend class
COCO_EVAL_BACKENDS: Dict[str, Type["COCOEvalBackend"]] = {}


def register_coco_eval_backend(name: str):
    """Class decorator that makes a `COCOEvalBackend` selectable as TEST.EVAL_BACKEND ``name``."""

    def decorator(backend_class):
        if name in COCO_EVAL_BACKENDS:
            raise ValueError(f"A COCO evaluation backend named '{name}' is already registered")
        COCO_EVAL_BACKENDS[name] = backend_class
        return backend_class

    return decorator


class COCOEvalBackend:
    """One implementation of the COCO metric: load ground truth, evaluate results."""

    name = ""

    def load_ground_truth(self, json_file: str) -> Any:
        """Read a COCO instances json into this backend's ground-truth object."""
        raise NotImplementedError

    def category_ids(self, coco_gt: Any) -> List[int]:
        """Dataset category ids of the ground truth, ascending (the K axis of the precision table)."""
        return sorted(coco_gt.getCatIds())

    def image_ids(self, coco_gt: Any) -> List[Any]:
        """Image ids of the ground truth."""
        return list(coco_gt.getImgIds())

    def precision(
        self,
        coco_gt: Any,
        results: List[Dict[str, Any]],
        iou_type: str,
        image_ids: Sequence[Any],
        max_dets_per_image: int = 100,
    ) -> np.ndarray:
        """Precision table ``[T, R, K, A, M]`` of ``results`` (non-empty) on the given images."""
        raise NotImplementedError


def _max_dets(max_dets_per_image: int) -> List[int]:
    # COCO's standard setting is [1, 10, 100]; the last entry is what AP is reported at
    return [1, 10, max_dets_per_image] if max_dets_per_image >= 10 else [1, max_dets_per_image]


@register_coco_eval_backend("pycocotools")
class PycocotoolsBackend(COCOEvalBackend):
    """The reference implementation (pycocotools.cocoeval.COCOeval)."""

    name = "pycocotools"

    def load_ground_truth(self, json_file: str) -> Any:
        from pycocotools.coco import COCO

        with contextlib.redirect_stdout(io.StringIO()):  # it prints progress lines
            return COCO(json_file)

    def precision(self, coco_gt, results, iou_type, image_ids, max_dets_per_image=100):
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco_gt.loadRes(results)
            coco_eval = COCOeval(coco_gt, coco_dt, iou_type)
            coco_eval.params.imgIds = list(image_ids)
            coco_eval.params.maxDets = _max_dets(max_dets_per_image)
            coco_eval.evaluate()
            coco_eval.accumulate()
        return np.asarray(coco_eval.eval["precision"])


@register_coco_eval_backend("faster_coco_eval")
class FasterCocoEvalBackend(COCOEvalBackend):
    """faster-coco-eval's C++ COCOeval_faster (optional dependency, extra ``fast-eval``)."""

    name = "faster_coco_eval"

    def __init__(self) -> None:
        try:
            import faster_coco_eval  # noqa: F401
        except ImportError:
            raise ImportError(
                "TEST.EVAL_BACKEND 'faster_coco_eval' needs the faster-coco-eval package: "
                "pip install faster-coco-eval (or pip install -e .[fast-eval])"
            ) from None

    def load_ground_truth(self, json_file: str) -> Any:
        from faster_coco_eval import COCO

        return COCO(json_file, print_function=logger.debug)

    def precision(self, coco_gt, results, iou_type, image_ids, max_dets_per_image=100):
        from faster_coco_eval import COCOeval_faster

        coco_dt = coco_gt.loadRes(results)
        coco_eval = COCOeval_faster(coco_gt, coco_dt, iou_type, print_function=logger.debug)
        coco_eval.params.imgIds = list(image_ids)
        coco_eval.params.maxDets = _max_dets(max_dets_per_image)
        coco_eval.evaluate()
        coco_eval.accumulate()
        return np.asarray(coco_eval.eval["precision"])


def get_coco_eval_backend(name: Optional[str]) -> COCOEvalBackend:
    """The backend registered under ``name`` ("" or None gives pycocotools)."""
    name = name or "pycocotools"
    if name not in COCO_EVAL_BACKENDS:
        raise ValueError(
            f"Unknown COCO evaluation backend '{name}' (TEST.EVAL_BACKEND); "
            f"available: {', '.join(sorted(COCO_EVAL_BACKENDS))}"
        )
    return COCO_EVAL_BACKENDS[name]()
