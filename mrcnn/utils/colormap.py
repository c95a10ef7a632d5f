"""Colours for drawing: a palette of well-separated hues and small per-instance variations."""

import colorsys
from typing import List, Sequence, Tuple

import numpy as np

__all__ = ["distinct_colors", "jitter_color", "random_color"]

# Successive multiples of the golden ratio spread hues evenly around the circle for any count,
# so the first few colours are far apart and later ones fall into the largest remaining gaps.
_GOLDEN_RATIO = (5**0.5 - 1) / 2
# Alternating saturation/value bands keep neighbouring hues apart once the circle gets crowded.
_SATURATION_VALUE_BANDS = ((0.85, 0.95), (0.65, 0.80), (0.95, 0.70))


def distinct_colors(count: int, start: int = 0) -> List[Tuple[int, int, int]]:
    """`count` RGB colours (0-255 ints) that differ visibly from each other, deterministic."""
    colors = []
    for index in range(start, start + count):
        hue = (0.08 + index * _GOLDEN_RATIO) % 1.0
        saturation, value = _SATURATION_VALUE_BANDS[(index // 7) % len(_SATURATION_VALUE_BANDS)]
        red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
        colors.append((int(round(red * 255)), int(round(green * 255)), int(round(blue * 255))))
    return colors


def jitter_color(color: Sequence[float], rng: np.random.Generator, amount: float = 0.15) -> Tuple[int, int, int]:
    """A colour near `color` (RGB 0-255): each channel moved by up to ±amount·255, clipped."""
    base = np.asarray(color, dtype=np.float64)[:3]
    shifted = base + rng.uniform(-amount, amount, size=3) * 255.0
    return tuple(int(c) for c in np.clip(np.round(shifted), 0, 255))  # type: ignore[return-value]


def random_color(rng: np.random.Generator) -> Tuple[int, int, int]:
    """A saturated, bright random RGB colour (0-255 ints)."""
    hue = rng.uniform(0.0, 1.0)
    red, green, blue = colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.0))
    return int(round(red * 255)), int(round(green * 255)), int(round(blue * 255))
