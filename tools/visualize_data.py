#!/usr/bin/env python
"""Draw a dataset's ground truth, to check annotations and augmentations by eye.

    python tools/visualize_data.py --config-file configs/shapes/mask_rcnn_shapes.yaml \
        --source annotation --output output/gt --num 10

--source annotation draws the dataset dicts of DATASETS.TRAIN as loaded (boxes, masks, class
names; crowd regions say "crowd"). --source dataloader draws batches of the training loader,
i.e. after the training augmentations (resize, flip, crop, photometric changes), as the model
sees them. Pictures are written to --output as PNG, named after the image files (with a
running number for the loader, which may show an image more than once). --num N (default 20)
bounds how many are drawn.
"""

import argparse
import itertools
import logging
import os
import sys
from typing import Dict, Iterator, List, Optional, Tuple

from tqdm import tqdm

from mrcnn.config import ConfigError
from mrcnn.data import DatasetCatalog, MetadataCatalog
from mrcnn.data.detection_utils import ImageLoadError, read_image
from mrcnn.engine import config_from_file
from mrcnn.utils.visualizer import VisImage, Visualizer


def get_parser() -> argparse.ArgumentParser:
    """The command line of the tool."""
    parser = argparse.ArgumentParser(description="Draw ground truth as loaded or after training augmentations.")
    parser.add_argument("--config-file", required=True, metavar="FILE", help="path to a yaml config")
    parser.add_argument(
        "--source",
        required=True,
        choices=["annotation", "dataloader"],
        help="annotation: dataset dicts as loaded; dataloader: training batches after augmentation",
    )
    parser.add_argument("--output", required=True, metavar="DIR", help="directory for the pictures")
    parser.add_argument("--num", type=int, default=20, metavar="N", help="number of pictures (default 20)")
    parser.add_argument("--scale", type=float, default=1.0, help="picture size relative to the image (default 1)")
    parser.add_argument(
        "--opts",
        default=[],
        nargs=argparse.REMAINDER,
        metavar="KEY VALUE",
        help="config overrides as KEY VALUE pairs, e.g. DATASETS.TRAIN \"('shapes_val',)\"",
    )
    return parser


def _output_path(directory: str, file_name: str, used: Dict[str, int], numbered: bool) -> str:
    stem = os.path.splitext(os.path.basename(file_name))[0] or "image"
    used[stem] = used.get(stem, 0) + 1
    if numbered:
        stem = f"{stem}_{used[stem] - 1}"
    elif used[stem] > 1:
        stem = f"{stem}_{used[stem]}"
    return os.path.join(directory, stem + ".png")


def annotation_pictures(cfg, count: int, scale: float) -> Iterator[Tuple[str, Optional[VisImage]]]:
    """(image file, picture or None when unreadable) for the first `count` dicts of DATASETS.TRAIN."""
    if not cfg.DATASETS.TRAIN:
        raise ConfigError("DATASETS.TRAIN is empty: name the dataset(s) to draw")
    for name in cfg.DATASETS.TRAIN:
        metadata = MetadataCatalog.get(name)
        for dataset_dict in DatasetCatalog.get(name):
            if count <= 0:
                return
            count -= 1
            file_name = dataset_dict.get("file_name", "")
            try:
                image = read_image(file_name, format="RGB")
            except ImageLoadError as error:
                tqdm.write(f"Skipping: {error}", file=sys.stderr)
                yield file_name, None
                continue
            picture = Visualizer(image, metadata, scale=scale).draw_dataset_dict(dataset_dict)
            yield file_name, picture


def dataloader_pictures(cfg, count: int, scale: float) -> Iterator[Tuple[str, Optional[VisImage]]]:
    """(image file, picture) for the first `count` images the training loader yields."""
    from mrcnn.data import build_detection_train_loader

    metadata = MetadataCatalog.get(cfg.DATASETS.TRAIN[0]) if cfg.DATASETS.TRAIN else None
    loader = build_detection_train_loader(cfg)
    images = itertools.chain.from_iterable(loader)  # the loader yields lists of per-image dicts
    for item in itertools.islice(images, count):
        image = item["image"].permute(1, 2, 0).cpu().numpy()
        if cfg.INPUT.FORMAT == "BGR":
            image = image[:, :, ::-1]
        visualizer = Visualizer(image, metadata, scale=scale)
        if "instances" in item:
            visualizer.draw_ground_truth_instances(item["instances"])
        yield item.get("file_name", "image"), visualizer.get_output()


def main(argv: Optional[List[str]] = None) -> int:
    """Write the pictures; returns the exit code."""
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = config_from_file(args.config_file, args.opts)
        cfg.freeze()
    except (ConfigError, ImportError, OSError) as error:
        print(f"Cannot set up the config: {error}", file=sys.stderr)
        return 2
    os.makedirs(args.output, exist_ok=True)
    source = annotation_pictures if args.source == "annotation" else dataloader_pictures
    used: Dict[str, int] = {}
    written = 0
    try:
        for file_name, picture in tqdm(
            source(cfg, args.num, args.scale), total=args.num, desc=args.source, unit="image", file=sys.stderr
        ):
            if picture is None:
                continue
            path = _output_path(args.output, file_name, used, numbered=args.source == "dataloader")
            picture.save(path)
            written += 1
    except (ConfigError, KeyError) as error:
        print(f"Cannot draw the dataset: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {written} picture{'s' if written != 1 else ''} to {args.output}")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
