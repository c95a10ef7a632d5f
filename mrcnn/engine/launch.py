"""Start a function in one process per device, on one or several machines, or under torchrun.

* With CUDA: one process per GPU, NCCL backend.
* Without CUDA: ``num_gpus_per_machine`` CPU processes over gloo (``--num-gpus 2`` on a CPU
  machine trains with 2 processes); each gets an equal share of the CPU threads.
* Under ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT in the environment) the
  process group is created from that environment and no processes are spawned.

Spawned workers and their launching process stay together:

* SIGTERM or SIGINT to the launching process is passed on to the workers, which stop after the
  same iteration and save a checkpoint (mrcnn.engine.preemption); the launcher then raises
  `TrainingInterrupted` (exit status 75) once they have all exited.
* A worker whose launching process is gone (killed with SIGKILL, say) gets SIGTERM within a
  second, so it saves and exits instead of training on as an orphan; one still alive
  ``SHUTDOWN_GRACE_SECONDS`` later ends at once.
* A worker that fails (an exception, a signal) ends the others: SIGTERM, then SIGKILL after the
  grace period; the launcher raises the failure with the worker's traceback.
* A worker whose function returned waits at a barrier for the others before the process group
  is torn down, so no rank closes its connections while another still uses them.
"""

import logging
import multiprocessing.connection
import os
import pickle
import signal
import socket
import threading
import time
from datetime import timedelta
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mrcnn.utils import comm

from .preemption import EXIT_CODE_INTERRUPTED, STOP_SIGNALS, TrainingInterrupted
from .torchrun_store import torchrun_store

__all__ = ["DEFAULT_TIMEOUT", "SHUTDOWN_GRACE_SECONDS", "launch", "started_by_torchrun", "torchrun_restart_count"]

DEFAULT_TIMEOUT = timedelta(minutes=30)
# How long a worker may take to stop after SIGTERM before it is killed (torchrun's default too).
SHUTDOWN_GRACE_SECONDS = 30.0
_PARENT_POLL_SECONDS = 0.5

logger = logging.getLogger(__name__)


def _find_free_port() -> int:
    """A TCP port that is free now on this machine (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def started_by_torchrun() -> bool:
    """Whether the environment was set up by torchrun (or another launcher using its variables)."""
    return all(key in os.environ for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"))


def torchrun_restart_count() -> int:
    """How often torchrun has restarted this worker group after a failure (0 outside torchrun).

    torchrun's elastic agent sets TORCHELASTIC_RESTART_COUNT; it does not count restarts caused
    by nodes joining a ``--nnodes MIN:MAX`` job.
    """
    value = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"TORCHELASTIC_RESTART_COUNT must be an integer; got {value!r}.") from None


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
    worker_args = (main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, tuple(args), timeout, backend)
    context = mp.start_processes(
        _distributed_worker,
        nprocs=num_gpus_per_machine,
        args=(*worker_args, os.getpid()),
        daemon=False,
        start_method="spawn",
        join=False,
    )
    _join_workers(context.processes, context.error_files)


def _join_workers(processes: List[Any], error_files: List[str]) -> None:
    """Wait for every worker; pass stop signals on to them; raise on a failure or an interruption."""
    pending: Dict[Any, int] = {process.sentinel: index for index, process in enumerate(processes)}
    interrupted = False
    with _SignalsPassedOn(processes):
        while pending:
            for sentinel in multiprocessing.connection.wait(list(pending)):
                index = pending.pop(sentinel)
                process = processes[index]
                process.join()
                if process.exitcode == EXIT_CODE_INTERRUPTED:
                    interrupted = True  # the others stop after the same iteration: wait for them
                elif process.exitcode != 0:
                    _stop_processes([processes[i] for i in pending.values()])
                    raise _worker_failure(index, process, error_files[index])
    if interrupted:
        raise TrainingInterrupted("a signal in the worker processes (their log names the checkpoint)")


class _SignalsPassedOn:
    """While entered, SIGTERM and SIGINT to this process are sent on to ``processes`` (unless ignored)."""

    def __init__(self, processes: List[Any]):
        self._processes = processes
        self._previous: Dict[int, Any] = {}

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            if previous is not signal.SIG_IGN:
                self._previous[signum] = previous
                signal.signal(signum, self._pass_on)

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)

    def _pass_on(self, signum: int, frame: Optional[FrameType]) -> None:
        logger.warning(f"Got {signal.Signals(signum).name}: passing it on to the worker processes.")
        for process in self._processes:
            if process.is_alive():
                try:
                    os.kill(process.pid, signum)
                except ProcessLookupError:
                    pass


def _stop_processes(processes: List[Any]) -> None:
    """SIGTERM to every live process, then SIGKILL to those still alive after the grace period."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            logger.warning(f"Worker process {process.pid} did not stop after SIGTERM; killing it.")
            process.kill()
            process.join()


def _worker_failure(index: int, process: Any, error_file: str) -> Exception:
    """The exception describing how worker ``index`` failed (its traceback when it raised one)."""
    if os.access(error_file, os.R_OK):
        with open(error_file, "rb") as f:
            trace = pickle.load(f)
        return mp.ProcessRaisedException(
            f"\n\n-- Worker process {index} terminated with the following error:\n{trace}", index, process.pid
        )
    if process.exitcode < 0:
        name = signal.Signals(-process.exitcode).name
        return mp.ProcessExitedException(
            f"Worker process {index} was killed by {name}.", index, process.pid, process.exitcode, name
        )
    return mp.ProcessExitedException(
        f"Worker process {index} exited with status {process.exitcode}.", index, process.pid, process.exitcode
    )


def _stop_when_parent_is_gone(parent_pid: int) -> None:
    """In a spawned worker: SIGTERM this process once ``parent_pid`` is no longer its parent."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(_PARENT_POLL_SECONDS)
        logger.warning(f"The launching process {parent_pid} is gone: stopping this worker.")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(SHUTDOWN_GRACE_SECONDS)
        logger.error(f"Still running {SHUTDOWN_GRACE_SECONDS:.0f} s after the launching process died; exiting now.")
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


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
    parent_pid: int,
) -> None:
    _stop_when_parent_is_gone(parent_pid)
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
        _run_then_wait_for_every_rank(main_func, args)
    finally:
        comm.set_local_process_group(None)
        dist.destroy_process_group()


def _run_then_wait_for_every_rank(main_func: Callable[..., Any], args: Sequence[Any]) -> None:
    """``main_func(*args)``, then a barrier before the caller tears the process group down.

    A rank that finishes early (one that only sent its predictions to the main process) would
    otherwise close its connections while others still use the group, and gloo can then abort
    the process ("terminate called without an active exception"). The ranks stop together on a
    signal too (they agree on the iteration), so an interruption also waits. After any other
    failure there is no barrier: the other ranks may never reach it.
    """
    try:
        main_func(*args)
    except TrainingInterrupted:
        _wait_for_every_rank("the interruption")
        raise
    _wait_for_every_rank("its work")


def _wait_for_every_rank(after: str) -> None:
    """The barrier of ``_run_then_wait_for_every_rank``. It fails when another rank failed and tore
    its connections down: that rank's error is the one to report (the launcher does), and this
    rank's own work is done, so the failure is logged, not raised, and exit status 75 of an
    interruption stays."""
    try:
        comm.synchronize()
    except RuntimeError as error:
        logger.warning(f"Rank {comm.get_rank()} finished {after}, but not every other rank did: {error}")


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
    # Not init_method="env://": after a torchrun restart it would read the previous attempt's keys.
    store = torchrun_store(rank, world_size, timeout)
    dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world_size, timeout=timeout)
    try:
        if world_size % local_size != 0:
            raise RuntimeError(f"WORLD_SIZE={world_size} is not a multiple of LOCAL_WORLD_SIZE={local_size}.")
        _create_local_groups(world_size // local_size, local_size, rank // local_size)
        comm.synchronize()
        _run_then_wait_for_every_rank(main_func, args)
    finally:
        comm.set_local_process_group(None)
        dist.destroy_process_group()
