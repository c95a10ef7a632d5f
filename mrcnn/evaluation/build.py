"""The evaluator registry and `build_evaluator`, which picks an evaluator for a dataset."""

import os
from typing import Optional

from mrcnn.data.catalog import MetadataCatalog
from mrcnn.utils.registry import Registry

from .coco_evaluation import COCOEvaluator
from .evaluator import DatasetEvaluator

__all__ = ["EVALUATOR_REGISTRY", "build_evaluator"]

EVALUATOR_REGISTRY = Registry("EVALUATOR")
EVALUATOR_REGISTRY.__doc__ = """
Evaluators by name. A registered object is called as ``obj(cfg, dataset_name, output_dir=dir)``
and returns a `DatasetEvaluator` (a class whose ``__init__`` is ``@configurable`` qualifies).
The name comes from TEST.EVALUATOR, or else from the dataset's ``evaluator_type`` metadata.
"""

EVALUATOR_REGISTRY.register()(COCOEvaluator)


@EVALUATOR_REGISTRY.register()
def coco(cfg, dataset_name: str, output_dir: Optional[str] = None) -> DatasetEvaluator:
    """The evaluator of datasets whose evaluator_type is "coco": `COCOEvaluator` from the config."""
    return COCOEvaluator(cfg, dataset_name, output_dir=output_dir)


def build_evaluator(cfg, dataset_name: str, output_dir: Optional[str] = None) -> DatasetEvaluator:
    """The evaluator for ``dataset_name``: TEST.EVALUATOR if set, else the dataset's ``evaluator_type``.

    ``output_dir`` defaults to ``OUTPUT_DIR/inference/<dataset_name>``, so several test sets do not
    overwrite each other's result files. A dataset with neither raises NotImplementedError.
    """
    name = cfg.TEST.EVALUATOR or MetadataCatalog.get(dataset_name).get("evaluator_type")
    if not name:
        # NotImplementedError, as detectron2's trainer raises: callers may fall back to timing only
        raise NotImplementedError(
            f"No evaluator for dataset '{dataset_name}': set TEST.EVALUATOR or the dataset's evaluator_type "
            f"metadata to one of: {', '.join(EVALUATOR_REGISTRY.names())}"
        )
    if output_dir is None:
        output_dir = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
    evaluator = EVALUATOR_REGISTRY.get(name)(cfg, dataset_name, output_dir=output_dir)
    if not isinstance(evaluator, DatasetEvaluator):
        raise TypeError(f"Evaluator '{name}' built a {type(evaluator).__name__}, not a DatasetEvaluator")
    return evaluator
