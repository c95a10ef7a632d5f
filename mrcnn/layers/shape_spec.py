"""ShapeSpec: what a feature map looks like, passed between components instead of tensors."""

from dataclasses import dataclass
from typing import Optional


@dataclass
class ShapeSpec:
    """Channels, spatial size and stride of a feature map; any may be unknown (None)."""

    channels: Optional[int] = None
    height: Optional[int] = None
    width: Optional[int] = None
    stride: Optional[int] = None
