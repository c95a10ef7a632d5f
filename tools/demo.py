#!/usr/bin/env python
"""Run a model on images and write pictures of its predictions plus a COCO results file.

    python tools/demo.py --config-file configs/shapes/mask_rcnn_shapes.yaml \
        --input datasets/shapes/val/*.png --output output/demo \
        --opts MODEL.WEIGHTS output/shapes/model_final.pth

    python tools/demo.py --config-file configs/shapes/mask_rcnn_shapes.yaml \
        --video-input clip.mp4 --output output/clip_annotated.mp4 --opts MODEL.WEIGHTS model_final.pth

--input takes image files, directories (their image files, not recursive) and glob patterns.
For every image that can be read, --output gets a picture with the same name (.jpg/.jpeg/.png
kept, other extensions written as .png) and predictions.json gets one COCO result per detection:
{"image_id", "category_id", "bbox" [x, y, w, h], "score", "segmentation" (RLE, with masks)}.
image_id is the file name without its extension (made unique with a "_2", "_3"... suffix when two
inputs share it); category_id is the dataset's own id when the first DATASETS.TEST dataset maps
contiguous ids to dataset ids (thing_dataset_id_to_contiguous_id), else the contiguous class index.

--confidence-threshold T sets MODEL.ROI_HEADS.SCORE_THRESH_TEST before --opts are applied (so an
explicit value there wins for the model) and pictures and predictions.json keep detections
scoring at least T; detections below T are dropped before their masks are pasted at full
resolution, so a large image with many weak detections costs no more memory than its kept ones.
An input that fails (not a readable image, out of memory, any error of the model on it) is
reported with its path and skipped, and the other images are still processed and written. The
exit code is 0 when every input ran, 1 when any failed or was skipped, 2 for a bad config.

--video-input FILE reads the video's frames with PyAV (pip install -e .[export]), runs them in
batches of --batch-size and writes the annotated video to --output: a file name ending in a video
extension (.mp4, .mkv, .avi, .mov), else a directory that gets FILE's name with .mp4. A progress bar
counts frames; a file that is not a readable video is an error naming it.
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
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov")
_VIDEO_CODECS = ("libx264", "mpeg4")  # the first one this PyAV build can encode

logger = logging.getLogger("mrcnn.demo")


def get_parser() -> argparse.ArgumentParser:
    """The command line of the demo."""
    parser = argparse.ArgumentParser(description="Draw a model's instance predictions on images.")
    parser.add_argument("--config-file", required=True, metavar="FILE", help="path to a yaml config")
    sources = parser.add_mutually_exclusive_group(required=True)
    sources.add_argument(
        "--input",
        nargs="+",
        metavar="PATH",
        help="image files, directories of images, or glob patterns (quote them to let the demo expand them)",
    )
    sources.add_argument("--video-input", metavar="FILE", help="a video file to annotate frame by frame")
    parser.add_argument(
        "--output",
        required=True,
        metavar="DIR",
        help="directory for pictures and predictions.json; with --video-input a video file or a directory",
    )
    parser.add_argument("--batch-size", type=int, default=4, help="video frames per forward pass (default 4)")
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
    if args.batch_size < 1:
        print(f"--batch-size must be at least 1, got {args.batch_size}", file=sys.stderr)
        return 2
    if args.video_input is not None:
        return run_video(args, cfg)
    paths, problems = expand_inputs(args.input)
    for problem in problems:
        print(problem, file=sys.stderr)

    predictor = DefaultPredictor(cfg)

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
        try:
            image_results, summary = _run_image(
                predictor, cfg, path, image_rgb, args.confidence_threshold, used_names, args.output
            )
        except (RuntimeError, MemoryError, OSError, ValueError) as error:
            # torch.OutOfMemoryError is a RuntimeError: one image's failure must not cost the others
            tqdm.write(f"Failed on '{path}': {type(error).__name__}: {str(error)[:500]}", file=sys.stderr)
            skipped += 1
            continue
        results.extend(image_results)
        tqdm.write(summary)
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
    return 1 if skipped else 0


def _run_image(
    predictor: DefaultPredictor,
    cfg,
    path: str,
    image_rgb: np.ndarray,
    threshold: float,
    used_names: Dict[str, int],
    output: str,
) -> Tuple[List[Dict[str, Any]], str]:
    """Predict on one image, write its picture; (its COCO results, its summary line)."""
    metadata = predictor.metadata
    class_names = getattr(metadata, "thing_classes", None) if metadata is not None else None
    dataset_to_contiguous = (
        getattr(metadata, "thing_dataset_id_to_contiguous_id", None) if metadata is not None else None
    )
    contiguous_to_dataset = {v: k for k, v in dataset_to_contiguous.items()} if dataset_to_contiguous else None
    image = image_rgb[:, :, ::-1] if cfg.INPUT.FORMAT == "BGR" else image_rgb
    start = time.perf_counter()
    # filtered before the masks are pasted at full resolution
    instances = predictor(np.ascontiguousarray(image), min_score=threshold)["instances"].to("cpu")
    milliseconds = (time.perf_counter() - start) * 1000.0

    stem, extension = os.path.splitext(os.path.basename(path))
    image_id = _unique_name(stem, used_names)
    extension = extension.lower() if extension.lower() in _KEPT_EXTENSIONS else ".png"
    picture = Visualizer(image_rgb, metadata).draw_instance_predictions(instances)
    picture.save(os.path.join(output, image_id + extension))
    results = instances_to_coco_results(instances, image_id, contiguous_to_dataset)
    return results, _summary(path, instances, class_names, milliseconds)


def video_output_path(video_input: str, output: str) -> str:
    """The annotated video's path: ``output`` if it names a video file, else ``output/<input stem>.mp4``."""
    if output.lower().endswith(VIDEO_EXTENSIONS):
        return output
    return os.path.join(output, os.path.splitext(os.path.basename(video_input))[0] + ".mp4")


def run_video(args: argparse.Namespace, cfg) -> int:
    """Annotate every frame of --video-input and write the video; returns the exit code."""
    try:
        import av
    except ImportError:
        print("--video-input needs PyAV: pip install av (or pip install -e .[export])", file=sys.stderr)
        return 2
    path = args.video_input
    try:
        container = av.open(path)
        if not container.streams.video:
            container.close()
            raise ValueError("it has no video stream")
    except (av.FFmpegError, OSError, ValueError) as error:
        print(f"Cannot read '{path}' as a video: {error}", file=sys.stderr)
        return 1
    predictor = DefaultPredictor(cfg)
    stream = container.streams.video[0]
    out_path = video_output_path(path, args.output)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    writer = av.open(out_path, "w")
    out_stream = None
    frames_done, batch = 0, []
    progress = tqdm(total=stream.frames or None, desc="demo", unit="frame", file=sys.stderr)

    def flush(frames: List[np.ndarray]) -> None:
        nonlocal out_stream, frames_done
        images = [np.ascontiguousarray(f[:, :, ::-1] if cfg.INPUT.FORMAT == "BGR" else f) for f in frames]
        outputs = predictor.predict_batch(images, min_score=args.confidence_threshold)
        for rgb, output in zip(frames, outputs):
            drawn = Visualizer(rgb, predictor.metadata).draw_instance_predictions(output["instances"].to("cpu"))
            picture = drawn.get_image()
            if out_stream is None:
                out_stream = _open_video_stream(av, writer, stream, picture.shape[1], picture.shape[0])
            # yuv420p wants even sizes: drop an odd last row or column
            picture = np.ascontiguousarray(picture[: out_stream.height, : out_stream.width])
            for packet in out_stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                writer.mux(packet)
            frames_done += 1
            progress.update(1)

    code = 0
    try:
        for frame in container.decode(stream):
            batch.append(frame.to_ndarray(format="rgb24"))
            if len(batch) == args.batch_size:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
    except (av.FFmpegError, OSError) as error:
        print(f"Stopped reading '{path}' after {frames_done} frames: {error}", file=sys.stderr)
        code = 1
    finally:
        progress.close()
        if out_stream is not None:
            for packet in out_stream.encode():
                writer.mux(packet)
        writer.close()
        container.close()
    if frames_done == 0:
        print(f"No frame of '{path}' could be decoded: nothing was written.", file=sys.stderr)
        return 1
    print(f"Wrote {frames_done} annotated frames to {out_path}")
    return code


def _open_video_stream(av, writer, source_stream, width: int, height: int):
    """An output video stream of the source's frame rate, in the first encoder this PyAV has."""
    rate = source_stream.average_rate or 30
    for codec in _VIDEO_CODECS:
        if codec in av.codecs_available:
            out_stream = writer.add_stream(codec, rate=rate)
            break
    else:
        raise RuntimeError(f"PyAV has none of the video encoders {_VIDEO_CODECS}")
    out_stream.width, out_stream.height = width - width % 2, height - height % 2
    out_stream.pix_fmt = "yuv420p"
    return out_stream


if __name__ == "__main__":
    sys.exit(main())
