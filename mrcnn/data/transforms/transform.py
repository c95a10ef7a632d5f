"""Deterministic transforms that apply one geometric (or colour) change to an image and its annotations.

Coordinates are continuous: pixel (i, j) covers [j, j+1) x [i, i+1), so an image of width W
spans x in [0, W]. Images are HWC (or HW) uint8 numpy arrays; coords are (N, 2) float arrays
of (x, y); boxes are (N, 4) XYXY; polygons are lists of (K, 2) arrays; segmentations are
(H, W) masks (bool or integer labels), always resampled with nearest neighbour.

The classes are built on fvcore's (``fvcore.transforms.transform``), as detectron2's are: every
transform here is an fvcore ``Transform`` (so ``register_type`` and code written against fvcore
or detectron2 work with them), and the flips, crop, pad, no-op and list are subclasses of
fvcore's own classes. What they add to fvcore's:

- inputs are never changed: fvcore's ``apply_coords`` edits the array it is given in place,
  ours return a new float64 array; boxes and polygons (also plain lists) come back as float64;
- images come back C-contiguous (fvcore's flips and crops return views of the input);
- ResizeTransform is ours: it resizes with Pillow (fvcore's ScaleTransform interpolates with
  torch, which gives other pixel values) and names the input size it expects when given another;
- CropTransform clips polygons to its window itself (fvcore's needs shapely, and may split a
  polygon in several); a TransformList leaves NoOpTransforms out and stays our class through
  ``inverse()`` and ``+``; the inverses of crop and pad are our classes, and say which sizes
  they miss when they cannot be built.
"""

from typing import Any, Callable, List, Sequence

import numpy as np
from fvcore.transforms import transform as fvcore_transforms
from PIL import Image

__all__ = [
    "Transform",
    "TransformList",
    "NoOpTransform",
    "HFlipTransform",
    "VFlipTransform",
    "ResizeTransform",
    "CropTransform",
    "PadTransform",
    "ColorTransform",
]


def _float_copy(coords: Any) -> np.ndarray:
    """A new float64 array of ``coords``, for fvcore methods that change their input in place."""
    return np.array(coords, dtype=np.float64, copy=True)


class Transform(fvcore_transforms.Transform):
    """Base class: subclasses implement apply_image and apply_coords, and inverse where it exists."""

    def apply_box(self, box: np.ndarray) -> np.ndarray:
        """Transform (N, 4) XYXY boxes into the boxes enclosing their transformed corners."""
        box = np.asarray(box, dtype=np.float64).reshape(-1, 4)
        corners = box[:, [0, 1, 2, 1, 0, 3, 2, 3]].reshape(-1, 2)
        corners = self.apply_coords(corners).reshape(-1, 4, 2)
        return np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)

    def apply_polygons(self, polygons: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Transform a list of (K, 2) polygons."""
        return [self.apply_coords(np.asarray(p, dtype=np.float64)) for p in polygons]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class TransformList(fvcore_transforms.TransformList, Transform):
    """Several transforms applied in order (nested lists are flattened, NoOpTransforms left out)."""

    def __init__(self, transforms: Sequence[fvcore_transforms.Transform]):
        super().__init__(list(transforms))
        self.transforms = [t for t in self.transforms if not isinstance(t, fvcore_transforms.NoOpTransform)]

    def inverse(self) -> "TransformList":
        return TransformList([t.inverse() for t in reversed(self.transforms)])

    def __add__(self, other: fvcore_transforms.Transform) -> "TransformList":
        return TransformList([self, other])

    def __radd__(self, other: fvcore_transforms.Transform) -> "TransformList":
        return TransformList([other, self])

    def __iadd__(self, other: fvcore_transforms.Transform) -> "TransformList":
        self.transforms = TransformList([self, other]).transforms
        return self

    def __iter__(self):
        return iter(self.transforms)

    def __repr__(self) -> str:
        return f"TransformList({self.transforms!r})"

    __str__ = __repr__


class NoOpTransform(fvcore_transforms.NoOpTransform, Transform):
    """Leaves everything unchanged."""

    def apply_polygons(self, polygons: Sequence[np.ndarray]) -> List[np.ndarray]:
        return list(polygons)


class HFlipTransform(fvcore_transforms.HFlipTransform, Transform):
    """Mirror left-right an image of the given width."""

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(super().apply_image(image))

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return super().apply_coords(_float_copy(coords))


class VFlipTransform(fvcore_transforms.VFlipTransform, Transform):
    """Mirror top-bottom an image of the given height."""

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        # in numpy: fvcore's goes through torch, which refuses e.g. non-native byte orders
        return np.ascontiguousarray(np.flip(image, axis=0 if image.ndim <= 3 else -3))

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return super().apply_coords(_float_copy(coords))


class ResizeTransform(Transform):
    """Resize (h, w) → (new_h, new_w): images with Pillow (bilinear by default), masks nearest."""

    def __init__(self, h: int, w: int, new_h: int, new_w: int, interp: int = Image.BILINEAR):
        self.h, self.w, self.new_h, self.new_w, self.interp = int(h), int(w), int(new_h), int(new_w), interp

    def _resize(self, array: np.ndarray, interp: int) -> np.ndarray:
        if array.shape[:2] != (self.h, self.w):
            raise ValueError(f"ResizeTransform expects a {self.h}x{self.w} input, got {array.shape[:2]}")
        if (self.new_h, self.new_w) == (self.h, self.w):
            return array
        if array.dtype == bool:
            pil = Image.fromarray(array.astype(np.uint8))
            return np.asarray(pil.resize((self.new_w, self.new_h), interp)).astype(bool)
        if array.dtype != np.uint8 or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
            # Pillow resizes only uint8 images of 1/3/4 channels: resize each channel as float
            channels = array[..., None] if array.ndim == 2 else array
            out = np.stack(
                [
                    np.asarray(
                        Image.fromarray(channels[..., c].astype(np.float32)).resize((self.new_w, self.new_h), interp)
                    )
                    for c in range(channels.shape[2])
                ],
                axis=-1,
            ).astype(array.dtype)
            return out[..., 0] if array.ndim == 2 else out
        squeeze = array.ndim == 3 and array.shape[2] == 1
        pil = Image.fromarray(array[..., 0] if squeeze else array)
        out = np.asarray(pil.resize((self.new_w, self.new_h), interp))
        return out[..., None] if squeeze else out

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        return self._resize(image, self.interp)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self._resize(segmentation, Image.NEAREST)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64, copy=True)
        coords[:, 0] *= self.new_w / self.w
        coords[:, 1] *= self.new_h / self.h
        return coords

    def inverse(self) -> "ResizeTransform":
        return ResizeTransform(self.new_h, self.new_w, self.h, self.w, self.interp)


class CropTransform(fvcore_transforms.CropTransform, Transform):
    """Keep the window [x0, x0+w) x [y0, y0+h); polygons are clipped to it."""

    def __init__(self, x0: int, y0: int, w: int, h: int, orig_w: int = None, orig_h: int = None):
        super().__init__(int(x0), int(y0), int(w), int(h), orig_w, orig_h)

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(super().apply_image(image))

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return super().apply_coords(_float_copy(coords))

    def apply_polygons(self, polygons: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Shift and clip each polygon to the window; polygons entirely outside vanish."""
        out = []
        for polygon in polygons:
            clipped = clip_polygon_to_rectangle(
                self.apply_coords(np.asarray(polygon, dtype=np.float64)), 0.0, 0.0, float(self.w), float(self.h)
            )
            if len(clipped) >= 3:
                out.append(clipped)
        return out

    def inverse(self) -> "PadTransform":
        if self.orig_w is None or self.orig_h is None:
            raise NotImplementedError("CropTransform.inverse needs orig_w and orig_h")
        return PadTransform(
            self.x0, self.y0, self.orig_w - self.x0 - self.w, self.orig_h - self.y0 - self.h, self.w, self.h
        )


class PadTransform(fvcore_transforms.PadTransform, Transform):
    """Pad images with ``pad_value`` and segmentations with ``seg_pad_value`` on each side."""

    def __init__(
        self,
        x0: int,
        y0: int,
        x1: int,
        y1: int,
        orig_w: int = None,
        orig_h: int = None,
        pad_value: float = 0,
        seg_pad_value: int = 0,
    ):
        super().__init__(int(x0), int(y0), int(x1), int(y1), orig_w, orig_h, pad_value, seg_pad_value)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return super().apply_coords(_float_copy(coords))

    def inverse(self) -> CropTransform:
        if self.orig_w is None or self.orig_h is None:
            raise NotImplementedError("PadTransform.inverse needs orig_w and orig_h")
        return CropTransform(
            self.x0, self.y0, self.orig_w, self.orig_h, self.orig_w + self.x0 + self.x1, self.orig_h + self.y0 + self.y1
        )


class ColorTransform(Transform):
    """Change pixel values only (``op``: HWC uint8 → HWC uint8); geometry is untouched."""

    def __init__(self, op: Callable[[np.ndarray], np.ndarray], name: str = "color"):
        self.op, self.name = op, name

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        return self.op(image)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_polygons(self, polygons: Sequence[np.ndarray]) -> List[np.ndarray]:
        return list(polygons)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> NoOpTransform:
        # colour changes are not undone when mapping predictions back to the original image
        return NoOpTransform()

    def __repr__(self) -> str:
        return f"ColorTransform({self.name})"


def clip_polygon_to_rectangle(points: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Clip a (K, 2) polygon to the rectangle [x0, x1] x [y0, y1] (Sutherland-Hodgman).

    Because the clip region is convex this is exact for any simple polygon; a concave one may
    gain zero-width edges along the border, which rasterize to nothing.
    """

    def clip(pts: np.ndarray, axis: int, bound: float, keep_greater: bool) -> np.ndarray:
        if len(pts) == 0:
            return pts
        inside = pts[:, axis] >= bound if keep_greater else pts[:, axis] <= bound
        if inside.all():
            return pts
        out = []
        for i in range(len(pts)):
            current, following = pts[i], pts[(i + 1) % len(pts)]
            current_in, following_in = inside[i], inside[(i + 1) % len(pts)]
            if current_in:
                out.append(current)
            if current_in != following_in:
                t = (bound - current[axis]) / (following[axis] - current[axis])
                out.append(current + t * (following - current))
        return np.array(out, dtype=np.float64).reshape(-1, 2)

    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = clip(pts, 0, x0, True)
    pts = clip(pts, 0, x1, False)
    pts = clip(pts, 1, y0, True)
    pts = clip(pts, 1, y1, False)
    return pts
