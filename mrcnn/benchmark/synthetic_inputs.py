"""Synthetic inputs for tests and benchmarks: natural-looking images, and training batches of them
with elliptical instances, in our input format and in torchvision's."""

from typing import Dict, List, Tuple

import numpy as np
import torch

from mrcnn.structures import Boxes, Instances, PolygonMasks, polygons_to_bitmask

__all__ = ["natural_image", "synthetic_training_batch", "to_torchvision_training_inputs"]


def natural_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic H×W×3 uint8 RGB image with smooth shading, edges and texture.

    Random low-frequency colour fields plus filled ellipses and rectangles and mild noise: it has
    the structure detectors react to, unlike zeros or uniform noise.
    """
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.float32)
    for _ in range(6):
        fy, fx = rng.uniform(0.5, 4.0, size=2) * 2 * np.pi / np.array([height, width])
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(ys * fy + xs * fx + phase)
        image += wave[..., None] * rng.uniform(10, 40, size=3)
    image += rng.uniform(60, 180, size=3)
    for _ in range(25):
        colour = rng.uniform(0, 255, size=3)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.02, 0.25) * height, rng.uniform(0.02, 0.25) * width
        if rng.random() < 0.5:
            inside = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1.0
        else:
            inside = (np.abs(ys - cy) <= ry) & (np.abs(xs - cx) <= rx)
        shade = 0.8 + 0.2 * np.sin(xs[inside] / rng.uniform(3, 15))
        image[inside] = colour * shade[:, None]
    image += rng.normal(0, 6, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _ellipse_polygon(rng: np.random.Generator, height: int, width: int, vertices: int = 24) -> np.ndarray:
    """A flat [x0, y0, x1, y1, ...] ellipse, log-uniform in size so small, medium and large objects occur."""
    side = float(np.exp(rng.uniform(np.log(12), np.log(0.6 * min(height, width)))))
    aspect = float(np.exp(rng.uniform(-0.7, 0.7)))
    rx, ry = side * np.sqrt(aspect) / 2, side / np.sqrt(aspect) / 2
    cx, cy = rng.uniform(rx, width - rx), rng.uniform(ry, height - ry)
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1).reshape(-1)


def synthetic_training_batch(
    num_images: int,
    height: int,
    width: int,
    instances_per_image: float = 7.0,
    num_classes: int = 80,
    seed: int = 0,
) -> List[Dict]:
    """``num_images`` model inputs for training: natural-looking (3, height, width) uint8 RGB images
    with Instances of gt_boxes, gt_classes and PolygonMasks gt_masks (ellipses).

    The instance count is Poisson around ``instances_per_image`` (COCO averages about 7), at least 1.
    """
    rng = np.random.default_rng(seed)
    batch = []
    for index in range(num_images):
        image = torch.from_numpy(natural_image(height, width, seed=seed * 1000 + index)).permute(2, 0, 1)
        count = max(1, int(rng.poisson(instances_per_image)))
        polygons = [_ellipse_polygon(rng, height, width) for _ in range(count)]
        masks = PolygonMasks([[polygon] for polygon in polygons])
        instances = Instances((height, width))
        instances.gt_boxes = Boxes(masks.get_bounding_boxes().tensor)
        instances.gt_classes = torch.from_numpy(rng.integers(0, num_classes, size=count)).to(torch.int64)
        instances.gt_masks = masks
        batch.append({"image": image.contiguous(), "height": height, "width": width, "instances": instances})
    return batch


def to_torchvision_training_inputs(batch: List[Dict]) -> Tuple[List[torch.Tensor], List[Dict[str, torch.Tensor]]]:
    """The same batch as torchvision's detection models take it: 0-1 float images and target dicts
    with boxes, labels (our class + 1: torchvision keeps 0 for background) and uint8 bit masks."""
    images, targets = [], []
    for item in batch:
        instances = item["instances"]
        height, width = instances.image_size
        masks = np.stack([polygons_to_bitmask(p, height, width) for p in instances.gt_masks.polygons])
        images.append(item["image"].float() / 255.0)
        targets.append(
            {
                "boxes": instances.gt_boxes.tensor.clone(),
                "labels": instances.gt_classes + 1,
                "masks": torch.from_numpy(masks.astype(np.uint8)),
            }
        )
    return images, targets
