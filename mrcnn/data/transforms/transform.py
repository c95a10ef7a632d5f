"""Deterministic transforms that apply one geometric (or colour) change to an image and its annotations.

Coordinates are continuous: pixel (i, j) covers [j, j+1) x [i, i+1), so an image of width W
spans x in [0, W]. Images are HWC (or HW) uint8 numpy arrays; coords are (N, 2) float arrays
of (x, y); boxes are (N, 4) XYXY; polygons are lists of (K, 2) arrays; segmentations are
(H, W) masks (bool or integer labels), always resampled with nearest neighbour.
"""
from typing import Callable, List, Sequence

import numpy as np
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


class Transform:
    """Base class: subclasses implement apply_image and apply_coords, and inverse where it exists."""

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """Transform an (H, W, C) or (H, W) uint8 image."""
        raise NotImplementedError

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        """Transform (N, 2) float (x, y) points."""
        raise NotImplementedError

    def apply_box(self, box: np.ndarray) -> np.ndarray:
        """Transform (N, 4) XYXY boxes into the boxes enclosing their transformed corners."""
        box = np.asarray(box, dtype=np.float64).reshape(-1, 4)
        corners = box[:, [0, 1, 2, 1, 0, 3, 2, 3]].reshape(-1, 2)
        corners = self.apply_coords(corners).reshape(-1, 4, 2)
        return np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)

    def apply_polygons(self, polygons: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Transform a list of (K, 2) polygons."""
        return [self.apply_coords(np.asarray(p, dtype=np.float64)) for p in polygons]

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        """Transform an (H, W) mask; the default reuses apply_image (fine for pixel-exact transforms)."""
        return self.apply_image(segmentation)

    def inverse(self) -> "Transform":
        """The transform that undoes this one."""
        raise NotImplementedError(f"{type(self).__name__} has no inverse")

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class TransformList(Transform):
    """Several transforms applied in order."""

    def __init__(self, transforms: Sequence[Transform]):
        flat: List[Transform] = []
        for t in transforms:
            flat.extend(t.transforms if isinstance(t, TransformList) else [t])
        self.transforms = [t for t in flat if not isinstance(t, NoOpTransform)]

    def _chain(self, method: str, value):
        for t in self.transforms:
            value = getattr(t, method)(value)
        return value

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        return self._chain("apply_image", image)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return self._chain("apply_coords", coords)

    def apply_box(self, box: np.ndarray) -> np.ndarray:
        return self._chain("apply_box", box)

    def apply_polygons(self, polygons: Sequence[np.ndarray]) -> List[np.ndarray]:
        return self._chain("apply_polygons", polygons)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self._chain("apply_segmentation", segmentation)

    def inverse(self) -> "TransformList":
        return TransformList([t.inverse() for t in reversed(self.transforms)])

    def __len__(self) -> int:
        return len(self.transforms)

    def __iter__(self):
        return iter(self.transforms)

    def __getitem__(self, index: int) -> Transform:
        return self.transforms[index]

    def __repr__(self) -> str:
        return f"TransformList({self.transforms!r})"


class NoOpTransform(Transform):
    """Leaves everything unchanged."""

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        return image

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_polygons(self, polygons: Sequence[np.ndarray]) -> List[np.ndarray]:
        return list(polygons)

    def inverse(self) -> "NoOpTransform":
        return self


class HFlipTransform(Transform):
    """Mirror left-right an image of the given width."""

    def __init__(self, width: int):
        self.width = width

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image[:, ::-1])

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64, copy=True)
        coords[:, 0] = self.width - coords[:, 0]
        return coords

    def inverse(self) -> "HFlipTransform":
        return self


class VFlipTransform(Transform):
    """Mirror top-bottom an image of the given height."""

    def __init__(self, height: int):
        self.height = height

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image[::-1])

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64, copy=True)
        coords[:, 1] = self.height - coords[:, 1]
        return coords

    def inverse(self) -> "VFlipTransform":
        return self


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
                [np.asarray(Image.fromarray(channels[..., c].astype(np.float32)).resize((self.new_w, self.new_h), interp))
                 for c in range(channels.shape[2])], axis=-1,
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


class CropTransform(Transform):
    """Keep the window [x0, x0+w) x [y0, y0+h); polygons are clipped to it."""

    def __init__(self, x0: int, y0: int, w: int, h: int, orig_w: int = None, orig_h: int = None):
        self.x0, self.y0, self.w, self.h = int(x0), int(y0), int(w), int(h)
        self.orig_w, self.orig_h = orig_w, orig_h

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image[self.y0 : self.y0 + self.h, self.x0 : self.x0 + self.w])

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64, copy=True)
        coords[:, 0] -= self.x0
        coords[:, 1] -= self.y0
        return coords

    def apply_polygons(self, polygons: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Shift and clip each polygon to the window; polygons entirely outside vanish."""
        out = []
        for polygon in polygons:
            clipped = clip_polygon_to_rectangle(self.apply_coords(np.asarray(polygon, dtype=np.float64)),
                                                0.0, 0.0, float(self.w), float(self.h))
            if len(clipped) >= 3:
                out.append(clipped)
        return out

    def inverse(self) -> "PadTransform":
        if self.orig_w is None or self.orig_h is None:
            raise NotImplementedError("CropTransform.inverse needs orig_w and orig_h")
        return PadTransform(self.x0, self.y0, self.orig_w - self.x0 - self.w, self.orig_h - self.y0 - self.h,
                            self.w, self.h)


class PadTransform(Transform):
    """Pad with ``pad_value`` (masks with 0) on each side."""

    def __init__(self, x0: int, y0: int, x1: int, y1: int, orig_w: int = None, orig_h: int = None,
                 pad_value: float = 0):
        self.x0, self.y0, self.x1, self.y1 = int(x0), int(y0), int(x1), int(y1)
        self.orig_w, self.orig_h, self.pad_value = orig_w, orig_h, pad_value

    def _pad(self, array: np.ndarray, value) -> np.ndarray:
        widths = [(self.y0, self.y1), (self.x0, self.x1)] + [(0, 0)] * (array.ndim - 2)
        return np.pad(array, widths, mode="constant", constant_values=value)

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        return self._pad(image, self.pad_value)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self._pad(segmentation, 0)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64, copy=True)
        coords[:, 0] += self.x0
        coords[:, 1] += self.y0
        return coords

    def inverse(self) -> CropTransform:
        if self.orig_w is None or self.orig_h is None:
            raise NotImplementedError("PadTransform.inverse needs orig_w and orig_h")
        return CropTransform(self.x0, self.y0, self.orig_w, self.orig_h,
                             self.orig_w + self.x0 + self.x1, self.orig_h + self.y0 + self.y1)


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
