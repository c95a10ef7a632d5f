"""Axis-aligned boxes: the Boxes container, BoxMode conversions and pairwise overlap measures."""

from __future__ import annotations

from enum import IntEnum
from typing import Iterator, List, Sequence, Tuple, Union

import numpy as np
import torch

BoxLike = Union[List[float], Tuple[float, ...], np.ndarray, torch.Tensor]


class BoxMode(IntEnum):
    """How the four numbers of a box are to be read (absolute pixel coordinates)."""

    XYXY_ABS = 0  # (x0, y0, x1, y1)
    XYWH_ABS = 1  # (x0, y0, width, height), as in COCO annotations

    @staticmethod
    def convert(box: BoxLike, from_mode: BoxMode, to_mode: BoxMode) -> BoxLike:
        """Convert one box (4,) or many (N, 4) between modes; the result has the input's type."""
        from_mode, to_mode = BoxMode(from_mode), BoxMode(to_mode)
        if from_mode == to_mode:
            return box
        original_type = type(box)
        single = isinstance(box, (list, tuple))
        if single:
            if len(box) != 4:
                raise ValueError(f"BoxMode.convert: a list/tuple box needs 4 numbers, got {len(box)}")
            array = torch.tensor([list(box)], dtype=torch.float64)
        elif isinstance(box, np.ndarray):
            array = torch.from_numpy(np.asarray(box)).clone()
        elif isinstance(box, torch.Tensor):
            array = box.clone()
        else:
            raise TypeError(f"BoxMode.convert: unsupported box type {original_type.__name__}")
        if array.shape[-1] != 4:
            raise ValueError(
                f"BoxMode.convert: boxes must have 4 values in the last dim, got shape {tuple(array.shape)}"
            )
        if from_mode == BoxMode.XYWH_ABS and to_mode == BoxMode.XYXY_ABS:
            array[..., 2] = array[..., 0] + array[..., 2]
            array[..., 3] = array[..., 1] + array[..., 3]
        elif from_mode == BoxMode.XYXY_ABS and to_mode == BoxMode.XYWH_ABS:
            array[..., 2] = array[..., 2] - array[..., 0]
            array[..., 3] = array[..., 3] - array[..., 1]
        else:  # pragma: no cover - only two modes exist
            raise NotImplementedError(f"conversion {from_mode.name} -> {to_mode.name}")
        if single:
            return original_type(array.flatten().tolist())
        if isinstance(box, np.ndarray):
            return array.numpy()
        return array


class Boxes:
    """A list of N boxes stored as an (N, 4) float tensor in XYXY_ABS mode."""

    def __init__(self, tensor: Union[torch.Tensor, np.ndarray, Sequence]):
        if not isinstance(tensor, torch.Tensor):
            tensor = torch.as_tensor(np.asarray(tensor), dtype=torch.float32)
        elif not tensor.is_floating_point():
            tensor = tensor.to(torch.float32)
        if tensor.numel() == 0:
            # keep an empty input well-formed so cat/indexing work uniformly
            tensor = tensor.reshape(-1, 4)
        if tensor.dim() != 2 or tensor.size(-1) != 4:
            raise ValueError(f"Boxes expects an (N, 4) tensor, got shape {tuple(tensor.shape)}")
        self.tensor = tensor

    def clone(self) -> Boxes:
        """A deep copy."""
        return Boxes(self.tensor.clone())

    def to(self, device: Union[str, torch.device]) -> Boxes:
        """The boxes on another device."""
        return Boxes(self.tensor.to(device))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def area(self) -> torch.Tensor:
        """Area of every box, (N,)."""
        b = self.tensor
        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

    def clip(self, box_size: Tuple[int, int]) -> None:
        """Clip in place to an image of (height, width): x into [0, width], y into [0, height]."""
        if not torch.isfinite(self.tensor).all():
            raise ValueError("Boxes.clip: boxes contain inf or nan")
        self.tensor = clipped_box_tensor(self.tensor, box_size)

    def nonempty(self, threshold: float = 0.0) -> torch.Tensor:
        """(N,) bool: True where both width and height exceed `threshold`."""
        b = self.tensor
        return ((b[:, 2] - b[:, 0]) > threshold) & ((b[:, 3] - b[:, 1]) > threshold)

    def inside_box(self, box_size: Tuple[int, int], boundary_threshold: int = 0) -> torch.Tensor:
        """(N,) bool: True where a box lies inside (height, width) widened by `boundary_threshold`."""
        height, width = box_size
        b = self.tensor
        return (
            (b[:, 0] >= -boundary_threshold)
            & (b[:, 1] >= -boundary_threshold)
            & (b[:, 2] < width + boundary_threshold)
            & (b[:, 3] < height + boundary_threshold)
        )

    def get_centers(self) -> torch.Tensor:
        """Box centers, (N, 2) as (x, y)."""
        return (self.tensor[:, :2] + self.tensor[:, 2:]) / 2

    def scale(self, scale_x: float, scale_y: float) -> None:
        """Scale x coordinates by scale_x and y coordinates by scale_y, in place."""
        self.tensor[:, 0::2] *= scale_x
        self.tensor[:, 1::2] *= scale_y

    def __getitem__(self, item) -> Boxes:
        """Index with an int, slice, bool mask or index tensor; always returns Boxes."""
        if isinstance(item, (int, np.integer)):
            return Boxes(self.tensor[item].view(1, -1))
        selected = self.tensor[item]
        if selected.dim() != 2:
            raise IndexError(f"Indexing Boxes with {item!r} did not give an (K, 4) tensor")
        return Boxes(selected)

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __repr__(self) -> str:
        return f"Boxes({self.tensor})"

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Yield each box as a (4,) tensor."""
        yield from self.tensor

    @classmethod
    def cat(cls, boxes_list: List[Boxes]) -> Boxes:
        """Concatenate a list of Boxes into one."""
        if not isinstance(boxes_list, (list, tuple)):
            raise TypeError("Boxes.cat expects a list of Boxes")
        if len(boxes_list) == 0:
            return cls(torch.empty(0, 4))
        if not all(isinstance(b, Boxes) for b in boxes_list):
            raise TypeError("Boxes.cat: every element must be a Boxes")
        return cls(torch.cat([b.tensor for b in boxes_list], dim=0))


def clipped_box_tensor(boxes: torch.Tensor, box_size: Tuple[int, int]) -> torch.Tensor:
    """Boxes (N, 4) clipped to an image of (height, width), as ``Boxes.clip`` clips them but
    without its check that they are finite (a read-back from the device): the caller checks."""
    height, width = box_size
    x1 = boxes[:, 0].clamp(min=0, max=width)
    y1 = boxes[:, 1].clamp(min=0, max=height)
    x2 = boxes[:, 2].clamp(min=0, max=width)
    y2 = boxes[:, 3].clamp(min=0, max=height)
    return torch.stack((x1, y1, x2, y2), dim=-1)


def pairwise_intersection(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """Intersection area of every pair, (N, M)."""
    b1, b2 = boxes1.tensor, boxes2.tensor
    width_height = torch.min(b1[:, None, 2:], b2[None, :, 2:]) - torch.max(b1[:, None, :2], b2[None, :, :2])
    width_height.clamp_(min=0)
    return width_height.prod(dim=2)


def pairwise_iou(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """Intersection over union of every pair, (N, M); 0 where the union is empty."""
    return pairwise_iou_tensors(boxes1.tensor, boxes2.tensor)


def pairwise_iou_tensors(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of XYXY boxes (..., N, 4) against (..., M, 4), leading dims broadcast: (..., N, M);
    0 where the union is empty.

    The same arithmetic as torchvision's ``box_iou`` (so the same values, bit for bit) in fewer
    operations, and over a batch of images at once.
    """
    boxes1, boxes2 = boxes1.unsqueeze(-2), boxes2.unsqueeze(-3)  # (..., N, 1, 4), (..., 1, M, 4)
    low1, high1 = boxes1[..., :2], boxes1[..., 2:]
    low2, high2 = boxes2[..., :2], boxes2[..., 2:]
    area1 = (high1 - low1).prod(dim=-1)  # (..., N, 1)
    area2 = (high2 - low2).prod(dim=-1)  # (..., 1, M)
    inter = (torch.min(high1, high2) - torch.max(low1, low2)).clamp(min=0).prod(dim=-1)
    iou = inter / (area1 + area2 - inter)
    # degenerate boxes make 0/0; call that no overlap
    return torch.nan_to_num(iou, nan=0.0)


def pairwise_ioa(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """Intersection over the area of boxes2, (N, M); 0 where boxes2 has no area."""
    area2 = boxes2.area()
    inter = pairwise_intersection(boxes1, boxes2)
    return torch.where(
        inter > 0, inter / area2[None, :].clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter)
    )
