"""Wall-clock timing for tools/benchmark.py: runs that take turns, summary statistics of their
durations, and the machine's matmul rate as a practical ceiling."""

import statistics
import time
from typing import Any, Callable, Dict, List, Tuple

import torch

__all__ = ["matmul_gflops", "summarize", "synchronize", "time_alternating"]


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so that wall-clock times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def summarize(seconds: List[float]) -> Dict[str, float]:
    """Median, quartiles, extremes and count of a list of durations (seconds)."""
    ordered = sorted(seconds)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else [ordered[0]] * 3
    return {
        "median": statistics.median(ordered),
        "p25": quartiles[0],
        "p75": quartiles[2],
        "min": ordered[0],
        "max": ordered[-1],
        "count": len(ordered),
    }


def time_alternating(
    runs: Dict[str, Callable[[], Any]], iters: int, warmup: int, device: torch.device
) -> Tuple[Dict[str, List[float]], Dict[str, Any]]:
    """Seconds of each of ``iters`` calls per run, the runs taking turns so that load changes on the
    machine hit all of them alike; ``warmup`` untimed turns first. Also returns each run's last result."""
    seconds: Dict[str, List[float]] = {name: [] for name in runs}
    last: Dict[str, Any] = {}
    for turn in range(warmup + iters):
        for name, run in runs.items():
            synchronize(device)
            start = time.perf_counter()
            last[name] = run()
            synchronize(device)
            if turn >= warmup:
                seconds[name].append(time.perf_counter() - start)
    return seconds, last


def matmul_gflops(
    device: torch.device, dtype: torch.dtype = torch.float32, size: int = 1024, repeats: int = 10
) -> float:
    """The best rate of a size×size matmul here, GFLOP/s (2·size³ per product): the hardware's usable peak."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9
