"""Random brightness, contrast, saturation and hue changes, in the spirit of torchvision's
RandomPhotometricDistort (which the original project trained with).

Each of the four changes happens independently with probability ``prob``, with a factor drawn
uniformly from its range: brightness multiplies pixel values; contrast blends with the image's
mean grey level; saturation blends each pixel with its own grey level; hue rotates the hue
circle by the drawn fraction (so [-0.05, 0.05] is ±18°). Contrast goes either first or last
(a fair coin), as in torchvision. Optionally the channels are permuted. Boxes and masks are
untouched. ``image_format`` ("RGB" or "BGR") tells which channel is which, for grey and hue.
"""
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from .augmentation import Augmentation
from .transform import NoOpTransform, Transform

__all__ = ["PhotometricDistortTransform", "RandomPhotometricDistort"]

_GREY_WEIGHTS_RGB = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class PhotometricDistortTransform(Transform):
    """Apply fixed brightness/contrast/saturation factors, a hue shift and a channel order."""

    def __init__(self, brightness: float = 1.0, contrast: float = 1.0, saturation: float = 1.0, hue: float = 0.0,
                 contrast_first: bool = True, channel_order: Optional[Sequence[int]] = None,
                 image_format: str = "RGB"):
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"photometric distortion needs an RGB or BGR image, got format '{image_format}'")
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self.contrast_first, self.channel_order, self.image_format = contrast_first, channel_order, image_format

    def _grey(self, image: np.ndarray) -> np.ndarray:
        weights = _GREY_WEIGHTS_RGB if self.image_format == "RGB" else _GREY_WEIGHTS_RGB[::-1]
        return image @ weights

    def _adjust_contrast(self, image: np.ndarray) -> np.ndarray:
        if self.contrast == 1.0:
            return image
        mean = float(self._grey(image).mean())
        return np.clip(mean + self.contrast * (image - mean), 0, 255)

    def _adjust_hue(self, image: np.ndarray) -> np.ndarray:
        if self.hue == 0.0:
            return image
        rgb = image if self.image_format == "RGB" else image[..., ::-1]
        hsv = np.array(Image.fromarray(np.round(rgb).astype(np.uint8), mode="RGB").convert("HSV"))
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + int(round(self.hue * 256))) % 256
        rgb = np.asarray(Image.fromarray(hsv, mode="HSV").convert("RGB"), dtype=np.float32)
        return rgb if self.image_format == "RGB" else rgb[..., ::-1]

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"photometric distortion needs an (H, W, 3) image, got shape {image.shape}")
        out = image.astype(np.float32)
        if self.brightness != 1.0:
            out = np.clip(out * self.brightness, 0, 255)
        if self.contrast_first:
            out = self._adjust_contrast(out)
        if self.saturation != 1.0:
            grey = self._grey(out)[..., None]
            out = np.clip(grey + self.saturation * (out - grey), 0, 255)
        out = self._adjust_hue(out)
        if not self.contrast_first:
            out = self._adjust_contrast(out)
        if self.channel_order is not None:
            out = out[..., list(self.channel_order)]
        return np.round(out).astype(np.uint8)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_polygons(self, polygons):
        return list(polygons)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> Transform:
        return NoOpTransform()


class RandomPhotometricDistort(Augmentation):
    """Draw a PhotometricDistortTransform: each change on with probability ``prob``."""

    def __init__(self, brightness: Sequence[float] = (0.875, 1.125), contrast: Sequence[float] = (0.5, 1.5),
                 saturation: Sequence[float] = (0.5, 1.5), hue: Sequence[float] = (-0.05, 0.05),
                 prob: float = 0.5, channel_shuffle_prob: float = 0.0, image_format: str = "RGB"):
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation),
                            ("hue", hue)):
            if len(value) != 2 or value[0] > value[1]:
                raise ValueError(f"RandomPhotometricDistort: {name} must be a range (low, high), got {list(value)}")
        if not all(v >= 0 for v in (*brightness, *contrast, *saturation)):
            raise ValueError("RandomPhotometricDistort: brightness/contrast/saturation factors must be ≥ 0")
        if not -0.5 <= hue[0] <= hue[1] <= 0.5:
            raise ValueError(f"RandomPhotometricDistort: hue range must lie in [-0.5, 0.5], got {list(hue)}")
        self.brightness, self.contrast, self.saturation, self.hue = (tuple(brightness), tuple(contrast),
                                                                     tuple(saturation), tuple(hue))
        self.prob, self.channel_shuffle_prob, self.image_format = prob, channel_shuffle_prob, image_format

    def _draw(self, value_range, identity: float) -> float:
        return float(self._rand_range(*value_range)) if self._rand_range() < self.prob else identity

    def get_transform(self, image: np.ndarray) -> Transform:
        params = dict(
            brightness=self._draw(self.brightness, 1.0),
            contrast=self._draw(self.contrast, 1.0),
            saturation=self._draw(self.saturation, 1.0),
            hue=self._draw(self.hue, 0.0),
            contrast_first=bool(self._rand_range() < 0.5),
        )
        if self.channel_shuffle_prob > 0 and self._rand_range() < self.channel_shuffle_prob:
            params["channel_order"] = np.random.permutation(3).tolist()
        return PhotometricDistortTransform(**params, image_format=self.image_format)
