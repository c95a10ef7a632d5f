#!/usr/bin/env python
"""Export a trained Mask R-CNN to ONNX or TorchScript, with a json describing it.

    python tools/export_model.py --config-file configs/shapes/cascade_mask_rcnn_shapes.yaml \
        --format onnx --output output/export MODEL.WEIGHTS output/demo/model_final.pth

--output DIR gets model.onnx (or model.ts) and model.json: the class names, the input's channel
order and what the inputs and outputs are. The exported model takes (B, H, W, 3) uint8 images of
any size (resize, normalisation and padding are inside) and returns boxes, scores, classes, masks
pasted at H x W and the image index of each detection. --export-method tracing is the one method:
the model's inference code keeps Python lists of per-image structures, which scripting cannot
compile, and the traced graph is already dynamic in image size, batch size and detection count.

--sample-image IMG traces on that image (default: a synthetic 480x640 image); any image size
works afterwards. The ONNX model is checked in ONNX Runtime on the sample before the tool exits
(--no-check skips it). Exit code 0 on success, 2 for a bad config or input, 1 when the export or
its check fails.
"""

import argparse
import logging
import os
import sys
import time
from typing import List, Optional

import numpy as np
import torch

from mrcnn.checkpoint import DetectionCheckpointer
from mrcnn.config import ConfigError
from mrcnn.data import MetadataCatalog
from mrcnn.data.detection_utils import ImageLoadError, read_image
from mrcnn.engine import config_from_file
from mrcnn.export import (
    ONNX_OPSET,
    ExportableMaskRCNN,
    export_onnx,
    export_torchscript,
    model_card,
    write_model_card,
)
from mrcnn.modeling import build_model

logger = logging.getLogger("mrcnn.export_model")

MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.ts"}


def get_parser() -> argparse.ArgumentParser:
    """The command line of the exporter."""
    parser = argparse.ArgumentParser(description="Export a Mask R-CNN to ONNX or TorchScript.")
    parser.add_argument("--config-file", required=True, metavar="FILE", help="path to a yaml config")
    parser.add_argument("--format", required=True, choices=sorted(MODEL_FILES), help="file format to write")
    parser.add_argument(
        "--export-method",
        default="tracing",
        choices=["tracing", "scripting"],
        help="tracing (the default and the only method the model supports; see the tool's docstring)",
    )
    parser.add_argument("--output", required=True, metavar="DIR", help="directory for the model file and model.json")
    parser.add_argument("--sample-image", metavar="IMG", help="image to trace on (default: a synthetic 480x640 one)")
    parser.add_argument("--opset", type=int, default=ONNX_OPSET, help=f"ONNX opset (default {ONNX_OPSET}, at least 16)")
    parser.add_argument("--no-check", action="store_true", help="skip running the exported ONNX model once")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides")
    return parser


def _sample_image(path: Optional[str], channel_order: str) -> np.ndarray:
    """(H, W, 3) uint8 in ``channel_order``: the file at ``path``, or a synthetic image."""
    if path is None:
        rng = np.random.default_rng(0)
        ys, xs = np.mgrid[0:480, 0:640]
        image = np.stack([(xs * 255 // 639), (ys * 255 // 479), ((xs + ys) * 255 // 1118)], axis=2).astype(np.uint8)
        return np.clip(image.astype(np.int16) + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
    image = read_image(path, format="RGB")
    return np.ascontiguousarray(image[:, :, ::-1] if channel_order == "BGR" else image)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the export; returns the exit code."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.export_method == "scripting":
        print(
            "--export-method scripting is not supported: the model's inference code keeps Python lists of "
            "per-image Instances, which TorchScript cannot compile. Use tracing (the default): the traced "
            "graph is dynamic in image size, batch size and number of detections.",
            file=sys.stderr,
        )
        return 2
    if args.format == "onnx" and args.opset < 16:
        print(f"--opset {args.opset} is too old: RoiAlign with aligned=True needs opset 16 or newer", file=sys.stderr)
        return 2
    try:
        cfg = config_from_file(args.config_file, args.opts, overrides={"MODEL.DEVICE": "cpu"})
        cfg.freeze()
    except (ConfigError, ImportError, OSError) as error:
        print(f"Cannot set up the config: {error}", file=sys.stderr)
        return 2
    try:
        sample = _sample_image(args.sample_image, cfg.INPUT.FORMAT)
    except (ImageLoadError, OSError) as error:
        print(f"Cannot read --sample-image '{args.sample_image}': {error}", file=sys.stderr)
        return 2

    model = build_model(cfg).eval()
    if cfg.MODEL.WEIGHTS:
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    else:
        logger.warning("MODEL.WEIGHTS is empty: exporting a randomly initialised model")
    try:
        adapter = ExportableMaskRCNN.from_config(cfg, model)
    except ValueError as error:
        print(str(error), file=sys.stderr)
        return 2

    os.makedirs(args.output, exist_ok=True)
    path = os.path.join(args.output, MODEL_FILES[args.format])
    batch = torch.from_numpy(sample)[None]
    start = time.perf_counter()
    if args.format == "onnx":
        export_onnx(adapter, batch, path, opset=args.opset)
    else:
        export_torchscript(adapter, batch, path)
    seconds = time.perf_counter() - start

    class_names = None
    if cfg.DATASETS.TEST:
        class_names = getattr(MetadataCatalog.get(cfg.DATASETS.TEST[0]), "thing_classes", None)
    card = model_card(
        cfg,
        path,
        args.format,
        adapter.output_names,
        class_names,
        opset=args.opset if args.format == "onnx" else None,
    )
    card_path = write_model_card(card, args.output)
    size_mb = os.path.getsize(path) / 2**20
    print(f"Wrote {path} ({size_mb:.1f} MiB, traced in {seconds:.1f} s) and {card_path}")

    if args.format == "onnx" and not args.no_check:
        try:
            import onnxruntime
        except ImportError:
            print("onnxruntime is not installed (pip install -e .[export]): the model was not checked")
            return 0
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        outputs = session.run(None, {"images": sample[None]})
        print(f"Checked in ONNX Runtime: {len(outputs[0])} detections on the sample image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
