"""Printing, flattening and json-safe copies of evaluation results ``{task: {metric: value}}``."""

import logging
import math
from collections import OrderedDict
from typing import Any, Dict, Mapping

__all__ = ["print_csv_format", "flatten_results_dict", "json_safe"]

logger = logging.getLogger(__name__)

# Key types that json writes as object keys; any other key is written as its str().
_JSON_KEY_TYPES = (str, int, float, bool, type(None))


def print_csv_format(results: Mapping[str, Any]) -> None:
    """Log each task's summary metrics (per-class "AP-" entries left out) as copy-pasteable csv lines."""
    if not isinstance(results, Mapping):
        raise TypeError(f"print_csv_format expects a dict of results, got {type(results).__name__}")
    for task, metrics in results.items():
        if not isinstance(metrics, Mapping):
            logger.info(f"copypaste: {task}={metrics}")
            continue
        summary = [(name, value) for name, value in metrics.items() if "-" not in name]
        logger.info(f"copypaste: Task: {task}")
        logger.info("copypaste: " + ",".join(name for name, _ in summary))
        logger.info("copypaste: " + ",".join(_format_number(value) for _, value in summary))


def _format_number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def flatten_results_dict(results: Mapping[str, Any]) -> Dict[str, Any]:
    """Nested dicts flattened with "/" joined keys: ``{"bbox": {"AP": 1}}`` → ``{"bbox/AP": 1}``.

    Values are kept as they are (numbers, strings, tensors...); a caller that needs scalars
    picks the numbers out itself.
    """
    flat: Dict[str, Any] = OrderedDict()
    for key, value in results.items():
        if isinstance(value, Mapping):
            for sub_key, sub_value in flatten_results_dict(value).items():
                flat[f"{key}/{sub_key}"] = sub_value
        else:
            flat[key] = value
    return flat


def json_safe(results: Any) -> Any:
    """A copy of ``results`` that strict json can hold: NaN and infinite floats become None,
    numpy and torch scalars plain numbers, tuples lists, and keys json cannot write their str().

    COCO metrics are NaN where nothing can be measured (a class without ground truth); Python's
    json module would write them as the non-standard token ``NaN``.
    """
    if isinstance(results, Mapping):
        return OrderedDict(
            (key if isinstance(key, _JSON_KEY_TYPES) else str(key), json_safe(value)) for key, value in results.items()
        )
    if isinstance(results, (list, tuple)):
        return [json_safe(value) for value in results]
    if isinstance(results, float) and not math.isfinite(results):
        return None
    if hasattr(results, "item") and callable(results.item) and getattr(results, "ndim", None) == 0:
        return json_safe(results.item())  # numpy or torch scalar
    return results
