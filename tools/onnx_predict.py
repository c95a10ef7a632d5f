#!/usr/bin/env python
"""Run an exported ONNX Mask R-CNN on images with nothing but onnxruntime, numpy and Pillow.

    python tools/onnx_predict.py output/export/model.onnx photo.jpg [more.jpg ...] \
        [--output DIR] [--confidence-threshold 0.5]

Reads model.json beside the model (class names, input channel order), prints one line per
detection (image, class, score, box) and, with --output, writes each image with its masks and
boxes drawn. This file imports no torch and no mrcnn: copy it next to the model to deploy.
"""

import argparse
import json
import os
import sys
from typing import List, Optional

import numpy as np
import onnxruntime
from PIL import Image, ImageDraw


def load_model(model_path: str):
    """(ONNX Runtime session, model.json dict) for the model file and the json beside it."""
    card_path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "model.json")
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"No model file at '{model_path}'")
    try:
        with open(card_path, encoding="utf-8") as f:
            card = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"Cannot read '{card_path}', the json written beside the model: {error}") from error
    return onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"]), card


def predict(session, card: dict, rgb: np.ndarray) -> dict:
    """Detections of one (H, W, 3) uint8 RGB image: {"boxes", "scores", "classes", ["masks"]} numpy arrays."""
    image = rgb[:, :, ::-1] if card["input"]["channel_order"] == "BGR" else rgb
    names = [output.name for output in session.get_outputs()]
    values = session.run(None, {"images": np.ascontiguousarray(image)[None]})
    return {name: value for name, value in zip(names, values) if name != "batch_indices"}


def draw(rgb: np.ndarray, detections: dict, class_names: List[str]) -> Image.Image:
    """The image with each detection's mask tinted and its box and label drawn."""
    canvas = rgb.astype(np.float32)
    colors = np.random.default_rng(0).integers(64, 256, size=(max(len(detections["scores"]), 1), 3))
    for index, mask in enumerate(detections.get("masks", [])):
        canvas[mask] = 0.5 * canvas[mask] + 0.5 * colors[index]
    picture = Image.fromarray(canvas.astype(np.uint8))
    pen = ImageDraw.Draw(picture)
    for index, (box, score, label) in enumerate(zip(detections["boxes"], detections["scores"], detections["classes"])):
        color = tuple(int(c) for c in colors[index])
        pen.rectangle([float(v) for v in box], outline=color, width=2)
        pen.text((float(box[0]) + 2, float(box[1]) + 1), f"{class_names[int(label)]} {score:.2f}", fill=color)
    return picture


def main(argv: Optional[List[str]] = None) -> int:
    """Run the consumer; returns the exit code (1 if any image could not be read)."""
    parser = argparse.ArgumentParser(description="Run an exported ONNX Mask R-CNN on images.")
    parser.add_argument("model", help="model.onnx written by tools/export_model.py (model.json beside it)")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--output", metavar="DIR", help="directory for the pictures with detections drawn")
    parser.add_argument("--confidence-threshold", type=float, default=0.5, help="minimum score shown (default 0.5)")
    args = parser.parse_args(argv)
    try:
        session, card = load_model(args.model)
    except (OSError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    failed = 0
    for path in args.images:
        try:
            with Image.open(path) as opened:
                rgb = np.asarray(opened.convert("RGB"))
        except OSError as error:
            print(f"Skipping '{path}': not a readable image ({error})", file=sys.stderr)
            failed += 1
            continue
        detections = predict(session, card, rgb)
        kept = detections["scores"] >= args.confidence_threshold
        detections = {name: value[kept] for name, value in detections.items()}
        for box, score, label in zip(detections["boxes"], detections["scores"], detections["classes"]):
            box_text = ", ".join(f"{v:.1f}" for v in box)
            print(f"{path}: {card['class_names'][int(label)]} {score:.3f} [{box_text}]")
        if args.output:
            os.makedirs(args.output, exist_ok=True)
            name = os.path.splitext(os.path.basename(path))[0] + ".png"
            draw(rgb, detections, card["class_names"]).save(os.path.join(args.output, name))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
