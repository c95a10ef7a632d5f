"""Peak tensor memory of one call, on the CPU and on CUDA."""

from typing import Any, Callable

import torch
from torch.profiler import ProfilerActivity, profile

from .timing import synchronize

__all__ = ["peak_memory_bytes"]


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
