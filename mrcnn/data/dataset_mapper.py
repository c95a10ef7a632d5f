"""The default mapper: one dataset dict → the dict the model reads (image tensor + Instances)."""

import copy
import logging
from typing import Any, Dict, List

import numpy as np
import torch

from mrcnn.config import configurable
from mrcnn.utils.registry import Registry

from . import detection_utils as utils
from . import transforms as T

__all__ = ["MAPPER_REGISTRY", "DatasetMapper", "build_mapper"]

logger = logging.getLogger(__name__)

MAPPER_REGISTRY = Registry("MAPPER")
MAPPER_REGISTRY.__doc__ = """Dataset mappers, chosen by DATALOADER.MAPPER_NAME; called as ``cls(cfg, is_train)``."""


@MAPPER_REGISTRY.register()
class DatasetMapper:
    """Read the image, augment it with its annotations and build the model's input dict.

    Output: ``{"image": (C, H, W) uint8 tensor in image_format, "height", "width"`` (the
    original size, to which predictions are rescaled), ``"image_id", "file_name"`` and, in
    training, ``"instances"`` (gt_boxes, gt_classes, gt_masks)``}``. Crowd annotations are
    dropped in training. A missing or corrupt image raises ImageLoadError naming the file.
    """

    @configurable
    def __init__(
        self,
        is_train: bool,
        *,
        augmentations: List[T.Augmentation],
        image_format: str = "BGR",
        use_instance_mask: bool = True,
        instance_mask_format: str = "polygon",
        recompute_boxes: bool = False,
    ):
        if recompute_boxes and not use_instance_mask:
            raise ValueError("DatasetMapper: recompute_boxes needs use_instance_mask")
        if instance_mask_format not in ("polygon", "bitmask"):
            raise ValueError(
                f"DatasetMapper: instance_mask_format must be 'polygon' or 'bitmask', got '{instance_mask_format}'"
            )
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.use_instance_mask = use_instance_mask
        self.instance_mask_format = instance_mask_format
        self.recompute_boxes = recompute_boxes
        logger.info(f"DatasetMapper ({'training' if is_train else 'inference'}) augmentations: {augmentations}")

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> Dict[str, Any]:
        """Constructor arguments from INPUT.* and MODEL.MASK_ON."""
        return {
            "is_train": is_train,
            "augmentations": utils.build_augmentation(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "use_instance_mask": cfg.MODEL.MASK_ON,
            "instance_mask_format": cfg.INPUT.MASK_FORMAT,
            # a crop cuts masks, so their new extent is the tightest box
            "recompute_boxes": bool(is_train and cfg.INPUT.CROP.ENABLED and cfg.MODEL.MASK_ON),
        }

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        """Map one dataset dict (not modified) to a model input dict."""
        dataset_dict = copy.deepcopy(dataset_dict)
        image = utils.read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        original_shape = image.shape[:2]

        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        image_shape = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))

        if not self.is_train:
            dataset_dict.pop("annotations", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            utils.check_mask_sizes(dataset_dict, original_shape)
            self._transform_annotations(dataset_dict, transforms, image_shape)
        return dataset_dict

    def _transform_annotations(self, dataset_dict: Dict[str, Any], transforms: T.TransformList, image_shape) -> None:
        annotations = []
        for annotation in dataset_dict.pop("annotations"):
            if annotation.get("iscrowd", 0) != 0:
                continue
            if not self.use_instance_mask:
                annotation.pop("segmentation", None)
            annotation = utils.transform_instance_annotations(annotation, transforms, image_shape)
            if self.recompute_boxes and "segmentation" in annotation:
                annotation["bbox"] = utils.segmentation_bounding_box(annotation["segmentation"])
            # filtering here, on numpy data, avoids many small tensor operations per image
            if utils.annotation_is_nonempty(annotation):
                annotations.append(annotation)
        dataset_dict["instances"] = utils.annotations_to_instances(
            annotations, image_shape, mask_format=self.instance_mask_format
        )


def build_mapper(cfg, is_train: bool) -> Any:
    """The mapper DATALOADER.MAPPER_NAME names, built from ``cfg``."""
    return MAPPER_REGISTRY.get(cfg.DATALOADER.MAPPER_NAME)(cfg, is_train)
