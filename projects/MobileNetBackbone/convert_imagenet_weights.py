#!/usr/bin/env python
"""Turn torchvision's ImageNet MobileNetV3 weights into a checkpoint MODEL.WEIGHTS can load.

    python projects/MobileNetBackbone/convert_imagenet_weights.py \
        torchvision://mobilenet_v3_large.IMAGENET1K_V1 mobilenet_v3_large_imagenet.pth

The input is a local file, a URL or a torchvision:// name (downloaded once into the cache).
"""

import argparse
import sys

import torch

# the plugin package beside this script (running a script puts its folder first on sys.path)
from mobilenet_backbone.imagenet_weights import convert_imagenet_state_dict

from mrcnn.checkpoint.weights_path import resolve_weights_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="torchvision MobileNetV3 state dict: path, URL or torchvision://name")
    parser.add_argument("output", help="where to write {'model': state_dict}")
    parser.add_argument("--prefix", default="backbone.bottom_up.", help="module path of the MobileNet in the model")
    args = parser.parse_args(argv)
    try:
        state_dict = torch.load(resolve_weights_path(args.input), map_location="cpu", weights_only=True)
        converted = convert_imagenet_state_dict(state_dict, args.prefix)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    torch.save({"model": converted, "__author__": "torchvision ImageNet"}, args.output)
    print(f"wrote {len(converted)} tensors to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
