"""DefaultPredictor: predictions at the input's size, the test-time resize, weight loading, bad input."""

import numpy as np
import pytest
import torch

from mrcnn.benchmark import fpn_config
from mrcnn.engine.predictor import DefaultPredictor

MIN_SIZE_TEST, MAX_SIZE_TEST = 64, 128


def tiny_cfg(input_format: str = "BGR"):
    """A narrow ResNet-18 FPN Mask R-CNN that runs in a fraction of a second on 64-128 px images."""
    cfg = fpn_config()
    mean = [103.53, 116.28, 123.675]
    cfg.merge_from_list(
        [
            "MODEL.RESNETS.DEPTH",
            18,
            "MODEL.RESNETS.RES2_OUT_CHANNELS",
            64,
            "MODEL.FPN.OUT_CHANNELS",
            32,
            "MODEL.ROI_HEADS.NUM_CLASSES",
            3,
            "MODEL.ROI_BOX_HEAD.NUM_FC",
            2,
            "MODEL.ROI_BOX_HEAD.FC_DIM",
            64,
            "MODEL.ROI_MASK_HEAD.NUM_CONV",
            1,
            "MODEL.ROI_MASK_HEAD.CONV_DIM",
            32,
            "MODEL.RPN.PRE_NMS_TOPK_TEST",
            200,
            "MODEL.RPN.POST_NMS_TOPK_TEST",
            50,
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
            0.0,
            "TEST.DETECTIONS_PER_IMAGE",
            20,
            "INPUT.MIN_SIZE_TEST",
            MIN_SIZE_TEST,
            "INPUT.MAX_SIZE_TEST",
            MAX_SIZE_TEST,
            "INPUT.FORMAT",
            input_format,
            "MODEL.PIXEL_MEAN",
            mean if input_format == "BGR" else mean[::-1],
        ]
    )
    return cfg


def _capture_inputs(predictor):
    """Record the batched inputs the model receives."""
    seen = []
    original_forward = predictor.model.forward

    def forward(batched_inputs):
        seen.append([{k: (v.clone() if torch.is_tensor(v) else v) for k, v in x.items()} for x in batched_inputs])
        return original_forward(batched_inputs)

    predictor.model.forward = forward
    return seen


def _expected_resized(height: int, width: int):
    scale = MIN_SIZE_TEST / min(height, width)
    if max(height, width) * scale > MAX_SIZE_TEST:
        scale = MAX_SIZE_TEST / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


@pytest.mark.parametrize("input_format", ["BGR", "RGB"])
def test_outputs_have_the_input_size_for_small_and_large_images(input_format):
    torch.manual_seed(0)
    predictor = DefaultPredictor(tiny_cfg(input_format))
    assert not predictor.model.training
    seen = _capture_inputs(predictor)
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(40, 70, 3), dtype=np.uint8)  # below the test size: upscaled
    large = rng.integers(0, 256, size=(300, 180, 3), dtype=np.uint8)  # above it: downscaled
    for image in (small, large):
        instances = predictor(image)["instances"]
        height, width = image.shape[:2]
        assert instances.image_size == (height, width)
        assert len(instances) > 0  # score threshold 0: a random model still proposes boxes
        assert instances.pred_masks.shape == (len(instances), height, width)
        assert instances.pred_masks.dtype == torch.bool
        boxes = instances.pred_boxes.tensor
        assert boxes[:, 0].min() >= 0 and boxes[:, 2].max() <= width
        assert boxes[:, 1].min() >= 0 and boxes[:, 3].max() <= height
        assert bool(torch.all(instances.scores[:-1] >= instances.scores[1:]))
        assert int(instances.pred_classes.max()) < 3
    # the model saw each image resized like the test loader does, channels unchanged, original size noted
    for (model_input,), image in zip(seen, (small, large)):
        assert tuple(model_input["image"].shape[1:]) == _expected_resized(*image.shape[:2])
        assert (model_input["height"], model_input["width"]) == image.shape[:2]
    uniform = np.empty((50, 60, 3), dtype=np.uint8)
    uniform[:] = (10, 120, 240)
    predictor(uniform)
    channels = seen[-1][0]["image"].to(torch.float32).mean(dim=(1, 2))
    torch.testing.assert_close(channels, torch.tensor([10.0, 120.0, 240.0]), atol=0.5, rtol=0)


def test_predict_batch_equals_single_calls_and_min_size_zero_keeps_size():
    torch.manual_seed(0)
    cfg = tiny_cfg()
    cfg.INPUT.MIN_SIZE_TEST = 0
    predictor = DefaultPredictor(cfg)
    seen = _capture_inputs(predictor)
    rng = np.random.default_rng(1)
    images = [
        rng.integers(0, 256, size=(64, 96, 3), dtype=np.uint8),
        rng.integers(0, 256, size=(80, 64, 3), dtype=np.uint8),
    ]
    batch = predictor.predict_batch(images)
    assert len(seen) == 1 and len(seen[0]) == 2  # one forward pass for the list
    assert [tuple(x["image"].shape[1:]) for x in seen[0]] == [(64, 96), (80, 64)]  # not resized
    assert [o["instances"].image_size for o in batch] == [(64, 96), (80, 64)]
    assert predictor.predict_batch([]) == []

    # images of one size (a multiple of 32, so no padding) give the same detections alone and batched
    same_size = [images[0], rng.integers(0, 256, size=(64, 96, 3), dtype=np.uint8)]
    for image, output in zip(same_size, predictor.predict_batch(same_size)):
        single = predictor(image)["instances"]
        batched = output["instances"]
        assert len(batched) == len(single)
        torch.testing.assert_close(batched.scores.sort().values, single.scores.sort().values, atol=1e-4, rtol=0)
        torch.testing.assert_close(batched.pred_boxes.tensor[0], single.pred_boxes.tensor[0], atol=1e-2, rtol=0)


def test_weights_are_loaded(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_cfg()
    first = DefaultPredictor(cfg)
    path = tmp_path / "model.pth"
    torch.save({"model": first.model.state_dict()}, path)
    torch.manual_seed(123)  # a different random init, overwritten by the weights
    cfg.MODEL.WEIGHTS = str(path)
    second = DefaultPredictor(cfg)
    image = np.random.default_rng(2).integers(0, 256, size=(72, 72, 3), dtype=np.uint8)
    a, b = first(image)["instances"], second(image)["instances"]
    torch.testing.assert_close(a.scores, b.scores)
    torch.testing.assert_close(a.pred_boxes.tensor, b.pred_boxes.tensor)
    assert torch.equal(a.pred_masks, b.pred_masks)


def test_bad_images_are_rejected_with_their_problem():
    predictor = DefaultPredictor(tiny_cfg())
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predictor(np.zeros((32, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        predictor(np.zeros((32, 32, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="numpy"):
        predictor(torch.zeros(32, 32, 3, dtype=torch.uint8))
