"""Evaluation: the evaluator interface, COCO box/mask AP, and the inference loop that feeds evaluators."""

from .build import EVALUATOR_REGISTRY, build_evaluator
from .coco_backends import COCO_EVAL_BACKENDS, get_coco_eval_backend, register_coco_eval_backend
from .coco_conversion import convert_to_coco_dict, convert_to_coco_json
from .coco_evaluation import COCOEvaluator, instances_to_coco_json
from .evaluator import DatasetEvaluator, DatasetEvaluators, inference_context, inference_on_dataset, inference_speed
from .results_format import flatten_results_dict, json_safe, print_csv_format

__all__ = [
    "COCOEvaluator",
    "COCO_EVAL_BACKENDS",
    "DatasetEvaluator",
    "DatasetEvaluators",
    "EVALUATOR_REGISTRY",
    "build_evaluator",
    "convert_to_coco_dict",
    "convert_to_coco_json",
    "flatten_results_dict",
    "get_coco_eval_backend",
    "inference_context",
    "inference_on_dataset",
    "inference_speed",
    "instances_to_coco_json",
    "json_safe",
    "print_csv_format",
    "register_coco_eval_backend",
]
