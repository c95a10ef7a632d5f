"""The key-value store a torchrun worker creates its process group on, safe across torchrun restarts.

torchrun's c10d rendezvous (``--standalone``, ``--rdzv-backend c10d``) keeps one TCPStore for the
whole job and hands the same MASTER_ADDR:MASTER_PORT to every attempt
(TORCHELASTIC_USE_AGENT_STORE=True). A process group created on it with ``init_method="env://"``
uses the same key names at every attempt, so after ``--max-restarts`` restarted the workers they
read the addresses that the dead workers of the previous attempt published, and gloo fails with
"connectFullMesh ... Connection refused" (NCCL with a stale unique id). Restart counts cannot
tell the attempts apart: each node's agent counts its own, and restarts after a membership
change are not counted.

`torchrun_store` therefore puts the process group under a key prefix that all ranks of this
attempt agree on through a handshake no stale key can satisfy: every rank publishes a random
token, rank 0 answers each rank with that rank's token and a token of its own, and a rank accepts
an answer only if it carries its own token; rank 0 waits until every rank has confirmed.
"""

import os
import time
import uuid
from datetime import timedelta

import torch.distributed as dist

__all__ = ["torchrun_store"]

_POLL_SECONDS = 0.02
_KEYS = "mrcnn/attempt"


def torchrun_store(rank: int, world_size: int, timeout: timedelta) -> dist.Store:
    """A store on torchrun's MASTER_ADDR:MASTER_PORT whose keys no earlier attempt has written."""
    host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    # With the agent's store the agent is the server; otherwise rank 0 serves, as env:// does.
    agent_serves = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == str(True)
    try:
        store = dist.TCPStore(
            host, port, world_size, is_master=rank == 0 and not agent_serves, timeout=timeout, multi_tenant=True
        )
    except Exception as error:
        raise RuntimeError(f"Cannot reach torchrun's store at {host}:{port} (rank {rank}): {error}") from error
    prefix = _attempt_token(store, rank, world_size, time.monotonic() + timeout.total_seconds(), f"{host}:{port}")
    return dist.PrefixStore(f"{_KEYS}/{prefix}/", store)


def _attempt_token(store: dist.Store, rank: int, world_size: int, deadline: float, where: str) -> str:
    """Rank 0's token of this attempt, known to every rank once all have confirmed it."""
    token = uuid.uuid4().hex
    if rank == 0:
        waiting = set(range(1, world_size))
        while waiting:
            for other in sorted(waiting):
                if store.check([f"{_KEYS}/token/{other}"]):
                    answer = store.get(f"{_KEYS}/token/{other}").decode() + ":" + token
                    store.set(f"{_KEYS}/answer/{other}", answer)
                confirm = f"{_KEYS}/confirm/{other}"
                if store.check([confirm]) and store.get(confirm).decode() == token:
                    waiting.discard(other)
            _wait_or_fail(deadline, f"ranks {sorted(waiting)} did not join", where)
        return token
    store.set(f"{_KEYS}/token/{rank}", token)
    while True:
        if store.check([f"{_KEYS}/answer/{rank}"]):
            echoed, _, leader = store.get(f"{_KEYS}/answer/{rank}").decode().partition(":")
            if echoed == token:
                store.set(f"{_KEYS}/confirm/{rank}", leader)
                return leader
        _wait_or_fail(deadline, "rank 0 did not answer", where)


def _wait_or_fail(deadline: float, what: str, where: str) -> None:
    if time.monotonic() > deadline:
        raise RuntimeError(f"Starting the process group through torchrun's store at {where} timed out: {what}.")
    time.sleep(_POLL_SECONDS)
