#!/usr/bin/env python
"""Print the box and mask AP of a finished run and list what it wrote.

    python tools/print_results.py OUTPUT_DIR

Reads OUTPUT_DIR/eval_results.json ({dataset: {"bbox": {...}, "segm": {...}}}) and prints one
table per dataset, then the checkpoint, metrics, plots and pictures found in OUTPUT_DIR.
"""

import argparse
import glob
import json
import os
import sys
from typing import Dict, List

from tabulate import tabulate

SUMMARY_METRICS = ["AP", "AP50", "AP75", "APs", "APm", "APl"]


def format_results(results: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """One table per dataset: a row per task, a column per summary metric (in percent)."""
    blocks = []
    for dataset, tasks in results.items():
        rows = []
        for task, metrics in tasks.items():
            if not isinstance(metrics, dict):
                continue
            row = [task] + ["-" if metrics.get(name) is None else f"{metrics[name]:.1f}" for name in SUMMARY_METRICS]
            rows.append(row)
        blocks.append(f"{dataset}:\n" + tabulate(rows, headers=["task"] + SUMMARY_METRICS, tablefmt="github"))
    return "\n\n".join(blocks)


def list_outputs(output_dir: str) -> List[str]:
    """The files of a run a person wants to open, relative to the working directory."""
    patterns = [
        "model_final.pth",
        "model_best.pth",
        "metrics.json",
        "eval_results.json",
        "config.yaml",
        "log.txt",
        "plots/*.png",
        "predictions/*.png",
        "predictions/*.jpg",
        "predictions/predictions.json",
    ]
    found = []
    for pattern in patterns:
        found.extend(sorted(glob.glob(os.path.join(output_dir, pattern))))
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir")
    args = parser.parse_args(argv)
    path = os.path.join(args.output_dir, "eval_results.json")
    if not os.path.isfile(path):
        print(f"error: {path} not found: the run has not been evaluated yet.", file=sys.stderr)
        return 1
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except json.JSONDecodeError as exc:
        print(f"error: {path} is not valid json: {exc}", file=sys.stderr)
        return 1
    print("\nBox (bbox) and mask (segm) AP, in percent:\n")
    print(format_results(results))
    print(f"\nOutputs in {args.output_dir}:")
    for item in list_outputs(args.output_dir):
        print(f"  {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
