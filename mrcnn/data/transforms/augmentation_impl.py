"""Geometric augmentations: shortest-edge resize, fixed resize, flips and random crops."""

import sys
from typing import Sequence, Tuple, Union

import numpy as np
from PIL import Image

from mrcnn.utils.resize_shape import shortest_edge_resized_shape

from .augmentation import Augmentation
from .transform import CropTransform, HFlipTransform, NoOpTransform, ResizeTransform, Transform, VFlipTransform

__all__ = ["ResizeShortestEdge", "Resize", "RandomFlip", "RandomCrop"]


class ResizeShortestEdge(Augmentation):
    """Scale so the shorter side is a sampled length, capped so the longer side is ≤ ``max_size``.

    ``sample_style="choice"`` picks one of ``short_edge_length``; ``"range"`` draws an integer
    in [min, max] of it. A length of 0 leaves the image alone. Images are resized with Pillow's
    bilinear filter (which smooths when shrinking), masks with nearest neighbour.
    """

    def __init__(
        self,
        short_edge_length: Union[int, Sequence[int]],
        max_size: int = sys.maxsize,
        sample_style: str = "range",
        interp: int = Image.BILINEAR,
    ):
        if sample_style not in ("range", "choice"):
            raise ValueError(f"ResizeShortestEdge: sample_style must be 'range' or 'choice', got '{sample_style}'")
        lengths = (short_edge_length,) if isinstance(short_edge_length, int) else tuple(short_edge_length)
        if not lengths:
            raise ValueError("ResizeShortestEdge: short_edge_length is empty")
        if sample_style == "range" and len(lengths) == 1:
            lengths = (lengths[0], lengths[0])
        if sample_style == "range" and len(lengths) != 2:
            raise ValueError(f"ResizeShortestEdge: 'range' needs two lengths (min, max), got {lengths}")
        self.short_edge_length, self.max_size, self.sample_style, self.interp = lengths, max_size, sample_style, interp

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        if self.sample_style == "range":
            size = int(np.random.randint(self.short_edge_length[0], self.short_edge_length[1] + 1))
        else:
            size = int(np.random.choice(self.short_edge_length))
        if size == 0:
            return NoOpTransform()
        new_h, new_w = self.get_output_shape(h, w, size, self.max_size)
        return ResizeTransform(h, w, new_h, new_w, self.interp)

    @staticmethod
    def get_output_shape(h: int, w: int, short_edge_length: int, max_size: int) -> Tuple[int, int]:
        """(new_h, new_w) for an h x w input (`mrcnn.utils.resize_shape.shortest_edge_resized_shape`)."""
        return shortest_edge_resized_shape(h, w, short_edge_length, max_size)


class Resize(Augmentation):
    """Resize to a fixed (height, width)."""

    def __init__(self, shape: Union[int, Tuple[int, int]], interp: int = Image.BILINEAR):
        self.shape = (shape, shape) if isinstance(shape, int) else tuple(shape)
        self.interp = interp

    def get_transform(self, image: np.ndarray) -> Transform:
        return ResizeTransform(image.shape[0], image.shape[1], self.shape[0], self.shape[1], self.interp)


class RandomFlip(Augmentation):
    """Flip horizontally or vertically (one direction per instance) with probability ``prob``."""

    def __init__(self, prob: float = 0.5, *, horizontal: bool = True, vertical: bool = False):
        if horizontal == vertical:
            raise ValueError(
                "RandomFlip flips one direction: set exactly one of horizontal / vertical "
                "(use two RandomFlip augmentations for both)"
            )
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"RandomFlip: prob must be in [0, 1], got {prob}")
        self.prob, self.horizontal, self.vertical = prob, horizontal, vertical

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        if self._rand_range() >= self.prob:
            return NoOpTransform()
        return HFlipTransform(w) if self.horizontal else VFlipTransform(h)


class RandomCrop(Augmentation):
    """Crop a random window whose size follows ``crop_type``.

    - "relative": (H * crop_size[0], W * crop_size[1])
    - "relative_range": uniformly in [crop_size[0], 1] x [crop_size[1], 1] of (H, W)
    - "absolute": (min(H, crop_size[0]), min(W, crop_size[1])) pixels
    - "absolute_range": integers in [crop_size[0], crop_size[1]] for both sides, capped by the image
    """

    TYPES = ("relative", "relative_range", "absolute", "absolute_range")

    def __init__(self, crop_type: str, crop_size: Sequence[float]):
        if crop_type not in self.TYPES:
            raise ValueError(f"RandomCrop: crop_type must be one of {self.TYPES}, got '{crop_type}'")
        if len(crop_size) != 2:
            raise ValueError(f"RandomCrop: crop_size needs two numbers, got {list(crop_size)}")
        if crop_type.startswith("relative") and not all(0 < s <= 1 for s in crop_size):
            raise ValueError(f"RandomCrop: relative crop sizes must be in (0, 1], got {list(crop_size)}")
        self.crop_type, self.crop_size = crop_type, tuple(crop_size)

    def get_crop_size(self, h: int, w: int) -> Tuple[int, int]:
        """(crop_h, crop_w) for an h x w image."""
        ch, cw = self.crop_size
        if self.crop_type == "relative":
            return int(h * ch + 0.5), int(w * cw + 0.5)
        if self.crop_type == "relative_range":
            low = np.array([ch, cw], dtype=np.float64)
            rh, rw = low + np.random.rand(2) * (1 - low)
            return int(h * rh + 0.5), int(w * rw + 0.5)
        if self.crop_type == "absolute":
            return min(int(ch), h), min(int(cw), w)
        low, high = int(ch), int(cw)
        return min(int(np.random.randint(low, high + 1)), h), min(int(np.random.randint(low, high + 1)), w)

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        crop_h, crop_w = self.get_crop_size(h, w)
        crop_h, crop_w = max(1, min(crop_h, h)), max(1, min(crop_w, w))
        y0 = int(np.random.randint(h - crop_h + 1))
        x0 = int(np.random.randint(w - crop_w + 1))
        return CropTransform(x0, y0, crop_w, crop_h, w, h)
