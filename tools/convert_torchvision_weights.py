#!/usr/bin/env python
"""Convert torchvision weights to an mrcnn checkpoint.

    python tools/convert_torchvision_weights.py maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth out.pth
    python tools/convert_torchvision_weights.py resnet50-11ad3fa6.pth r50_backbone.pth

The input is a torchvision state dict (Mask/Faster R-CNN v1 or v2, or an ImageNet ResNet); the
output is ``{"model": state_dict}`` with mrcnn parameter names, loadable with MODEL.WEIGHTS.
"""

import argparse
import os
import sys

import torch

from mrcnn.checkpoint.convert_torchvision import convert_torchvision_state_dict


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="torchvision .pth state dict")
    parser.add_argument("output", help="where to write the mrcnn checkpoint")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.input):
        print(f"error: input file not found: {args.input}", file=sys.stderr)
        return 1
    try:
        state_dict = torch.load(args.input, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or non-weights file
        print(f"error: cannot read '{args.input}' as a torch state dict: {exc}", file=sys.stderr)
        return 1
    if isinstance(state_dict, dict) and "model" in state_dict and isinstance(state_dict["model"], dict):
        state_dict = state_dict["model"]
    converted = convert_torchvision_state_dict(state_dict)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    torch.save({"model": converted, "__author__": "torchvision"}, args.output)
    print(f"wrote {len(converted)} tensors to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
