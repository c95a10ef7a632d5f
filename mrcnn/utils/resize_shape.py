"""The output size of a shortest-edge resize, shared by the data transforms and test-time augmentation."""

from typing import Tuple

__all__ = ["shortest_edge_resized_shape"]


def shortest_edge_resized_shape(height: int, width: int, short_edge_length: int, max_size: int) -> Tuple[int, int]:
    """(new_height, new_width): the shortest edge ``short_edge_length``, the longest at most ``max_size``;
    at least 1 x 1 (a 1 x 5000 strip capped at max_size would round to 0)."""
    if height <= 0 or width <= 0:
        raise ValueError(f"ResizeShortestEdge: the image is {height}x{width} (HxW) and has no pixels to resize")
    scale = short_edge_length / min(height, width)
    if max(height, width) * scale > max_size:
        scale = max_size / max(height, width)
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))
