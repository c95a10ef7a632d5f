"""mrcnn: Mask R-CNN instance segmentation built from registered, configurable components."""

__version__ = "0.1.0"
