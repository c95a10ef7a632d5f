"""Command line for the synthetic shapes dataset: ``python -m mrcnn.data.datasets.shapes --output DIR``.

The generator itself lives in `synthetic_shapes.py` (kept apart so that running this module does
not import it twice); its public names are re-exported here.
"""

import argparse
import logging
from typing import List, Optional

from .synthetic_shapes import (  # noqa: F401
    SHAPES_CLASSES,
    SHAPES_COLORS,
    ensure_shapes_dataset,
    generate_shapes_dataset,
    register_shapes,
    render_shapes_sample,
    shapes_json_path,
)


def main(argv: Optional[List[str]] = None) -> None:
    """Write a shapes dataset from command-line arguments."""
    parser = argparse.ArgumentParser(description="Write the synthetic shapes dataset in COCO format.")
    parser.add_argument("--output", default="datasets/shapes", help="folder to write train/, val/, annotations/ in")
    parser.add_argument("--num-train", type=int, default=1000, help="number of training images")
    parser.add_argument("--num-val", type=int, default=100, help="number of validation images")
    parser.add_argument("--image-size", type=int, default=128, help="side of the square images, pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the output is a function of it")
    parser.add_argument("--max-instances", type=int, default=5, help="most shapes in one image")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    generate_shapes_dataset(args.output, args.num_train, args.num_val, args.image_size, args.seed, args.max_instances)


if __name__ == "__main__":
    main()
