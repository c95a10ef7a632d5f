"""The json written beside an exported model: what a consumer needs to run it without mrcnn."""

import json
import os
from typing import Any, Dict, List, Optional

__all__ = ["MODEL_CARD_NAME", "model_card", "write_model_card"]

MODEL_CARD_NAME = "model.json"


def model_card(
    cfg,
    model_file: str,
    export_format: str,
    output_names: List[str],
    class_names: Optional[List[str]],
    opset: Optional[int] = None,
) -> Dict[str, Any]:
    """A json-safe description of an exported model: inputs, outputs, channel order and class names."""
    num_classes = int(cfg.MODEL.ROI_HEADS.NUM_CLASSES)
    if not class_names or len(class_names) != num_classes:
        class_names = [f"class {index}" for index in range(num_classes)]
    outputs = {
        "boxes": "(N, 4) float32: XYXY boxes in the input image's pixels",
        "scores": "(N,) float32: detection confidence in [0, 1]",
        "classes": "(N,) int64: index into class_names",
        "masks": "(N, H, W) bool: instance masks at the input image's resolution",
        "batch_indices": "(N,) int64: the image of the batch each detection belongs to",
    }
    card = {
        "format": export_format,
        "model_file": os.path.basename(model_file),
        "input": {
            "name": "images",
            "shape": "(B, H, W, 3)",
            "dtype": "uint8",
            "channel_order": cfg.INPUT.FORMAT,
            "description": (
                "B decoded images of one size, any H and W; resizing (shortest edge "
                f"{cfg.INPUT.MIN_SIZE_TEST}, longest at most {cfg.INPUT.MAX_SIZE_TEST}), normalisation and "
                "padding happen inside the model"
            ),
        },
        "outputs": [{"name": name, "description": outputs[name]} for name in output_names],
        "order": "detections are grouped by image, by decreasing score within an image; N may be 0",
        "class_names": list(class_names),
        "score_threshold": float(cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST),
        "mask_threshold": float(cfg.MODEL.ROI_MASK_HEAD.MASK_THRESHOLD),
    }
    if opset is not None:
        card["onnx_opset"] = int(opset)
    return card


def write_model_card(card: Dict[str, Any], directory: str) -> str:
    """Write ``card`` as ``directory/model.json``; returns the path."""
    path = os.path.join(directory, MODEL_CARD_NAME)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    return path
