"""DefaultPredictor on images without pixels and on thin strips: a clear error, or predictions at their size."""

import numpy as np
import pytest
import torch

from mrcnn.benchmark import tiny_config
from mrcnn.engine.predictor import DefaultPredictor


@pytest.fixture(scope="module")
def predictor():
    cfg = tiny_config(num_classes=3, image_size=64)
    cfg.MODEL.MASK_ON = True
    cfg.INPUT.FORMAT = "BGR"
    cfg.TEST.DETECTIONS_PER_IMAGE = 5  # few masks to paste
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0  # a random model still detects something
    torch.manual_seed(0)
    return DefaultPredictor(cfg)


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 40, 3), (40, 0, 3)])
def test_image_without_pixels_names_its_size(predictor, shape):
    """It used to be a ZeroDivisionError from the resize."""
    expected = rf"Image 1: its size {shape[0]}x{shape[1]} \(HxW\) has no pixels; an image needs at least 1x1"
    with pytest.raises(ValueError, match=expected):
        predictor.predict_batch([np.zeros((8, 8, 3), dtype=np.uint8), np.zeros(shape, dtype=np.uint8)])


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 3000, 3)])
def test_tiny_and_thin_images_predict_at_their_size(predictor, shape):
    """A 2x3000 strip capped at MAX_SIZE_TEST used to round to 0 rows and fail inside Pillow."""
    image = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    instances = predictor(image)["instances"]
    assert instances.image_size == shape[:2]
    assert len(instances) > 0 and tuple(instances.pred_masks.shape[1:]) == shape[:2]
