"""Does the model's class count fit a dataset? Checked where a loader or evaluator meets its metadata."""

import logging
from typing import Any, List, Optional, Sequence, Set, Tuple, Union

from .catalog import MetadataCatalog

__all__ = ["dataset_num_classes", "check_num_classes"]

logger = logging.getLogger(__name__)

NUM_CLASSES_KEY = "MODEL.ROI_HEADS.NUM_CLASSES"
# (dataset, num_classes) pairs already warned about: loaders and evaluators meet the same pair often
_warned: Set[Tuple[str, int]] = set()


def dataset_num_classes(dataset_name: str, dataset_dicts: Optional[List[dict]] = None) -> Optional[int]:
    """The class count of ``dataset_name``: len(thing_classes) from its metadata, else one more than the
    largest category_id in ``dataset_dicts``; None when neither says."""
    classes = MetadataCatalog.get(dataset_name).get("thing_classes")
    if classes is not None:
        return len(classes)
    if dataset_dicts:
        category_ids = [a["category_id"] for d in dataset_dicts for a in d.get("annotations", [])]
        if category_ids:
            return int(max(category_ids)) + 1
    return None


def check_num_classes(
    num_classes: int, dataset_names: Union[str, Sequence[str]], dataset_dicts: Optional[List[dict]] = None
) -> None:
    """Raise ValueError if a dataset has more classes than the model's ``num_classes``; warn (once) if fewer.

    A model with fewer classes cannot learn or predict the others (their annotations would
    index past its classifier); more is legitimate (e.g. torchvision's 90 COCO ids for 80
    classes) but often a forgotten NUM_CLASSES.
    """
    names = [dataset_names] if isinstance(dataset_names, str) else list(dataset_names)
    for name in names:
        count = dataset_num_classes(name, dataset_dicts)
        if count is None or count == num_classes:
            continue
        classes: Any = MetadataCatalog.get(name).get("thing_classes")
        described = f"{count} classes" if classes is not None else f"category ids up to {count - 1}"
        if count > num_classes:
            raise ValueError(
                f"Dataset '{name}' has {described} but {NUM_CLASSES_KEY} is {num_classes}: the model could not "
                f"learn or predict classes {num_classes}..{count - 1}. Set {NUM_CLASSES_KEY} {count}."
            )
        if (name, num_classes) not in _warned:
            _warned.add((name, num_classes))
            logger.warning(
                f"{NUM_CLASSES_KEY} is {num_classes} but dataset '{name}' has {described}; the model has "
                f"{num_classes - count} class(es) the dataset never shows. Intended only when the weights were "
                f"trained with more classes."
            )
