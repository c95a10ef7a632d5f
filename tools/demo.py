#!/usr/bin/env python
"""Run a model on images and write pictures of its predictions plus a COCO results file.

    python tools/demo.py --config-file configs/shapes/mask_rcnn_shapes.yaml \
        --input datasets/shapes/val/*.png --output output/demo \
        --opts MODEL.WEIGHTS output/shapes/model_final.pth

--input takes image files, directories (their image files, not recursive) and glob patterns.
For every image that can be read, --output gets a picture with the same name (.jpg/.jpeg/.png
kept, other extensions written as .png) and predictions.json gets one COCO result per detection:
{"image_id", "category_id", "bbox" [x, y, w, h], "score", "segmentation" (RLE, with masks)}.
image_id is the file name without its extension (made unique with a "_2", "_3"... suffix when two
inputs share it); category_id is the dataset's own id when the first DATASETS.TEST dataset maps
contiguous ids to dataset ids (thing_dataset_id_to_contiguous_id), else the contiguous class index.

--confidence-threshold T sets MODEL.ROI_HEADS.SCORE_THRESH_TEST before --opts are applied (so an
explicit value there wins for the model) and pictures and predictions.json keep detections
scoring at least T. A path that is not a readable image is reported and skipped; the exit code is
0 when at least one image ran, else 1.
"""

import argparse
import glob
import json
import logging
import os
import sys
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pycocotools.mask as mask_util
from tqdm import tqdm

from mrcnn.config import ConfigError
from mrcnn.data.detection_utils import ImageLoadError, read_image
from mrcnn.engine import config_from_file
from mrcnn.engine.predictor import DefaultPredictor
from mrcnn.structures import Instances
from mrcnn.utils.visualizer import Visualizer

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
_KEPT_EXTENSIONS = (".jpg", ".jpeg", ".png")
_GLOB_CHARACTERS = ("*", "?", "[")
_SUMMARY_CLASSES = 6  # classes named in an image's summary line

logger = logging.getLogger("mrcnn.demo")


def get_parser() -> argparse.ArgumentParser:
    """The command line of the demo."""
    parser = argparse.ArgumentParser(description="Draw a model's instance predictions on images.")
    parser.add_argument("--config-file", required=True, metavar="FILE", help="path to a yaml config")
    parser.add_argument(
        "--input",
        required=True,
        nargs="+",
        metavar="PATH",
        help="image files, directories of images, or glob patterns (quote them to let the demo expand them)",
    )
    parser.add_argument("--output", required=True, metavar="DIR", help="directory for pictures and predictions.json")
    parser.add_argument(
        "--confidence-threshold",
        type=float,
        default=0.5,
        help="minimum score of the detections drawn and written (default 0.5)",
    )
    parser.add_argument(
        "--opts",
        default=[],
        nargs=argparse.REMAINDER,
        metavar="KEY VALUE",
        help="config overrides as KEY VALUE pairs, e.g. MODEL.WEIGHTS model_final.pth MODEL.DEVICE cpu",
    )
    return parser


def expand_inputs(patterns: List[str]) -> Tuple[List[str], List[str]]:
    """(image paths to try, problems) from files, directories and glob patterns, in the given order."""
    paths, problems = [], []
    for pattern in patterns:
        if os.path.isdir(pattern):
            found = sorted(
                os.path.join(pattern, name)
                for name in os.listdir(pattern)
                if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(pattern, name))
            )
            if not found:
                problems.append(
                    f"Skipping '{pattern}': the directory holds no image files ({', '.join(IMAGE_EXTENSIONS)})"
                )
            paths.extend(found)
        elif os.path.exists(pattern):
            paths.append(pattern)
        elif any(c in pattern for c in _GLOB_CHARACTERS):
            found = sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(p))
            if not found:
                problems.append(f"Skipping '{pattern}': no file matches this pattern")
            paths.extend(found)
        else:
            problems.append(f"Skipping '{pattern}': no such file or directory")
    return paths, problems


def instances_to_coco_results(
    instances: Instances, image_id: Any, contiguous_to_dataset_id: Optional[Dict[int, int]]
) -> List[Dict[str, Any]]:
    """COCO results (bbox XYWH, score, category_id, RLE segmentation) of one image's CPU Instances."""
    if len(instances) == 0:
        return []
    boxes = instances.pred_boxes.tensor.numpy().astype(np.float64)
    boxes[:, 2:] -= boxes[:, :2]
    scores = instances.scores.tolist()
    classes = instances.pred_classes.tolist()
    rles = None
    if instances.has("pred_masks"):
        masks = instances.pred_masks.numpy().astype(np.uint8)
        rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
    results = []
    for index in range(len(instances)):
        class_id = int(classes[index])
        result = {
            "image_id": image_id,
            "category_id": contiguous_to_dataset_id.get(class_id, class_id) if contiguous_to_dataset_id else class_id,
            "bbox": [round(float(v), 2) for v in boxes[index]],
            "score": round(float(scores[index]), 5),
        }
        if rles is not None:
            rle = rles[index]
            result["segmentation"] = {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
        results.append(result)
    return results


def _unique_name(stem: str, used: Dict[str, int]) -> str:
    used[stem] = used.get(stem, 0) + 1
    return stem if used[stem] == 1 else f"{stem}_{used[stem]}"


def _summary(path: str, instances: Instances, class_names: Optional[List[str]], milliseconds: float) -> str:
    counts = Counter(int(c) for c in instances.pred_classes.tolist()) if instances.has("pred_classes") else Counter()
    named = [
        f"{count} {class_names[c] if class_names and 0 <= c < len(class_names) else f'class {c}'}"
        for c, count in sorted(counts.items(), key=lambda item: -item[1])
    ]
    if len(named) > _SUMMARY_CLASSES:  # a long tail of classes would bury the line
        named = named[:_SUMMARY_CLASSES] + [f"{len(named) - _SUMMARY_CLASSES} more classes"]
    details = f" ({', '.join(named)})" if named else ""
    return f"{path}: {len(instances)} detection{'s' if len(instances) != 1 else ''}{details} in {milliseconds:.0f} ms"


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo; returns the exit code."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        # the threshold goes in before --opts, so an explicit value there wins for the model
        cfg = config_from_file(
            args.config_file, args.opts, overrides={"MODEL.ROI_HEADS.SCORE_THRESH_TEST": args.confidence_threshold}
        )
        cfg.freeze()
    except (ConfigError, ImportError, OSError) as error:
        print(f"Cannot set up the config: {error}", file=sys.stderr)
        return 2
    paths, problems = expand_inputs(args.input)
    for problem in problems:
        print(problem, file=sys.stderr)

    predictor = DefaultPredictor(cfg)
    metadata = predictor.metadata
    class_names = getattr(metadata, "thing_classes", None) if metadata is not None else None
    dataset_to_contiguous = (
        getattr(metadata, "thing_dataset_id_to_contiguous_id", None) if metadata is not None else None
    )
    contiguous_to_dataset = {v: k for k, v in dataset_to_contiguous.items()} if dataset_to_contiguous else None

    os.makedirs(args.output, exist_ok=True)
    results: List[Dict[str, Any]] = []
    used_names: Dict[str, int] = {}
    done, skipped = 0, len(problems)
    loop_start = time.perf_counter()
    for path in tqdm(paths, desc="demo", unit="image", file=sys.stderr):
        try:
            image_rgb = read_image(path, format="RGB")
        except ImageLoadError as error:
            tqdm.write(f"Skipping '{path}': not a readable image ({error})", file=sys.stderr)
            skipped += 1
            continue
        image = image_rgb[:, :, ::-1] if cfg.INPUT.FORMAT == "BGR" else image_rgb
        start = time.perf_counter()
        instances = predictor(np.ascontiguousarray(image))["instances"].to("cpu")
        milliseconds = (time.perf_counter() - start) * 1000.0
        instances = instances[instances.scores >= args.confidence_threshold]

        stem, extension = os.path.splitext(os.path.basename(path))
        image_id = _unique_name(stem, used_names)
        extension = extension.lower() if extension.lower() in _KEPT_EXTENSIONS else ".png"
        picture = Visualizer(image_rgb, metadata).draw_instance_predictions(instances)
        picture.save(os.path.join(args.output, image_id + extension))
        results.extend(instances_to_coco_results(instances, image_id, contiguous_to_dataset))
        tqdm.write(_summary(path, instances, class_names, milliseconds))
        done += 1

    predictions_path = os.path.join(args.output, "predictions.json")
    with open(predictions_path, "w", encoding="utf-8") as f:
        json.dump(results, f)
    per_image = (time.perf_counter() - loop_start) / max(done, 1)
    print(
        f"Wrote {done} picture{'s' if done != 1 else ''} and {len(results)} detections "
        f"({predictions_path}) to {args.output} in {per_image:.2f} s per image (reading, model, drawing, saving)"
        + (f"; skipped {skipped} input(s)" if skipped else "")
    )
    if done == 0:
        print("No image could be read: nothing was predicted.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
