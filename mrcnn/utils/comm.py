"""Helpers for torch.distributed that also work in a single process."""

import functools
import os
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist

__all__ = [
    "get_world_size",
    "get_rank",
    "get_local_rank",
    "get_local_size",
    "is_main_process",
    "synchronize",
    "all_gather",
    "gather",
    "reduce_dict",
    "max_over_ranks",
    "shared_random_seed",
]

_LOCAL_PROCESS_GROUP: Optional[dist.ProcessGroup] = None


def _is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    return dist.get_world_size() if _is_initialized() else 1


def get_rank() -> int:
    """Global rank of this process (0 when not distributed)."""
    return dist.get_rank() if _is_initialized() else 0


def set_local_process_group(group: Optional[dist.ProcessGroup]) -> None:
    """Remember the group of processes on this machine (set by `launch`)."""
    global _LOCAL_PROCESS_GROUP
    _LOCAL_PROCESS_GROUP = group


def get_local_rank() -> int:
    """Rank of this process among those on its machine."""
    if not _is_initialized():
        return 0
    if _LOCAL_PROCESS_GROUP is not None:
        return dist.get_rank(group=_LOCAL_PROCESS_GROUP)
    return int(os.environ.get("LOCAL_RANK", 0))


def get_local_size() -> int:
    """Number of processes on this machine."""
    if not _is_initialized():
        return 1
    if _LOCAL_PROCESS_GROUP is not None:
        return dist.get_world_size(group=_LOCAL_PROCESS_GROUP)
    return int(os.environ.get("LOCAL_WORLD_SIZE", get_world_size()))


def is_main_process() -> bool:
    """True on global rank 0."""
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes; a no-op in a single process."""
    if get_world_size() == 1:
        return
    if dist.get_backend() == dist.Backend.NCCL and torch.cuda.is_available():
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


@functools.lru_cache
def _object_group() -> dist.ProcessGroup:
    # Python objects travel over gloo, which works for CPU tensors whatever the main backend is.
    if dist.get_backend() == "nccl":
        return dist.new_group(backend="gloo")
    return dist.group.WORLD


def all_gather(data: Any, group: Optional[dist.ProcessGroup] = None) -> List[Any]:
    """Gather any picklable object from every rank; returns the list ordered by rank."""
    if get_world_size() == 1:
        return [data]
    group = group or _object_group()
    output: List[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(output, data, group=group)
    return output


def gather(data: Any, dst: int = 0, group: Optional[dist.ProcessGroup] = None) -> List[Any]:
    """Gather any picklable object on rank ``dst``; other ranks receive an empty list."""
    if get_world_size() == 1:
        return [data]
    group = group or _object_group()
    if dist.get_rank(group=group) == dst:
        output: List[Any] = [None] * dist.get_world_size(group)
        dist.gather_object(data, output, dst=dst, group=group)
        return output
    dist.gather_object(data, None, dst=dst, group=group)
    return []


def reduce_dict(input_dict: Dict[str, torch.Tensor], average: bool = True) -> Dict[str, torch.Tensor]:
    """Sum (or average) a dict of scalar tensors over all ranks; every rank gets the result."""
    world_size = get_world_size()
    if world_size < 2:
        return input_dict
    with torch.no_grad():
        names = sorted(input_dict.keys())
        values = torch.stack([input_dict[k].detach().float() for k in names])
        dist.all_reduce(values)
        if average:
            values /= world_size
        return dict(zip(names, values))


def max_over_ranks(value: int) -> int:
    """The largest of every rank's integer ``value``; every rank gets it (``value`` in one process).

    The reduction runs over gloo on a CPU tensor, also when the main backend is NCCL, so it never
    waits for queued GPU work.
    """
    if get_world_size() == 1:
        return int(value)
    tensor = torch.tensor([int(value)], dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=_object_group())
    return int(tensor.item())


def shared_random_seed() -> int:
    """A random integer drawn on rank 0 and shared with every rank."""
    import numpy as np

    seed = int(np.random.randint(2**31))
    return all_gather(seed)[0]
