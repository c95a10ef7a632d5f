"""Instance masks: dense BitMasks and PolygonMasks, with area, boxes and crop-and-resize targets."""

from __future__ import annotations

import itertools
import warnings
from typing import Iterator, List, Sequence, Tuple, Union

import numpy as np
import pycocotools.mask as mask_util
import torch
from torchvision.ops import roi_align

from .boxes import Boxes

Polygon = np.ndarray  # flat float64 array [x0, y0, x1, y1, ...]


def polygons_to_bitmask(polygons: Sequence[Polygon], height: int, width: int) -> np.ndarray:
    """Rasterize the union of an instance's polygons into a (height, width) bool array."""
    if len(polygons) == 0:
        return np.zeros((height, width), dtype=bool)
    return _rasterise(_checked_flat_polygons(polygons), height, width)


def _rasterise(flat: List[np.ndarray], height: int, width: int) -> np.ndarray:
    """pycocotools' rasterisation of checked flat polygons (at least one): (height, width) bool."""
    rles = mask_util.frPyObjects([p.tolist() for p in flat], height, width)
    merged = mask_util.merge(rles)
    with warnings.catch_warnings():
        # pycocotools' decode trips numpy 2's copy-keyword deprecation; the result is unaffected
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_util.decode(merged).astype(bool)


def _checked_flat_polygons(polygons: Sequence[Polygon]) -> List[np.ndarray]:
    """The polygons as flat float64 arrays; a ValueError names one that pycocotools would misread."""
    flat = [np.asarray(p, dtype=np.float64).reshape(-1) for p in polygons]
    for index, polygon in enumerate(flat):
        # pycocotools reads a length-4 list as a bbox and an odd one as pairs plus a stray number
        if polygon.size % 2 != 0 or polygon.size < 6:
            problem = "an odd number of coordinates" if polygon.size % 2 else f"{polygon.size // 2} point(s)"
            raise ValueError(f"polygons_to_bitmask: polygon {index} has {problem} ({polygon.size} numbers)")
    return flat


def polygons_to_bitmask_in_window(
    polygons: Sequence[Polygon], height: int, width: int, margin: int = 2
) -> Tuple[np.ndarray, int, int]:
    """``polygons_to_bitmask`` rasterised only inside the polygons' bounding box (widened by
    ``margin`` pixels, clipped to the image): (mask (h, w) bool, top, left), such that the full
    mask is zero except ``full[top:top + h, left:left + w] == mask``.

    pycocotools rasterises the same pixels when every vertex moves by a whole number of pixels, so
    the window is exactly the full mask's content (``tests/structures/test_structures_masks.py``
    compares the two), for a fraction of the work when the instance is small against the image.
    """
    if len(polygons) == 0:
        return np.zeros((0, 0), dtype=bool), 0, 0
    flat = _checked_flat_polygons(polygons)
    points = np.concatenate([p.reshape(-1, 2) for p in flat])
    left = int(max(0, np.floor(points[:, 0].min()) - margin))
    top = int(max(0, np.floor(points[:, 1].min()) - margin))
    right = int(min(width, np.ceil(points[:, 0].max()) + margin + 1))
    bottom = int(min(height, np.ceil(points[:, 1].max()) + margin + 1))
    if right <= left or bottom <= top:  # entirely outside the image
        return np.zeros((0, 0), dtype=bool), 0, 0
    shifted = [(p.reshape(-1, 2) - (left, top)).reshape(-1) for p in flat]
    return _rasterise(shifted, bottom - top, right - left), top, left


def _index_to_list(item, length: int) -> List[int]:
    """Turn a slice, bool mask, index list or index tensor into a list of positions."""
    if isinstance(item, slice):
        return list(range(length))[item]
    if isinstance(item, torch.Tensor):
        if item.dtype == torch.bool:
            if item.numel() != length:
                raise IndexError(f"bool mask of length {item.numel()} for {length} masks")
            return item.nonzero().flatten().tolist()
        return item.flatten().tolist()
    array = np.asarray(item)
    if array.dtype == bool:
        if array.size != length:
            raise IndexError(f"bool mask of length {array.size} for {length} masks")
        return np.nonzero(array)[0].tolist()
    return array.reshape(-1).astype(np.int64).tolist()


class BitMasks:
    """N dense masks of one image, stored as an (N, H, W) bool tensor."""

    def __init__(self, tensor: Union[torch.Tensor, np.ndarray]):
        if isinstance(tensor, np.ndarray):
            tensor = torch.from_numpy(tensor)
        if tensor.dim() != 3:
            raise ValueError(f"BitMasks expects an (N, H, W) tensor, got shape {tuple(tensor.shape)}")
        self.tensor = tensor.to(torch.bool)
        self.image_size: Tuple[int, int] = (int(tensor.shape[1]), int(tensor.shape[2]))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def to(self, *args, **kwargs) -> BitMasks:
        """The masks on another device."""
        return BitMasks(self.tensor.to(*args, **kwargs))

    def __getitem__(self, item) -> BitMasks:
        """Index with an int (gives 1 mask), slice, bool mask or index tensor."""
        if isinstance(item, (int, np.integer)):
            return BitMasks(self.tensor[item].unsqueeze(0))
        selected = self.tensor[item]
        if selected.dim() != 3:
            raise IndexError(f"Indexing BitMasks with {item!r} did not give (K, H, W)")
        return BitMasks(selected)

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Yield each mask as an (H, W) bool tensor."""
        yield from self.tensor

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __repr__(self) -> str:
        return f"BitMasks(num_instances={len(self)}, image_size={self.image_size})"

    def area(self) -> torch.Tensor:
        """Number of foreground pixels per mask, (N,) int64."""
        return self.tensor.sum(dim=(1, 2))

    def nonempty(self) -> torch.Tensor:
        """(N,) bool: True where a mask has any foreground pixel."""
        return self.tensor.flatten(1).any(dim=1)

    def get_bounding_boxes(self) -> Boxes:
        """Tight XYXY boxes (N, 4): x from the first to one past the last foreground column; 0s if empty."""
        boxes = torch.zeros(len(self), 4, dtype=torch.float32, device=self.device)
        if len(self) == 0:
            return Boxes(boxes)
        cols = self.tensor.any(dim=1)  # (N, W)
        rows = self.tensor.any(dim=2)  # (N, H)
        nonempty = cols.any(dim=1)
        width, height = cols.shape[1], rows.shape[1]
        # argmax returns the first maximal position, so on the flipped tensor it finds the last one
        x0 = cols.to(torch.uint8).argmax(dim=1)
        x1 = width - cols.flip(1).to(torch.uint8).argmax(dim=1)
        y0 = rows.to(torch.uint8).argmax(dim=1)
        y1 = height - rows.flip(1).to(torch.uint8).argmax(dim=1)
        stacked = torch.stack([x0, y0, x1, y1], dim=1).to(torch.float32)
        boxes[nonempty] = stacked[nonempty]
        return Boxes(boxes)

    def crop_and_resize(self, boxes: torch.Tensor, mask_size: int) -> torch.Tensor:
        """Crop mask i to boxes[i] (N, 4 XYXY) and resample to (N, mask_size, mask_size) bool."""
        if len(boxes) != len(self):
            raise ValueError(f"crop_and_resize: {len(boxes)} boxes for {len(self)} masks")
        if len(self) == 0:
            return torch.zeros(0, mask_size, mask_size, dtype=torch.bool, device=self.device)
        device = self.tensor.device
        boxes = torch.as_tensor(boxes, dtype=torch.float32, device=device)
        batch_index = torch.arange(len(boxes), device=device, dtype=torch.float32)[:, None]
        rois = torch.cat([batch_index, boxes], dim=1)
        resampled = roi_align(
            self.tensor.to(torch.float32)[:, None],
            rois,
            (mask_size, mask_size),
            spatial_scale=1.0,
            sampling_ratio=0,
            aligned=True,
        )
        return resampled[:, 0] >= 0.5

    @staticmethod
    def from_polygon_masks(
        polygon_masks: Union[PolygonMasks, List[List[Polygon]]], height: int, width: int
    ) -> BitMasks:
        """Rasterize polygons (PolygonMasks or list per instance of polygons) at (height, width)."""
        if isinstance(polygon_masks, PolygonMasks):
            polygon_masks = polygon_masks.polygons
        masks = [polygons_to_bitmask(p, height, width) for p in polygon_masks]
        if len(masks) == 0:
            return BitMasks(torch.zeros(0, height, width, dtype=torch.bool))
        return BitMasks(torch.from_numpy(np.stack(masks)))

    @staticmethod
    def cat(bitmasks_list: List[BitMasks]) -> BitMasks:
        """Concatenate BitMasks of the same image size."""
        if len(bitmasks_list) == 0:
            raise ValueError("BitMasks.cat needs at least one BitMasks")
        if not all(isinstance(b, BitMasks) for b in bitmasks_list):
            raise TypeError("BitMasks.cat: every element must be a BitMasks")
        return BitMasks(torch.cat([b.tensor for b in bitmasks_list], dim=0))


class PolygonMasks:
    """N instance masks, each a list of polygons given as flat float64 arrays [x0, y0, x1, y1, ...]."""

    def __init__(self, polygons: Sequence[Sequence[Union[Sequence[float], np.ndarray, torch.Tensor]]]):
        if not isinstance(polygons, (list, tuple)):
            raise TypeError(
                f"PolygonMasks expects a list (per instance) of lists of polygons, got {type(polygons).__name__}"
            )

        def to_array(polygon, instance: int, part: int) -> np.ndarray:
            if isinstance(polygon, torch.Tensor):
                polygon = polygon.cpu().numpy()
            array = np.asarray(polygon, dtype=np.float64).reshape(-1)
            if array.size % 2 != 0:
                raise ValueError(
                    f"PolygonMasks: polygon {part} of instance {instance} has an odd number of coordinates "
                    f"({array.size}); a polygon is a flat list of x, y pairs"
                )
            if array.size < 6:
                raise ValueError(
                    f"PolygonMasks: polygon {part} of instance {instance} has {array.size // 2} point(s); "
                    "a polygon needs at least 3"
                )
            if not np.isfinite(array).all():
                raise ValueError(
                    f"PolygonMasks: polygon {part} of instance {instance} has a NaN or infinite coordinate"
                )
            return array

        processed = []
        for i, instance in enumerate(polygons):
            if not isinstance(instance, (list, tuple)):
                raise TypeError(f"PolygonMasks: instance {i} must be a list of polygons, got {type(instance).__name__}")
            processed.append([to_array(p, i, j) for j, p in enumerate(instance)])
        self.polygons: List[List[np.ndarray]] = processed

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def to(self, *args, **kwargs) -> PolygonMasks:
        """Polygons live on the CPU as numpy arrays; moving them is a no-op."""
        return self

    @classmethod
    def _from_checked(cls, polygons: List[List[np.ndarray]]) -> PolygonMasks:
        """A PolygonMasks around polygons already checked by the constructor (no second pass)."""
        masks = cls.__new__(cls)
        masks.polygons = polygons
        return masks

    def __getitem__(self, item) -> PolygonMasks:
        """Index with an int (gives 1 instance), slice, bool mask, index list or index tensor."""
        if isinstance(item, (int, np.integer)):
            return PolygonMasks._from_checked([self.polygons[item]])
        positions = _index_to_list(item, len(self))
        return PolygonMasks._from_checked([self.polygons[i] for i in positions])

    def __iter__(self) -> Iterator[List[np.ndarray]]:
        """Yield each instance's list of polygons."""
        return iter(self.polygons)

    def __len__(self) -> int:
        return len(self.polygons)

    def __repr__(self) -> str:
        return f"PolygonMasks(num_instances={len(self)})"

    def get_bounding_boxes(self) -> Boxes:
        """XYXY boxes (N, 4) from the min/max polygon coordinates; 0s for an instance without polygons."""
        boxes = torch.zeros(len(self), 4, dtype=torch.float32)
        for i, instance in enumerate(self.polygons):
            if not instance:
                continue
            points = np.concatenate(instance).reshape(-1, 2)
            boxes[i] = torch.as_tensor([*points.min(axis=0), *points.max(axis=0)], dtype=torch.float32)
        return Boxes(boxes)

    def nonempty(self) -> torch.Tensor:
        """(N,) bool: True where an instance has at least one polygon."""
        return torch.tensor([len(instance) > 0 for instance in self.polygons], dtype=torch.bool)

    def area(self) -> torch.Tensor:
        """Pixel area of each instance's rasterized union, (N,) float32.

        Computed with pycocotools on the merged RLE, so overlapping polygons are
        counted once (the shoelace formula would count overlaps twice). The
        polygons are shifted by a whole number of pixels so that negative
        coordinates are not clipped away; the count is that of the rasterized
        mask, which differs from the exact polygon area by sub-pixel boundary effects.
        """
        areas = torch.zeros(len(self), dtype=torch.float32)
        for i, instance in enumerate(self.polygons):
            if not instance:
                continue
            points = np.concatenate(instance).reshape(-1, 2)
            offset = np.floor(points.min(axis=0))
            shifted = [(p.reshape(-1, 2) - offset).reshape(-1) for p in instance]
            extent = np.ceil(points.max(axis=0) - offset).astype(np.int64) + 1
            rles = mask_util.frPyObjects([p.tolist() for p in shifted], int(extent[1]), int(extent[0]))
            areas[i] = float(mask_util.area(mask_util.merge(rles)))
        return areas

    def crop_and_resize(self, boxes: torch.Tensor, mask_size: int) -> torch.Tensor:
        """Rasterize instance i inside boxes[i] (N, 4 XYXY) on a mask_size grid: (N, M, M) bool."""
        if len(boxes) != len(self):
            raise ValueError(f"crop_and_resize: {len(boxes)} boxes for {len(self)} masks")
        device = boxes.device if isinstance(boxes, torch.Tensor) else torch.device("cpu")
        if len(self) == 0:
            return torch.zeros(0, mask_size, mask_size, dtype=torch.bool, device=device)
        boxes_np = torch.as_tensor(boxes).detach().to("cpu", torch.float64).numpy()
        origins = boxes_np[:, :2]
        # a degenerate box would divide by zero; 0.1 px keeps the scale finite
        scales = mask_size / np.maximum(boxes_np[:, 2:] - boxes_np[:, :2], 0.1)
        # every polygon of every instance in box coordinates, rasterized by pycocotools in one call
        flat, owner = [], []
        for index, instance in enumerate(self.polygons):
            for polygon in instance:
                flat.append(((polygon.reshape(-1, 2) - origins[index]) * scales[index]).reshape(-1).tolist())
                owner.append(index)
        rles = mask_util.frPyObjects(flat, mask_size, mask_size) if flat else []
        per_instance: List[list] = [[] for _ in self.polygons]
        for index, rle in zip(owner, rles):
            per_instance[index].append(rle)
        empty = None
        merged = []
        for parts in per_instance:
            if len(parts) == 1:
                merged.append(parts[0])
            elif parts:
                merged.append(mask_util.merge(parts))
            else:  # an instance without polygons: an empty mask
                if empty is None:
                    empty = mask_util.encode(np.zeros((mask_size, mask_size, 1), dtype=np.uint8, order="F"))[0]
                merged.append(empty)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # see polygons_to_bitmask
            decoded = mask_util.decode(merged)  # (M, M, N) uint8
        return torch.from_numpy(np.ascontiguousarray(decoded.transpose(2, 0, 1))).to(device=device, dtype=torch.bool)

    @staticmethod
    def cat(polymasks_list: List[PolygonMasks]) -> PolygonMasks:
        """Concatenate PolygonMasks."""
        if not all(isinstance(p, PolygonMasks) for p in polymasks_list):
            raise TypeError("PolygonMasks.cat: every element must be a PolygonMasks")
        return PolygonMasks._from_checked(list(itertools.chain.from_iterable(p.polygons for p in polymasks_list)))
