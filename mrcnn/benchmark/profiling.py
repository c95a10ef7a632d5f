"""Where one call spends its time: torch.profiler's costliest operators on the host and the GPU."""

import os
import time
from typing import Any, Callable, Dict, List, Tuple

import torch
from torch.profiler import ProfilerActivity, profile

from .timing import synchronize

__all__ = ["profile_one_call", "profile_top_ops", "write_trace"]


def profile_one_call(run: Callable[[], Any], device: torch.device, with_stack: bool = False) -> Tuple[profile, float]:
    """(torch.profiler's record of one ``run()``, its wall seconds): host operators, and on CUDA
    the device's kernels too; the device is synchronised before and after, so the call is whole."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    synchronize(device)
    with profile(activities=activities, with_stack=with_stack) as prof:
        start = time.perf_counter()
        run()
        synchronize(device)
        wall = time.perf_counter() - start
    return prof, wall


def profile_top_ops(run: Callable[[], Any], device: torch.device, rows: int = 20) -> Dict[str, Any]:
    """torch.profiler over one ``run()``: wall seconds, the ``rows`` operators with the most self
    time on the host (and on the GPU for CUDA), and how often the host waited for the device.

    Returns {"wall_seconds", "host": [{"name", "self_ms", "calls"}...], "device": [...] (CUDA only),
    "host_waits": calls of cudaStreamSynchronize / cudaDeviceSynchronize / cudaMemcpy* (CUDA only)}.
    """
    cuda = device.type == "cuda"
    prof, wall = profile_one_call(run, device)
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


def write_trace(run: Callable[[], Any], device: torch.device, path: str) -> str:
    """torch.profiler's timeline of one ``run()``, with the Python call stack of every operator,
    written as a gzipped Chrome trace to ``path`` (".json.gz" is added when missing); returns the path.

    Open it in Perfetto (ui.perfetto.dev) or chrome://tracing: on a GPU it shows where the host
    runs ahead of the device and where the device waits for the host.
    """
    if not path.endswith(".json.gz"):
        path += ".json.gz"
    prof, _ = profile_one_call(run, device, with_stack=True)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    prof.export_chrome_trace(path)  # gzipped by torch for a ".gz" path
    return path
