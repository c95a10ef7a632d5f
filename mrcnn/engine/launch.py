"""Start a function in one process per device, on one or several machines, or under torchrun.

* With CUDA: one process per GPU, NCCL backend.
* Without CUDA: ``num_gpus_per_machine`` CPU processes over gloo (``--num-gpus 2`` on a CPU
  machine trains with 2 processes); each gets an equal share of the CPU threads.
* Under ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT in the environment) the
  process group is created from that environment and no processes are spawned.
"""

import logging
import os
import socket
from datetime import timedelta
from typing import Any, Callable, Optional, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mrcnn.utils import comm

__all__ = ["DEFAULT_TIMEOUT", "launch", "started_by_torchrun"]

DEFAULT_TIMEOUT = timedelta(minutes=30)

logger = logging.getLogger(__name__)


def _find_free_port() -> int:
    """A TCP port that is free now on this machine (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def started_by_torchrun() -> bool:
    """Whether the environment was set up by torchrun (or another launcher using its variables)."""
    return all(key in os.environ for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"))


def _pick_backend(backend: Optional[str]) -> str:
    if backend:
        return backend
    return "nccl" if torch.cuda.is_available() else "gloo"


def _share_cpu_threads(processes_per_machine: int) -> None:
    # Without this every process would start one thread per core and they would fight over them.
    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, processes_per_machine)))


def _create_local_groups(num_machines: int, processes_per_machine: int, machine_rank: int) -> None:
    # Every rank must create every group, in the same order, even groups it is not part of.
    for machine in range(num_machines):
        ranks = list(range(machine * processes_per_machine, (machine + 1) * processes_per_machine))
        group = dist.new_group(ranks)
        if machine == machine_rank:
            comm.set_local_process_group(group)


def launch(
    main_func: Callable[..., Any],
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: Optional[str] = None,
    args: Sequence[Any] = (),
    timeout: timedelta = DEFAULT_TIMEOUT,
    backend: Optional[str] = None,
) -> None:
    """Run ``main_func(*args)`` in ``num_machines * num_gpus_per_machine`` processes.

    ``dist_url`` is the rendezvous address of machine 0 (``tcp://IP:PORT``); "auto" (or None) picks
    a free local port and needs ``num_machines == 1``. With one process in total ``main_func`` runs
    in this process, without a process group. ``main_func`` must be importable (module level),
    because processes are spawned.
    """
    if started_by_torchrun():
        _run_under_torchrun(main_func, args, timeout, backend)
        return
    if num_gpus_per_machine < 1 or num_machines < 1:
        raise ValueError(f"Need at least one process and one machine; got {num_gpus_per_machine} x {num_machines}.")
    if not 0 <= machine_rank < num_machines:
        raise ValueError(f"machine_rank must be in [0, {num_machines}); got {machine_rank}.")
    world_size = num_machines * num_gpus_per_machine
    if world_size == 1:
        main_func(*args)
        return
    if dist_url in (None, "", "auto"):
        if num_machines != 1:
            raise ValueError(
                "dist_url 'auto' works on one machine only; pass tcp://IP:PORT of machine 0 to every machine."
            )
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        logger.warning("file:// rendezvous across machines needs a shared filesystem.")
    mp.start_processes(
        _distributed_worker,
        nprocs=num_gpus_per_machine,
        args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, tuple(args), timeout, backend),
        daemon=False,
        start_method="spawn",
    )


def _distributed_worker(
    local_rank: int,
    main_func: Callable[..., Any],
    world_size: int,
    num_gpus_per_machine: int,
    machine_rank: int,
    dist_url: str,
    args: Sequence[Any],
    timeout: timedelta,
    backend: Optional[str],
) -> None:
    backend = _pick_backend(backend)
    if backend == "nccl":
        if num_gpus_per_machine > torch.cuda.device_count():
            raise RuntimeError(
                f"Asked for {num_gpus_per_machine} processes per machine but only "
                f"{torch.cuda.device_count()} GPUs are visible (--num-gpus)."
            )
        torch.cuda.set_device(local_rank)
    else:
        _share_cpu_threads(num_gpus_per_machine)
    global_rank = machine_rank * num_gpus_per_machine + local_rank
    os.environ["LOCAL_RANK"] = str(local_rank)
    os.environ["LOCAL_WORLD_SIZE"] = str(num_gpus_per_machine)
    try:
        dist.init_process_group(
            backend=backend, init_method=dist_url, world_size=world_size, rank=global_rank, timeout=timeout
        )
    except Exception as error:
        raise RuntimeError(
            f"Process group initialisation failed at {dist_url} (rank {global_rank}): {error}"
        ) from error
    try:
        _create_local_groups(world_size // num_gpus_per_machine, num_gpus_per_machine, machine_rank)
        comm.synchronize()
        main_func(*args)
    finally:
        comm.set_local_process_group(None)
        dist.destroy_process_group()


def _run_under_torchrun(
    main_func: Callable[..., Any], args: Sequence[Any], timeout: timedelta, backend: Optional[str]
) -> None:
    world_size = int(os.environ["WORLD_SIZE"])
    if world_size == 1:
        main_func(*args)
        return
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ["LOCAL_RANK"])
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    backend = _pick_backend(backend)
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    else:
        _share_cpu_threads(local_size)
    dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    try:
        if world_size % local_size != 0:
            raise RuntimeError(f"WORLD_SIZE={world_size} is not a multiple of LOCAL_WORLD_SIZE={local_size}.")
        _create_local_groups(world_size // local_size, local_size, rank // local_size)
        comm.synchronize()
        main_func(*args)
    finally:
        comm.set_local_process_group(None)
        dist.destroy_process_group()
