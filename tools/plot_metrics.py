#!/usr/bin/env python
"""Plot a training run's metrics.json: losses, learning rate and AP over iterations.

    python tools/plot_metrics.py output/shapes [--output DIR]

metrics.json holds one JSON object per line, each with an "iteration" and scalars. Written into
--output (default: the run's directory):

- losses.png: total_loss and every loss_* (also validation ones such as "val/total_loss");
- lr.png: the learning rate "lr";
- ap.png: every "<task>/AP*" value (bbox/AP, segm/AP50, ...), one panel per task; per-category
  values ("bbox/AP-person") are drawn while a task has at most 10 of them, so 80 COCO classes
  do not bury the summary numbers.

A plot whose values never appear is skipped with a message. A truncated last line (a run that
is still writing or was killed) is ignored. When a resumed run repeats iterations, the later
value wins. Exit code 0 when at least one plot was written.
"""

import argparse
import json
import os
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

Series = Dict[str, Dict[int, float]]  # metric name -> {iteration: value}
MAX_CATEGORY_CURVES = 10  # per-category AP curves drawn per task at most


def read_metrics(path: str) -> Tuple[Series, int]:
    """(series per metric name, number of unreadable lines) from a metrics.json file."""
    series: Series = defaultdict(dict)
    bad_lines = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                bad_lines += 1
                continue
            if not isinstance(row, dict) or not isinstance(row.get("iteration"), (int, float)):
                bad_lines += 1
                continue
            iteration = int(row["iteration"])
            for key, value in row.items():
                if key != "iteration" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    series[key][iteration] = float(value)
    return dict(series), bad_lines


def is_loss_key(key: str) -> bool:
    """total_loss, loss_* and prefixed forms such as val/total_loss."""
    name = key.rsplit("/", 1)[-1]
    return name == "total_loss" or name.startswith("loss_")


def is_ap_key(key: str) -> bool:
    """<task>/AP, <task>/AP50, <task>/APs, <task>/AP-classname ..."""
    return "/" in key and key.rsplit("/", 1)[-1].startswith("AP")


def _plot_lines(axis, series: Series, keys: List[str]) -> None:
    for key in keys:
        iterations = sorted(series[key])
        axis.plot(
            iterations,
            [series[key][i] for i in iterations],
            label=key,
            linewidth=1.2,
            marker="o" if len(iterations) <= 20 else None,
            markersize=3,
        )
    axis.set_xlabel("iteration")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7, ncol=2 if len(keys) > 8 else 1)


def _save(figure, path: str) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_one_panel(
    series: Series, keys: List[str], path: str, size: Tuple[float, float], ylabel: str, title: str
) -> None:
    figure, axis = plt.subplots(figsize=size)
    _plot_lines(axis, series, keys)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    _save(figure, path)


def plot_losses(series: Series, path: str) -> bool:
    """losses.png: every loss over iterations; False when there is none."""
    keys = sorted((k for k in series if is_loss_key(k)), key=lambda k: (k != "total_loss", k))
    if not keys:
        return False
    _plot_one_panel(series, keys, path, (8, 5), "loss", "Training losses")
    return True


def plot_lr(series: Series, path: str) -> bool:
    """lr.png: the learning rate over iterations; False when it is absent."""
    if "lr" not in series:
        return False
    _plot_one_panel(series, ["lr"], path, (8, 4), "learning rate", "Learning rate")
    return True


def ap_curves(series: Series) -> Dict[str, List[str]]:
    """Task → the AP keys drawn in its panel (summary values, plus per-category ones when few)."""
    by_task: Dict[str, List[str]] = defaultdict(list)
    per_category: Dict[str, List[str]] = defaultdict(list)
    for key in sorted(series):
        if is_ap_key(key):
            task, name = key.rsplit("/", 1)
            (per_category if name.startswith("AP-") else by_task)[task].append(key)
    for task, keys in per_category.items():
        if len(keys) <= MAX_CATEGORY_CURVES:
            by_task[task].extend(keys)
    return dict(by_task)


def plot_ap(series: Series, path: str) -> bool:
    """ap.png: <task>/AP* values over iterations, one panel per task; False when there is none."""
    by_task = ap_curves(series)
    if not by_task:
        return False
    tasks = sorted(by_task)
    figure, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), squeeze=False)
    for axis, task in zip(axes[0], tasks):
        _plot_lines(axis, series, by_task[task])
        axis.set_ylabel("AP (%)")
        axis.set_title(f"{task} AP")
    _save(figure, path)
    return True


def main(argv: Optional[List[str]] = None) -> int:
    """Write the plots; returns the exit code."""
    parser = argparse.ArgumentParser(description="Plot losses, learning rate and AP from a run's metrics.json.")
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", help="the training run's directory (holds metrics.json)")
    parser.add_argument("--output", metavar="DIR", default=None, help="where to write the PNGs (default OUTPUT_DIR)")
    args = parser.parse_args(argv)

    metrics_path = os.path.join(args.output_dir, "metrics.json")
    if not os.path.isfile(metrics_path):
        print(
            f"No metrics file at '{metrics_path}': is '{args.output_dir}' a training output directory?", file=sys.stderr
        )
        return 1
    series, bad_lines = read_metrics(metrics_path)
    if bad_lines:
        print(f"Ignored {bad_lines} unreadable line(s) of {metrics_path}", file=sys.stderr)

    output = args.output or args.output_dir
    os.makedirs(output, exist_ok=True)
    written = []
    for name, plot in (("losses.png", plot_losses), ("lr.png", plot_lr), ("ap.png", plot_ap)):
        path = os.path.join(output, name)
        if plot(series, path):
            written.append(path)
        else:
            print(f"Not writing {name}: {metrics_path} has no such values", file=sys.stderr)
    for path in written:
        print(f"Wrote {path}")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
