"""Rescale detections from the network's input size to the size the caller asked for."""

import torch

from mrcnn.layers import paste_masks_in_image
from mrcnn.structures import Boxes, Instances

__all__ = ["detector_postprocess"]


def detector_postprocess(
    results: Instances,
    output_height: int,
    output_width: int,
    mask_threshold: float = 0.5,
    paste_mode: str = "grid",
) -> Instances:
    """Scale boxes to ``output_height × output_width``, clip them, and paste the M×M mask
    probabilities into bool masks (N, H, W) of that size."""
    input_height, input_width = results.image_size
    output_height, output_width = int(output_height), int(output_width)
    scale_x = torch.tensor(output_width, dtype=torch.float32) / torch.tensor(input_width, dtype=torch.float32)
    scale_y = torch.tensor(output_height, dtype=torch.float32) / torch.tensor(input_height, dtype=torch.float32)
    output = Instances((output_height, output_width), **results.get_fields())
    if output.has("pred_boxes"):
        boxes = output.pred_boxes.tensor
        scale = torch.stack([scale_x, scale_y, scale_x, scale_y]).to(boxes)
        boxes = Boxes(boxes * scale)
        boxes.clip((output_height, output_width))
        output.pred_boxes = boxes
    if output.has("pred_masks") and output.pred_masks.dim() == 4:
        output.pred_masks = paste_masks_in_image(
            output.pred_masks[:, 0],
            output.pred_boxes.tensor,
            (output_height, output_width),
            threshold=mask_threshold,
            mode=paste_mode,
        )
    return output
