"""Random brightness, contrast, saturation and hue changes, in the spirit of torchvision's
RandomPhotometricDistort (which the original project trained with).

Each of the four changes happens independently with probability ``prob``, with a factor drawn
uniformly from its range: brightness multiplies pixel values; contrast blends with the image's
mean grey level (ITU-R 601 luma); saturation blends each pixel with its own grey level; hue
rotates colours about the grey axis by the drawn fraction of a turn (so [-0.05, 0.05] is ±18°;
the luminance-preserving rotation, a close stand-in for shifting HSV hue). Contrast goes
either first or last (a fair coin), as in torchvision. Optionally the channels are permuted.

All four changes are linear in the pixel values, so they are composed into one affine colour
matrix and applied in a single pass by Pillow, with rounding and clipping to [0, 255] once at
the end (torchvision clips after each step; the results differ only where a middle step
saturates). Boxes and masks are untouched. ``image_format`` ("RGB" or "BGR") says which
channel is which.
"""

from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageStat

from .augmentation import Augmentation
from .transform import NoOpTransform, Transform

__all__ = ["PhotometricDistortTransform", "RandomPhotometricDistort"]

_LUMA_RGB = np.array([0.299, 0.587, 0.114])  # ITU-R 601 grey level


def _hue_rotation(angle: float) -> np.ndarray:
    """(3, 3) RGB matrix rotating colours about the grey axis by ``angle`` radians, keeping luminance.

    The standard luminance-preserving hue rotation (as in the SVG/CSS hue-rotate filter).
    """
    cos, sin = np.cos(angle), np.sin(angle)
    lum = np.array([0.213, 0.715, 0.072])
    return (
        np.outer(np.ones(3), lum)
        + cos * (np.eye(3) - np.outer(np.ones(3), lum))
        + sin * np.array([[-0.213, -0.715, 0.928], [0.143, 0.140, -0.283], [-0.787, 0.715, 0.072]])
    )


class PhotometricDistortTransform(Transform):
    """Apply fixed brightness/contrast/saturation factors, a hue shift and a channel order."""

    def __init__(
        self,
        brightness: float = 1.0,
        contrast: float = 1.0,
        saturation: float = 1.0,
        hue: float = 0.0,
        contrast_first: bool = True,
        channel_order: Optional[Sequence[int]] = None,
        image_format: str = "RGB",
    ):
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"photometric distortion needs an RGB or BGR image, got format '{image_format}'")
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self.contrast_first, self.channel_order, self.image_format = contrast_first, channel_order, image_format

    def color_matrix(self, mean_rgb: np.ndarray) -> np.ndarray:
        """The (3, 4) affine map [A | b] on RGB values that this transform applies, given the image mean."""
        luma = _LUMA_RGB
        matrix, offset = np.eye(3), np.zeros(3)

        def then(a: np.ndarray, b: np.ndarray) -> None:
            nonlocal matrix, offset
            matrix, offset = a @ matrix, a @ offset + b

        def contrast() -> None:
            grey_mean = float(luma @ (matrix @ mean_rgb + offset))
            then(self.contrast * np.eye(3), np.full(3, (1 - self.contrast) * grey_mean))

        then(self.brightness * np.eye(3), np.zeros(3))
        if self.contrast_first:
            contrast()
        then(self.saturation * np.eye(3) + (1 - self.saturation) * np.outer(np.ones(3), luma), np.zeros(3))
        then(_hue_rotation(2 * np.pi * self.hue), np.zeros(3))
        if not self.contrast_first:
            contrast()
        return np.concatenate([matrix, offset[:, None]], axis=1)

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"photometric distortion needs an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
        pil = Image.fromarray(np.ascontiguousarray(image))
        mean = np.array(ImageStat.Stat(pil).mean, dtype=np.float64)
        if self.image_format == "BGR":
            mean = mean[::-1]
        affine = self.color_matrix(mean)
        if self.image_format == "BGR":  # act on BGR data directly: reverse the matrix's rows and columns
            affine = np.concatenate([affine[::-1, 2::-1], affine[::-1, 3:]], axis=1)
        if not np.allclose(affine, np.eye(3, 4)):
            # one pass in C; Pillow rounds and clips to [0, 255]
            pil = pil.convert("RGB", tuple(float(v) for v in affine.reshape(-1)))
        out = np.asarray(pil)
        if self.channel_order is not None:
            out = out[..., list(self.channel_order)]
        return np.ascontiguousarray(out)

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

    def __init__(
        self,
        brightness: Sequence[float] = (0.875, 1.125),
        contrast: Sequence[float] = (0.5, 1.5),
        saturation: Sequence[float] = (0.5, 1.5),
        hue: Sequence[float] = (-0.05, 0.05),
        prob: float = 0.5,
        channel_shuffle_prob: float = 0.0,
        image_format: str = "RGB",
    ):
        for name, value in (
            ("brightness", brightness),
            ("contrast", contrast),
            ("saturation", saturation),
            ("hue", hue),
        ):
            if len(value) != 2 or value[0] > value[1]:
                raise ValueError(f"RandomPhotometricDistort: {name} must be a range (low, high), got {list(value)}")
        if not all(v >= 0 for v in (*brightness, *contrast, *saturation)):
            raise ValueError("RandomPhotometricDistort: brightness/contrast/saturation factors must be ≥ 0")
        if not -0.5 <= hue[0] <= hue[1] <= 0.5:
            raise ValueError(f"RandomPhotometricDistort: hue range must lie in [-0.5, 0.5], got {list(hue)}")
        self.brightness, self.contrast, self.saturation, self.hue = (
            tuple(brightness),
            tuple(contrast),
            tuple(saturation),
            tuple(hue),
        )
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
