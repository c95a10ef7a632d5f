"""Where one call spends its time: torch.profiler's costliest operators on the host and the GPU."""

import time
from typing import Any, Callable, Dict, List

import torch
from torch.profiler import ProfilerActivity, profile

from .timing import synchronize

__all__ = ["profile_top_ops"]


def profile_top_ops(run: Callable[[], Any], device: torch.device, rows: int = 20) -> Dict[str, Any]:
    """torch.profiler over one ``run()``: wall seconds, the ``rows`` operators with the most self
    time on the host (and on the GPU for CUDA), and how often the host waited for the device.

    Returns {"wall_seconds", "host": [{"name", "self_ms", "calls"}...], "device": [...] (CUDA only),
    "host_waits": calls of cudaStreamSynchronize / cudaDeviceSynchronize / cudaMemcpy* (CUDA only)}.
    """
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    synchronize(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        run()
        synchronize(device)
        wall = time.perf_counter() - start
    averages = list(prof.key_averages())

    def top(attribute: str) -> List[Dict[str, Any]]:
        ranked = sorted(averages, key=lambda a: getattr(a, attribute, 0), reverse=True)
        return [
            {"name": a.key, "self_ms": getattr(a, attribute) / 1000.0, "calls": a.count}
            for a in ranked[:rows]
            if getattr(a, attribute, 0) > 0
        ]

    report: Dict[str, Any] = {"wall_seconds": wall, "host": top("self_cpu_time_total")}
    if cuda:
        report["device"] = top("self_device_time_total")
        waits = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpy", "cudaMemcpyAsync")
        report["host_waits"] = {a.key: a.count for a in averages if a.key in waits}
    return report
