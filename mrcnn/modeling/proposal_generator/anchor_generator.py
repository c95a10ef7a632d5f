"""Anchor boxes: a few cell anchors per feature level, tiled over that level's grid."""

import math
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from mrcnn.config import configurable
from mrcnn.structures import Boxes
from mrcnn.utils.graph_capture import is_graph_recording
from mrcnn.utils.registry import Registry

__all__ = ["ANCHOR_GENERATOR_REGISTRY", "DefaultAnchorGenerator", "build_anchor_generator"]

ANCHOR_GENERATOR_REGISTRY = Registry("ANCHOR_GENERATOR")
ANCHOR_GENERATOR_REGISTRY.__doc__ = """
Anchor generators: modules called with a list of feature maps that return one Boxes per level.
A registered class is built as ``cls(cfg, input_shape)``, where ``input_shape`` is
the list of ShapeSpec of those feature maps
(decorate ``__init__`` with ``mrcnn.config.configurable`` and add ``from_config``).
A generator whose attribute ``strides_from_image_size`` is True is also given the padded image
size, ``generator(features, image_size)``.
"""


# Anchor sets kept per generator (most recently used), one per distinct padded batch size.
_ANCHOR_CACHE_SIZE = 16


def _broadcast_per_level(params: Sequence, num_levels: int, name: str) -> List[List[float]]:
    """One list of values per level: a flat list or a single inner list is shared by all."""
    if not isinstance(params, (list, tuple)) or len(params) == 0:
        raise ValueError(f"MODEL.ANCHOR_GENERATOR.{name} must be a non-empty list, got {params!r}")
    if not isinstance(params[0], (list, tuple)):
        return [list(params)] * num_levels
    if len(params) == 1:
        return [list(params[0])] * num_levels
    if len(params) != num_levels:
        raise ValueError(
            f"MODEL.ANCHOR_GENERATOR.{name} has {len(params)} lists but there are {num_levels} "
            f"feature levels; give one list per level or a single shared list"
        )
    return [list(p) for p in params]


class _BufferList(nn.Module):
    """Tensors that follow the module's device but are not saved in checkpoints."""

    def __init__(self, buffers: List[torch.Tensor]):
        super().__init__()
        for index, buffer in enumerate(buffers):
            self.register_buffer(str(index), buffer, persistent=False)

    def __len__(self) -> int:
        return len(self._buffers)

    def __iter__(self):
        return iter(self._buffers.values())


@ANCHOR_GENERATOR_REGISTRY.register()
class DefaultAnchorGenerator(nn.Module):
    """Axis-aligned anchors of given sizes and aspect ratios (height / width) on each level."""

    box_dim: int = 4

    @configurable
    def __init__(
        self,
        *,
        sizes: Union[List[float], List[List[float]]],
        aspect_ratios: Union[List[float], List[List[float]]],
        strides: List[int],
        offset: float = 0.0,
        round_cell_anchors: bool = False,
        strides_from_image_size: bool = False,
    ):
        """
        Args:
            sizes: anchor sizes (sqrt of the area, in input pixels), one list per level, or
                one list shared by all levels.
            aspect_ratios: height / width ratios, one list per level or one shared list.
            strides: stride of each feature level in input pixels.
            offset: where in its cell an anchor is centred, in units of the stride; 0 puts
                the first anchor at the image corner (torchvision), 0.5 at the cell centre.
            round_cell_anchors: round the cell anchors to integers, as torchvision does.
            strides_from_image_size: derive each level's stride from the padded image size, per
                side, as ``image side // feature map side`` (torchvision), instead of ``strides``.
                They differ where a level's map is rounded up: a padded side of 800 gives 13
                cells at stride 64, so anchors 61 px apart. ``forward`` then needs the image size.
        """
        super().__init__()
        if not 0.0 <= offset < 1.0:
            raise ValueError(f"Anchor offset must be in [0, 1), got {offset}")
        self.strides = [int(s) for s in strides]
        self.num_features = len(self.strides)
        self.sizes = _broadcast_per_level(sizes, self.num_features, "SIZES")
        self.aspect_ratios = _broadcast_per_level(aspect_ratios, self.num_features, "ASPECT_RATIOS")
        self.offset = float(offset)
        self.round_cell_anchors = round_cell_anchors
        self.strides_from_image_size = bool(strides_from_image_size)
        # (grid sizes, strides, cell anchors' storage) -> anchors of each level, least recently used first
        self._anchor_cache: OrderedDict[tuple, List[torch.Tensor]] = OrderedDict()
        self.cell_anchors = _BufferList(
            [
                self.generate_cell_anchors(level_sizes, level_ratios)
                for level_sizes, level_ratios in zip(self.sizes, self.aspect_ratios)
            ]
        )

    @classmethod
    def from_config(cls, cfg, input_shape) -> dict:
        """Constructor arguments from MODEL.ANCHOR_GENERATOR and the levels' ShapeSpecs."""
        return {
            "sizes": cfg.MODEL.ANCHOR_GENERATOR.SIZES,
            "aspect_ratios": cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS,
            "strides": [shape.stride for shape in input_shape],
            "offset": cfg.MODEL.ANCHOR_GENERATOR.OFFSET,
            "round_cell_anchors": cfg.MODEL.ANCHOR_GENERATOR.ROUND_CELL_ANCHORS,
            "strides_from_image_size": cfg.MODEL.ANCHOR_GENERATOR.STRIDES_FROM_IMAGE_SIZE,
        }

    def generate_cell_anchors(self, sizes: Sequence[float], aspect_ratios: Sequence[float]) -> torch.Tensor:
        """(len(sizes) * len(aspect_ratios), 4) XYXY anchors centred on (0, 0); sizes outer."""
        anchors = []
        for size in sizes:
            area = float(size) ** 2
            for ratio in aspect_ratios:
                # Keep the area while setting h / w = ratio.
                width = math.sqrt(area / ratio)
                height = ratio * width
                anchors.append([-width / 2.0, -height / 2.0, width / 2.0, height / 2.0])
        cell_anchors = torch.tensor(anchors, dtype=torch.float32)
        if self.round_cell_anchors:
            cell_anchors = cell_anchors.round()
        return cell_anchors

    @property
    def num_anchors(self) -> List[int]:
        """Number of anchors per location on each level."""
        return [len(cell_anchors) for cell_anchors in self.cell_anchors]

    @property
    def num_cell_anchors(self) -> List[int]:
        """Alias of ``num_anchors``."""
        return self.num_anchors

    def level_strides(
        self, grid_sizes: List[List[int]], image_size: Optional[Tuple[int, int]] = None
    ) -> List[Tuple[int, int]]:
        """(stride_y, stride_x) of each level in input pixels: the nominal strides, or with
        ``strides_from_image_size`` the padded ``image_size`` (height, width) floor-divided by each
        level's (height, width) grid, per side."""
        if not self.strides_from_image_size:
            return [(stride, stride) for stride in self.strides]
        if image_size is None:
            raise ValueError(
                "This anchor generator derives its strides from the image size "
                "(MODEL.ANCHOR_GENERATOR.STRIDES_FROM_IMAGE_SIZE) and must be called with the padded image size"
            )
        image_height, image_width = (int(side) for side in image_size)
        return [(image_height // int(height), image_width // int(width)) for height, width in grid_sizes]

    def _grid_anchors(self, grid_sizes: List[List[int]], strides: List[Tuple[int, int]]) -> List[torch.Tensor]:
        anchors = []
        for (height, width), (stride_y, stride_x), cell_anchors in zip(grid_sizes, strides, self.cell_anchors):
            device = cell_anchors.device
            shifts_x = (torch.arange(width, dtype=torch.float32, device=device) + self.offset) * stride_x
            shifts_y = (torch.arange(height, dtype=torch.float32, device=device) + self.offset) * stride_y
            shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
            shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            # (H*W, 1, 4) + (1, A, 4): anchor index is (y * W + x) * A + a.
            anchors.append((shifts[:, None, :] + cell_anchors[None, :, :]).reshape(-1, 4))
        return anchors

    def forward(self, features: List[torch.Tensor], image_size: Optional[Tuple[int, int]] = None) -> List[Boxes]:
        """One Boxes of (Hi*Wi*A, 4) anchors per feature map (N, C, Hi, Wi).

        image_size: (height, width) of the padded image batch; read only with
        ``strides_from_image_size``, which requires it.
        """
        if len(features) != self.num_features:
            raise ValueError(
                f"The anchor generator was built for {self.num_features} feature levels "
                f"but got {len(features)} feature maps"
            )
        grid_sizes = [list(feature.shape[-2:]) for feature in features]
        strides = self.level_strides(grid_sizes, image_size)
        if is_graph_recording():  # a traced or compiled graph must compute them from the sizes
            return [Boxes(level_anchors) for level_anchors in self._grid_anchors(grid_sizes, strides)]
        # The anchors depend only on the grid sizes and strides: made once for each, kept for the
        # most recent few (one per padded batch size in multi-scale training).
        key = (
            tuple(tuple(size) for size in grid_sizes),
            tuple(strides),
            tuple((cell.data_ptr(), cell.device, cell.dtype) for cell in self.cell_anchors),
        )
        anchors = self._anchor_cache.pop(key, None)
        if anchors is None:
            anchors = self._grid_anchors(grid_sizes, strides)
            while len(self._anchor_cache) >= _ANCHOR_CACHE_SIZE:
                self._anchor_cache.pop(next(iter(self._anchor_cache)))  # the least recently used
        self._anchor_cache[key] = anchors
        return [Boxes(level_anchors) for level_anchors in anchors]


def build_anchor_generator(cfg, input_shape) -> nn.Module:
    """The anchor generator named by MODEL.ANCHOR_GENERATOR.NAME, built for ``input_shape``."""
    anchor_generator_cls = ANCHOR_GENERATOR_REGISTRY.get(cfg.MODEL.ANCHOR_GENERATOR.NAME)
    return anchor_generator_cls(cfg, input_shape)
