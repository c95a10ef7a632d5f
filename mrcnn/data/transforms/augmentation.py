"""Augmentations decide random parameters from the input; the Transform they return applies them.

Splitting the two lets one decision (say, "flip this image") be applied identically to the
image, its boxes, polygons and bitmasks, and be inverted later for predictions.
Randomness comes from numpy's global generator, which the data loader seeds per worker.
"""

from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
from fvcore.transforms import transform as fvcore_transforms

from .transform import Transform, TransformList

__all__ = ["Augmentation", "AugInput", "AugmentationList", "apply_augmentations"]


class Augmentation:
    """Base class: ``get_transform(*inputs)`` returns a Transform; ``input_args`` names the inputs it reads."""

    input_args: Tuple[str, ...] = ("image",)

    def get_transform(self, *args: Any) -> Transform:
        """Decide the parameters for these inputs and return the Transform that applies them."""
        raise NotImplementedError

    def __call__(self, aug_input: "AugInput") -> Transform:
        """Decide a transform from ``aug_input``, apply it in place and return it."""
        args = [getattr(aug_input, name) for name in self.input_args]
        transform = self.get_transform(*args)
        if not isinstance(transform, fvcore_transforms.Transform):  # ours, or any other fvcore Transform
            raise TypeError(
                f"{type(self).__name__}.get_transform must return a Transform, got {type(transform).__name__}"
            )
        aug_input.transform(transform)
        return transform

    @staticmethod
    def _rand_range(low: float = 0.0, high: float = 1.0, size: Optional[int] = None) -> Union[float, np.ndarray]:
        return np.random.uniform(low, high, size)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class AugInput:
    """What augmentations read and change: an HWC uint8 image and optional XYXY boxes and (H, W) mask."""

    def __init__(self, image: np.ndarray, *, boxes: Optional[np.ndarray] = None, sem_seg: Optional[np.ndarray] = None):
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
            raise ValueError(
                f"AugInput expects an (H, W) or (H, W, C) numpy image, got "
                f"{getattr(image, 'shape', type(image).__name__)}"
            )
        self.image, self.boxes, self.sem_seg = image, boxes, sem_seg

    def transform(self, transform: Transform) -> None:
        """Apply ``transform`` to every field present."""
        self.image = transform.apply_image(self.image)
        if self.boxes is not None:
            self.boxes = transform.apply_box(self.boxes)
        if self.sem_seg is not None:
            self.sem_seg = transform.apply_segmentation(self.sem_seg)


class AugmentationList(Augmentation):
    """Several augmentations in order; the result is their TransformList."""

    def __init__(self, augmentations: Sequence[Augmentation]):
        self.augmentations = list(augmentations)

    def __call__(self, aug_input: AugInput) -> TransformList:
        return TransformList([aug(aug_input) for aug in self.augmentations])

    def __repr__(self) -> str:
        return f"AugmentationList({self.augmentations!r})"


def apply_augmentations(
    augmentations: Sequence[Augmentation], inputs: Union[np.ndarray, AugInput]
) -> Tuple[Union[np.ndarray, AugInput], TransformList]:
    """Apply augmentations to an image (returns the new image) or an AugInput (changed in place)."""
    aug_input = AugInput(inputs) if isinstance(inputs, np.ndarray) else inputs
    transforms = AugmentationList(augmentations)(aug_input)
    return (aug_input.image if isinstance(inputs, np.ndarray) else aug_input), transforms
