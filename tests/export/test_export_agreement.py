"""ONNX Runtime and TorchScript run the exported tiny Mask R-CNN as our eager model does.

One export of each format (traced on a 48x80 image), then images of other sizes and aspect
ratios, an image with no detections and a batch of two: same count and classes, boxes within
0.01 px, scores within 1e-4, every mask IoU >= 0.99 against GeneralizedRCNN.inference on the
same resized image.
"""

import warnings

import numpy as np
import pytest
import torch

from mrcnn.benchmark import natural_image, tiny_config
from mrcnn.export import ExportableMaskRCNN, export_onnx, export_torchscript
from mrcnn.export.pillow_resize import pillow_bilinear_resize, resized_shortest_edge_size
from mrcnn.modeling import build_model

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

SCORE_THRESHOLD = 0.7  # the grey image's best score is 0.64; the others have detections above 0.7
SIZES = [(100, 60), (64, 64), (37, 150)]  # tall, square (no resize), very wide; traced at 48x80


def eager_detections(model, cfg, images: np.ndarray):
    """GeneralizedRCNN.inference on images (B, H, W, 3) resized as the graph resizes them: numpy per image."""
    batch = torch.from_numpy(images)
    height, width = images.shape[1:3]
    new_height, new_width = resized_shortest_edge_size(
        torch.tensor(height), torch.tensor(width), cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST
    )
    resized = pillow_bilinear_resize(batch, new_height, new_width, new_height, new_width).to(torch.uint8)
    inputs = [{"image": image.permute(2, 0, 1).contiguous(), "height": height, "width": width} for image in resized]
    with torch.no_grad():
        outputs = model.inference(inputs)
    return [
        {
            "boxes": out["instances"].pred_boxes.tensor.numpy(),
            "scores": out["instances"].scores.numpy(),
            "classes": out["instances"].pred_classes.numpy(),
            "masks": out["instances"].pred_masks.numpy(),
        }
        for out in outputs
    ]


def split_by_image(outputs, num_images):
    """Flat graph outputs (boxes, scores, classes, masks, batch_indices) -> one dict per image."""
    boxes, scores, classes, masks, batch_indices = (np.asarray(o) for o in outputs)
    assert (np.diff(batch_indices) >= 0).all(), "detections must be grouped by image"
    return [
        {
            "boxes": boxes[batch_indices == i],
            "scores": scores[batch_indices == i],
            "classes": classes[batch_indices == i],
            "masks": masks[batch_indices == i],
        }
        for i in range(num_images)
    ]


def assert_agree(got, expected, image_shape):
    """Same count; each eager detection has its own graph detection of the same class, box within
    0.01 px, score within 1e-4 and mask IoU >= 0.99 (matched one to one: scores closer than the
    tolerance may come in either order); graph scores non-increasing."""
    assert len(got["scores"]) == len(expected["scores"])
    assert got["masks"].shape == (len(expected["scores"]), *image_shape)
    assert got["masks"].dtype == np.bool_
    assert (np.diff(got["scores"]) <= 0).all()
    unused = set(range(len(got["scores"])))
    for index in range(len(expected["scores"])):
        match = [
            j
            for j in sorted(unused)
            if got["classes"][j] == expected["classes"][index]
            and np.abs(got["boxes"][j] - expected["boxes"][index]).max() <= 0.01
            and abs(got["scores"][j] - expected["scores"][index]) <= 1e-4
        ]
        assert match, f"eager detection {index} has no counterpart in the graph's outputs"
        j = match[0]
        unused.discard(j)
        union = np.logical_or(got["masks"][j], expected["masks"][index]).sum()
        iou = np.logical_and(got["masks"][j], expected["masks"][index]).sum() / union if union else 1.0
        assert iou >= 0.99


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(cfg, eager model, ONNX Runtime session, TorchScript module) of a tiny model with spread scores."""
    torch.manual_seed(0)
    cfg = tiny_config(num_classes=3)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = SCORE_THRESHOLD
    model = build_model(cfg).eval()
    with torch.no_grad():  # box deltas that move boxes, mask logits far from the 0.5 threshold
        model.roi_heads.box_predictor.bbox_pred.weight.mul_(30.0)
        model.roi_heads.mask_head.predictor.weight.mul_(300.0)
    adapter = ExportableMaskRCNN.from_config(cfg, model)
    directory = tmp_path_factory.mktemp("export")
    sample = torch.from_numpy(natural_image(48, 80, seed=1))[None]
    onnx_path = export_onnx(adapter, sample, str(directory / "model.onnx"))
    ts_path = export_torchscript(adapter, sample, str(directory / "model.ts"))
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.load(ts_path)
    return cfg, model, session, scripted, onnx_path


def run_onnx(session, images):
    return session.run(None, {"images": images})


def run_torchscript(module, images):
    with torch.no_grad():
        return [o.numpy() for o in module(torch.from_numpy(images))]


@pytest.mark.parametrize("runner", ["onnx", "torchscript"])
def test_images_of_other_sizes_agree(exported, runner):
    cfg, model, session, scripted, _ = exported
    total = 0
    for height, width in SIZES:
        images = natural_image(height, width, seed=height + width)[None]
        outputs = run_onnx(session, images) if runner == "onnx" else run_torchscript(scripted, images)
        (got,) = split_by_image(outputs, 1)
        (expected,) = eager_detections(model, cfg, images)
        assert_agree(got, expected, (height, width))
        total += len(expected["scores"])
    assert total >= 3  # the check compared real detections


@pytest.mark.parametrize("runner", ["onnx", "torchscript"])
def test_no_detections_is_empty_outputs(exported, runner):
    cfg, model, session, scripted, _ = exported
    images = np.full((1, 50, 70, 3), 128, dtype=np.uint8)  # flat grey: nothing scores 0.5
    (expected,) = eager_detections(model, cfg, images)
    assert len(expected["scores"]) == 0
    outputs = run_onnx(session, images) if runner == "onnx" else run_torchscript(scripted, images)
    boxes, scores, classes, masks, batch_indices = outputs
    assert boxes.shape == (0, 4) and scores.shape == (0,) and classes.shape == (0,)
    assert masks.shape == (0, 50, 70) and batch_indices.shape == (0,)


@pytest.mark.parametrize("runner", ["onnx", "torchscript"])
def test_batch_of_two_agrees_image_by_image(exported, runner):
    cfg, model, session, scripted, _ = exported
    images = np.stack([natural_image(56, 72, seed=5), natural_image(56, 72, seed=6)])
    outputs = run_onnx(session, images) if runner == "onnx" else run_torchscript(scripted, images)
    got = split_by_image(outputs, 2)
    expected = eager_detections(model, cfg, images)
    for got_image, expected_image in zip(got, expected):
        assert_agree(got_image, expected_image, (56, 72))
    assert all(len(e["scores"]) > 0 for e in expected)


def test_graphs_hold_no_onednn_private_ops(exported):
    *_, scripted, onnx_path = exported
    graph = onnx.load(onnx_path).graph
    assert {node.domain for node in graph.node} <= {"", "ai.onnx"}
    assert not [node.op_type for node in graph.node if "mkldnn" in node.op_type.lower()]
    assert {"NonMaxSuppression", "RoiAlign"} <= {node.op_type for node in graph.node}
    assert "mkldnn" not in str(scripted.inlined_graph)


def test_saturated_scores_keep_the_eager_choice_among_ties(tmp_path):
    """Hundreds of class probabilities of exactly 1.0: ONNX Runtime must keep the same top 100 as eager."""
    torch.manual_seed(0)
    cfg = tiny_config(num_classes=3)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.5
    cfg.TEST.DETECTIONS_PER_IMAGE = 20
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(300.0)
        model.roi_heads.mask_head.predictor.weight.mul_(300.0)
    images = natural_image(60, 90, seed=8)[None]
    (expected,) = eager_detections(model, cfg, images)
    assert (expected["scores"] == 1.0).sum() == 20  # the top 20 is a choice among ties
    path = export_onnx(ExportableMaskRCNN.from_config(cfg, model), torch.from_numpy(images), str(tmp_path / "m.onnx"))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (got,) = split_by_image(run_onnx(session, images), 1)
    assert_agree(got, expected, (60, 90))


@pytest.mark.parametrize("runner", ["onnx", "torchscript"])
def test_cascade_model_agrees_on_other_sizes_and_a_batch(tmp_path, runner):
    """Three box stages: scores averaged over the stages, boxes of the last, as eager inference."""
    torch.manual_seed(0)
    cfg = tiny_config(num_classes=3)
    cfg.MODEL.ROI_HEADS.NAME = "CascadeROIHeads"
    cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = True
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.4
    model = build_model(cfg).eval()
    with torch.no_grad():  # every stage moves its boxes; mask logits far from the threshold
        for predictor in model.roi_heads.box_predictor:
            predictor.bbox_pred.weight.mul_(30.0)
            predictor.cls_score.weight.mul_(10.0)
        model.roi_heads.mask_head.predictor.weight.mul_(300.0)
    adapter = ExportableMaskRCNN.from_config(cfg, model)
    sample = torch.from_numpy(natural_image(48, 80, seed=1))[None]
    if runner == "onnx":
        session = ort.InferenceSession(
            export_onnx(adapter, sample, str(tmp_path / "cascade.onnx")), providers=["CPUExecutionProvider"]
        )
        run = lambda images: run_onnx(session, images)  # noqa: E731
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            scripted = torch.jit.load(export_torchscript(adapter, sample, str(tmp_path / "cascade.ts")))
        run = lambda images: run_torchscript(scripted, images)  # noqa: E731
    total = 0
    cases = [natural_image(h, w, seed=h + w)[None] for h, w in SIZES]
    cases.append(np.stack([natural_image(56, 72, seed=5), natural_image(56, 72, seed=6)]))
    for images in cases:
        got = split_by_image(run(images), len(images))
        expected = eager_detections(model, cfg, images)
        for got_image, expected_image in zip(got, expected):
            assert_agree(got_image, expected_image, images.shape[1:3])
            total += len(expected_image["scores"])
    assert total >= 5  # the check compared real detections
