"""DefaultPredictor: a trained model behind one call, from a numpy image to Instances."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from mrcnn.checkpoint import DetectionCheckpointer
from mrcnn.data import MetadataCatalog
from mrcnn.data import transforms as T
from mrcnn.modeling import build_model
from mrcnn.modeling.postprocessing import detector_postprocess
from mrcnn.utils.plugins import import_plugins

__all__ = ["DefaultPredictor"]

logger = logging.getLogger(__name__)

_CHANNEL_ORDERS = ("BGR", "RGB")


class DefaultPredictor:
    """Runs the model of a config on single images (or small lists of them) for inference.

    It builds the model in eval mode, loads ``cfg.MODEL.WEIGHTS`` (random init when empty),
    resizes every image the way the test loader does (shortest edge ``INPUT.MIN_SIZE_TEST``,
    longest at most ``INPUT.MAX_SIZE_TEST``; ``MIN_SIZE_TEST`` 0 keeps the size) and returns the
    predictions at the size of the image given.

    Input format: an (H, W, 3) uint8 numpy array whose channels are in the order
    ``cfg.INPUT.FORMAT`` names — "BGR" by default, which is what ``cv2.imread`` returns; with an
    "RGB" config pass RGB (what Pillow gives). Unlike detectron2's predictor, which always takes
    BGR and flips it for RGB models, the image is passed through unchanged, so the caller decides.

        predictor = DefaultPredictor(cfg)
        outputs = predictor(image)           # {"instances": Instances}, on cfg.MODEL.DEVICE
        batch = predictor.predict_batch([image_a, image_b])

    Instances fields: pred_boxes (Boxes, XYXY pixels), scores (N,), pred_classes (N,) and, with
    MODEL.MASK_ON, pred_masks ((N, H, W) bool).
    """

    def __init__(self, cfg):
        self.cfg = cfg.clone()
        # plugins register components (backbones, heads) that the config may name
        import_plugins(self.cfg.MODEL.PLUGINS)
        self.model = build_model(self.cfg)
        self.model.eval()
        if self.cfg.DATASETS.TEST:
            self.metadata = MetadataCatalog.get(self.cfg.DATASETS.TEST[0])
        else:
            self.metadata = None
        if self.cfg.MODEL.WEIGHTS:
            DetectionCheckpointer(self.model).load(self.cfg.MODEL.WEIGHTS)
        else:
            logger.warning("MODEL.WEIGHTS is empty: the predictor runs a randomly initialised model")

        self.input_format = self.cfg.INPUT.FORMAT
        if self.input_format not in _CHANNEL_ORDERS:
            raise ValueError(f"INPUT.FORMAT must be one of {_CHANNEL_ORDERS}, got '{self.input_format}'")
        min_size, max_size = self.cfg.INPUT.MIN_SIZE_TEST, self.cfg.INPUT.MAX_SIZE_TEST
        self.aug: Optional[Any] = (
            T.ResizeShortestEdge([min_size], max_size, sample_style="choice") if min_size > 0 else None
        )

    @property
    def device(self) -> torch.device:
        """The device the model runs on."""
        return next(self.model.parameters()).device

    def __call__(self, original_image: np.ndarray, min_score: Optional[float] = None) -> Dict[str, Any]:
        """Predict on one (H, W, 3) uint8 image in INPUT.FORMAT; returns {"instances": Instances at (H, W)}."""
        return self.predict_batch([original_image], min_score=min_score)[0]

    def predict_batch(
        self, original_images: List[np.ndarray], min_score: Optional[float] = None
    ) -> List[Dict[str, Any]]:
        """Predict on several images (any sizes) in one forward pass; one {"instances"} per image.

        ``min_score`` keeps only detections scoring at least that, dropped before their masks are
        pasted at full resolution (the pasted masks of a large image cost N x H x W bytes).
        """
        if isinstance(original_images, np.ndarray):
            raise TypeError("predict_batch expects a list of (H, W, 3) images; use predictor(image) for one image")
        inputs = [self._prepare(image, index) for index, image in enumerate(original_images)]
        if not inputs:
            return []
        with torch.inference_mode():
            if min_score is None:
                return self.model(inputs)
            if not hasattr(self.model, "inference") or not hasattr(self.model, "mask_threshold"):
                outputs = self.model(inputs)  # another meta-architecture: filter its finished outputs
                return [{"instances": out["instances"][out["instances"].scores >= min_score]} for out in outputs]
            results = self.model.inference(inputs, do_postprocess=False)
            return [
                {
                    "instances": detector_postprocess(
                        result[result.scores >= min_score],
                        x["height"],
                        x["width"],
                        self.model.mask_threshold,
                        self.model.mask_paste_mode,
                    )
                }
                for result, x in zip(results, inputs)
            ]

    def _prepare(self, image: np.ndarray, index: int) -> Dict[str, Any]:
        """The model's input dict for one image: resized CHW uint8 tensor plus the original size."""
        if not isinstance(image, np.ndarray):
            raise TypeError(f"Image {index}: expected an (H, W, 3) numpy array, got {type(image).__name__}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"Image {index}: expected shape (H, W, 3) in {self.input_format} order, got {tuple(image.shape)}"
            )
        if image.dtype != np.uint8:
            raise ValueError(f"Image {index}: expected dtype uint8 (0-255), got {image.dtype}")
        height, width = image.shape[:2]
        if height == 0 or width == 0:
            raise ValueError(
                f"Image {index}: its size {height}x{width} (HxW) has no pixels; an image needs at least 1x1"
            )
        resized = self.aug.get_transform(image).apply_image(image) if self.aug is not None else image
        tensor = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))
        return {"image": tensor.to(self.device), "height": height, "width": width}
