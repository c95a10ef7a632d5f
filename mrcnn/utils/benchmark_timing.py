"""Measuring for tools/benchmark.py: wall-clock times of alternating runs, peak tensor memory,
FLOP counts and the machine's matmul rate."""
import statistics
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Tuple

import torch
from torch import nn

__all__ = [
    "count_gflops",
    "full_float32",
    "matmul_gflops",
    "peak_memory_bytes",
    "profile_top_ops",
    "summarize",
    "synchronize",
    "time_alternating",
]


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so that wall-clock times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def full_float32(device: torch.device) -> Iterator[None]:
    """Convolutions and matmuls in IEEE float32 on CUDA (no TF32), restored afterwards; a no-op
    elsewhere. TF32 rounds inputs to 10 mantissa bits, enough to move a box by more than the
    agreement tolerance, so two models are compared without it."""
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


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


def peak_memory_bytes(run: Callable[[], Any], device: torch.device) -> int:
    """Most bytes held at once by tensors created during ``run()`` (beyond those alive before).

    CUDA: the caching allocator's peak. CPU: replays every allocation and free that the profiler
    records, in time order, to the highest running total. Each allocation and free is taken at
    its own time stamp: attributing frees to the end of the enclosing operator would count every
    temporary that a Python-level operator (an autograd Function's backward, say) creates and
    drops as alive at once.
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    changes = [
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU
    ]
    live = peak = 0
    for _, change in sorted(changes):
        live += change
        peak = max(peak, live)
    return int(peak)


def profile_top_ops(run: Callable[[], Any], device: torch.device, rows: int = 20) -> Dict[str, Any]:
    """torch.profiler over one ``run()``: wall seconds, the ``rows`` operators with the most self
    time on the host (and on the GPU for CUDA), and how often the host waited for the device.

    Returns {"wall_seconds", "host": [{"name", "self_ms", "calls"}...], "device": [...] (CUDA only),
    "host_waits": calls of cudaStreamSynchronize / cudaDeviceSynchronize / cudaMemcpy* (CUDA only)}.
    """
    from torch.profiler import ProfilerActivity, profile

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


def matmul_gflops(device: torch.device, dtype: torch.dtype = torch.float32, size: int = 1024, repeats: int = 10) -> float:
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


class _TensorOutputs(nn.Module):
    """A detector as a function of one image tensor returning a tuple of tensors, for tracing."""

    def __init__(self, model: nn.Module, call: Callable[[nn.Module, torch.Tensor], tuple]):
        super().__init__()
        self.model = model
        self.call = call

    def forward(self, image: torch.Tensor) -> tuple:
        return self.call(self.model, image)


def count_gflops(model: nn.Module, call: Callable[[nn.Module, torch.Tensor], tuple], image: torch.Tensor) -> float:
    """fvcore's FLOP count of one forward (fvcore counts one multiply-add as one flop), in GFLOP
    of two operations per multiply-add, the unit of the matmul rate.

    Counted on a CPU copy when ``image`` is elsewhere: the count does not depend on the device,
    and torchvision's detectors cannot be traced on CUDA (their traced mask pasting mixes devices).
    """
    import copy
    import warnings

    from fvcore.nn import FlopCountAnalysis

    if image.device.type != "cpu":
        model, image = copy.deepcopy(model).cpu(), image.cpu()

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about data-dependent control flow
        analysis = FlopCountAnalysis(_TensorOutputs(model, call), (image,))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return 2 * analysis.total() / 1e9
