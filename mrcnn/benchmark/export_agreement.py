"""How closely an exported model's detections match the eager model's, detection by detection."""

from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from mrcnn.export.pillow_resize import pillow_bilinear_resize, resized_shortest_edge_size

__all__ = ["eager_detections", "export_agreement", "split_by_image", "worst_agreement"]

Detections = Dict[str, np.ndarray]


def eager_detections(model: nn.Module, min_size: int, max_size: int, images: np.ndarray) -> List[Detections]:
    """GeneralizedRCNN.inference on (B, H, W, 3) uint8 images resized as exported graphs resize them."""
    height, width = images.shape[1:3]
    if min_size > 0:
        new_height, new_width = resized_shortest_edge_size(
            torch.tensor(height), torch.tensor(width), min_size, max_size
        )
    else:
        new_height, new_width = torch.tensor(height), torch.tensor(width)
    resized = pillow_bilinear_resize(torch.from_numpy(images), new_height, new_width, new_height, new_width)
    inputs = [
        {"image": image.to(torch.uint8).permute(2, 0, 1).contiguous(), "height": height, "width": width}
        for image in resized
    ]
    with torch.no_grad():
        outputs = model.inference(inputs)
    results = []
    for output in outputs:
        instances = output["instances"].to("cpu")
        result = {
            "boxes": instances.pred_boxes.tensor.numpy(),
            "scores": instances.scores.numpy(),
            "classes": instances.pred_classes.numpy(),
        }
        if instances.has("pred_masks"):
            result["masks"] = instances.pred_masks.numpy()
        results.append(result)
    return results


def split_by_image(outputs: Sequence[np.ndarray], names: Sequence[str], num_images: int) -> List[Detections]:
    """Flat exported outputs (with "batch_indices") -> one {"boxes", "scores", "classes"[, "masks"]} per image."""
    named = {name: np.asarray(value) for name, value in zip(names, outputs)}
    image_of = named.pop("batch_indices")
    return [{name: value[image_of == index] for name, value in named.items()} for index in range(num_images)]


def export_agreement(got: Detections, expected: Detections) -> Dict[str, Any]:
    """Counts, and over detections matched one to one (same class, nearest box): the largest box and
    score differences and the smallest mask IoU. Scores closer than 1e-4 may come in either order."""
    report: Dict[str, Any] = {"count": len(got["scores"]), "expected_count": len(expected["scores"])}
    unused = list(range(len(got["scores"])))
    box_diff, score_diff, mask_iou, unmatched = 0.0, 0.0, 1.0, 0
    for index in range(len(expected["scores"])):
        same_class = [j for j in unused if got["classes"][j] == expected["classes"][index]]
        if not same_class:
            unmatched += 1
            continue
        distances = [np.abs(got["boxes"][j] - expected["boxes"][index]).max() for j in same_class]
        j = same_class[int(np.argmin(distances))]
        unused.remove(j)
        box_diff = max(box_diff, float(min(distances)))
        score_diff = max(score_diff, float(abs(got["scores"][j] - expected["scores"][index])))
        if "masks" in got:
            union = np.logical_or(got["masks"][j], expected["masks"][index]).sum()
            if union:
                mask_iou = min(mask_iou, float(np.logical_and(got["masks"][j], expected["masks"][index]).sum() / union))
    report.update(
        {"unmatched": unmatched, "max_box_diff_px": box_diff, "max_score_diff": score_diff, "min_mask_iou": mask_iou}
    )
    report["agree"] = (
        report["count"] == report["expected_count"]
        and unmatched == 0
        and box_diff <= 0.01
        and score_diff <= 1e-4
        and mask_iou >= 0.99
    )
    return report


def worst_agreement(
    run_exported: Callable[[np.ndarray], Sequence[np.ndarray]],
    output_names: Sequence[str],
    model: nn.Module,
    min_size: int,
    max_size: int,
    cases: Sequence[Tuple[str, np.ndarray]],
) -> Dict[str, Any]:
    """export_agreement of every image of every (name, (B, H, W, 3) batch) case: {case: [per image]}."""
    report = {}
    for name, images in cases:
        expected = eager_detections(model, min_size, max_size, images)
        got = split_by_image(run_exported(images), output_names, len(images))
        report[name] = [export_agreement(g, e) for g, e in zip(got, expected)]
    return report
