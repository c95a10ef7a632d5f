"""How fast a data loader produces images (tools/benchmark.py --task data)."""

import time
from typing import Dict, Iterable

__all__ = ["measure_loader_throughput"]


def measure_loader_throughput(loader: Iterable, num_batches: int = 50, warmup_batches: int = 5) -> Dict[str, float]:
    """Time ``num_batches`` batches (lists of dicts) after ``warmup_batches`` untimed ones.

    Returns images_per_second, batches_per_second, seconds and num_images. The warm-up
    absorbs worker start-up; the loader may be endless (train) or finite (test).
    """
    iterator = iter(loader)
    for _ in range(warmup_batches):
        next(iterator)
    num_images, num_timed = 0, 0
    start = time.perf_counter()
    for _ in range(num_batches):
        try:
            batch = next(iterator)
        except StopIteration:
            break
        num_images += len(batch)
        num_timed += 1
    seconds = time.perf_counter() - start
    return {
        "images_per_second": num_images / seconds if seconds > 0 else float("inf"),
        "batches_per_second": num_timed / seconds if seconds > 0 else float("inf"),
        "seconds": seconds,
        "num_images": float(num_images),
    }
