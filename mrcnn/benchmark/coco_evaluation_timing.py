"""Timing of COCO evaluation on synthetic COCO-sized output, to compare evaluation backends.

Example (what tools/benchmark.py --task eval runs)::

    from mrcnn.benchmark import time_coco_evaluation
    for backend in ("pycocotools", "faster_coco_eval"):
        print(time_coco_evaluation(500, 100, backend))

The ground truth is a COCO json of elliptical objects (polygons, sizes spanning COCO's small,
medium and large ranges, 80 classes with non-contiguous ids); the predictions are noisy copies
of the ground truth plus random false positives, with full-image boolean masks, as a Mask
R-CNN produces them. Everything is drawn from ``seed``, so every backend sees the same input.
"""

import json
import logging
import os
import tempfile
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pycocotools.mask as mask_util
import torch

from mrcnn.data import MetadataCatalog
from mrcnn.evaluation import COCOEvaluator
from mrcnn.structures import Boxes, Instances

__all__ = ["time_coco_evaluation", "synthetic_coco_ground_truth"]

logger = logging.getLogger(__name__)

_ELLIPSE_VERTICES = 24


def _random_ellipse(rng: np.random.Generator, height: int, width: int) -> Tuple[float, float, float, float]:
    """(cx, cy, rx, ry) with a log-uniform size, so small, medium and large objects all occur."""
    side = float(np.exp(rng.uniform(np.log(8), np.log(min(height, width) * 0.8))))
    aspect = float(np.exp(rng.uniform(-0.7, 0.7)))
    rx, ry = side * np.sqrt(aspect) / 2, side / np.sqrt(aspect) / 2
    rx, ry = min(rx, width / 2 - 1), min(ry, height / 2 - 1)
    cx = float(rng.uniform(rx, width - rx))
    cy = float(rng.uniform(ry, height - ry))
    return cx, cy, rx, ry


def _ellipse_polygon(cx: float, cy: float, rx: float, ry: float) -> List[float]:
    angles = np.linspace(0, 2 * np.pi, _ELLIPSE_VERTICES, endpoint=False)
    points = np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)
    return [round(float(v), 2) for v in points.reshape(-1)]


def _ellipse_box(cx: float, cy: float, rx: float, ry: float, height: int, width: int) -> List[float]:
    """XYXY box of the ellipse, clipped to the image."""
    return [max(cx - rx, 0.0), max(cy - ry, 0.0), min(cx + rx, float(width)), min(cy + ry, float(height))]


def _fill_ellipse(mask: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> None:
    height, width = mask.shape
    x0, x1 = max(int(cx - rx), 0), min(int(np.ceil(cx + rx)) + 1, width)
    y0, y1 = max(int(cy - ry), 0), min(int(np.ceil(cy + ry)) + 1, height)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    mask[y0:y1, x0:x1] = ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1.0


def synthetic_coco_ground_truth(
    num_images: int, gt_per_image: float = 7, height: int = 480, width: int = 640, num_classes: int = 80, seed: int = 0
) -> Tuple[Dict[str, Any], List[List[Tuple[int, Tuple[float, float, float, float]]]]]:
    """A COCO instances dict of elliptical polygons, and per image the (class index, ellipse) of each object.

    Category ids are 1, 3, 5, ... (non-contiguous, as in COCO), so id mapping is exercised.
    """
    rng = np.random.default_rng(seed)
    categories = [{"id": 2 * k + 1, "name": f"class_{k}"} for k in range(num_classes)]
    images, annotations, objects = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": width, "height": height, "file_name": f"{image_id:06d}.jpg"})
        image_objects = []
        for _ in range(int(rng.poisson(gt_per_image))):
            class_index = int(rng.integers(num_classes))
            ellipse = _random_ellipse(rng, height, width)
            polygon = _ellipse_polygon(*ellipse)
            rle = mask_util.merge(mask_util.frPyObjects([polygon], height, width))
            x0, y0, x1, y1 = _ellipse_box(*ellipse, height, width)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": categories[class_index]["id"],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "segmentation": [polygon],
                    "area": float(mask_util.area(rle)),
                    "iscrowd": 0,
                }
            )
            image_objects.append((class_index, ellipse))
        objects.append(image_objects)
    coco = {"images": images, "annotations": annotations, "categories": categories}
    return coco, objects


def _synthetic_prediction(
    rng: np.random.Generator,
    image_objects: List[Tuple[int, Tuple[float, float, float, float]]],
    dets_per_image: int,
    num_classes: int,
    height: int,
    width: int,
    with_masks: bool,
) -> Instances:
    """Noisy copies of the ground truth (high scores) topped up with random detections (low scores)."""
    ellipses, classes, scores = [], [], []
    for class_index, (cx, cy, rx, ry) in image_objects[:dets_per_image]:
        jitter = rng.normal(0, 0.08, size=4)
        ellipses.append((cx + jitter[0] * rx, cy + jitter[1] * ry, rx * np.exp(jitter[2]), ry * np.exp(jitter[3])))
        # now and then the class is wrong, as with a real detector
        classes.append(class_index if rng.uniform() < 0.85 else int(rng.integers(num_classes)))
        scores.append(float(rng.uniform(0.5, 1.0)))
    for _ in range(dets_per_image - len(ellipses)):
        ellipses.append(_random_ellipse(rng, height, width))
        classes.append(int(rng.integers(num_classes)))
        scores.append(float(rng.uniform(0.05, 0.7)))
    instances = Instances((height, width))
    instances.pred_boxes = Boxes(torch.tensor([_ellipse_box(*e, height, width) for e in ellipses], dtype=torch.float32))
    instances.scores = torch.tensor(scores, dtype=torch.float32)
    instances.pred_classes = torch.tensor(classes, dtype=torch.int64)
    if with_masks:
        masks = np.zeros((len(ellipses), height, width), dtype=bool)
        for mask, ellipse in zip(masks, ellipses):
            _fill_ellipse(mask, *ellipse)
        instances.pred_masks = torch.from_numpy(masks)
    return instances


def time_coco_evaluation(
    num_images: int = 500,
    dets_per_image: int = 100,
    backend: str = "pycocotools",
    *,
    gt_per_image: float = 7,
    height: int = 480,
    width: int = 640,
    num_classes: int = 80,
    with_masks: bool = True,
    seed: int = 0,
    workdir: Optional[str] = None,
) -> Dict[str, Any]:
    """Seconds COCOEvaluator spends on ``num_images`` synthetic images of ``dets_per_image`` detections.

    Returns ``process_seconds`` (turning outputs into COCO results, masks RLE-encoded: the same
    for every backend), ``evaluate_seconds`` (COCOeval for bbox and, with masks, segm: where
    backends differ), their sum ``total_seconds``, and the resulting ``bbox/AP`` and ``segm/AP``.
    """
    temporary = None
    if workdir is None:
        temporary = tempfile.TemporaryDirectory(prefix="coco_eval_benchmark_")
        workdir = temporary.name
    dataset_name = f"_coco_eval_benchmark_{uuid.uuid4().hex[:8]}"
    try:
        coco, objects = synthetic_coco_ground_truth(num_images, gt_per_image, height, width, num_classes, seed)
        json_file = os.path.join(workdir, f"{dataset_name}.json")
        with open(json_file, "w", encoding="utf-8") as f:
            json.dump(coco, f)
        MetadataCatalog.get(dataset_name).set(
            json_file=json_file,
            thing_classes=[c["name"] for c in coco["categories"]],
            thing_dataset_id_to_contiguous_id={c["id"]: i for i, c in enumerate(coco["categories"])},
        )
        tasks = ("bbox", "segm") if with_masks else ("bbox",)
        evaluator = COCOEvaluator(dataset_name, tasks, distributed=False, backend=backend)
        evaluator.reset()
        rng = np.random.default_rng(seed + 1)
        process_seconds = 0.0
        for image_id, image_objects in enumerate(objects, start=1):
            instances = _synthetic_prediction(
                rng, image_objects, dets_per_image, num_classes, height, width, with_masks
            )
            start = time.perf_counter()
            evaluator.process([{"image_id": image_id, "height": height, "width": width}], [{"instances": instances}])
            process_seconds += time.perf_counter() - start
        start = time.perf_counter()
        results = evaluator.evaluate()
        evaluate_seconds = time.perf_counter() - start
    finally:
        if dataset_name in MetadataCatalog.list():
            MetadataCatalog.remove(dataset_name)
        if temporary is not None:
            temporary.cleanup()
    timing = {
        "backend": backend,
        "num_images": num_images,
        "dets_per_image": dets_per_image,
        "process_seconds": process_seconds,
        "evaluate_seconds": evaluate_seconds,
        "total_seconds": process_seconds + evaluate_seconds,
        "bbox/AP": results["bbox"]["AP"],
    }
    if with_masks:
        timing["segm/AP"] = results["segm"]["AP"]
    logger.info(
        f"COCO evaluation with {backend}: {num_images} images x {dets_per_image} detections: "
        f"process {process_seconds:.2f} s, evaluate {evaluate_seconds:.2f} s"
    )
    return timing
