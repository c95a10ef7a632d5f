"""Random number generators: seeding, and capturing/restoring their states for exact resume."""

import contextlib
import logging
import os
import random
from datetime import datetime
from typing import Any, Dict, Iterator, Optional

import numpy as np
import torch

__all__ = [
    "seed_all_rng",
    "capture_rng_states",
    "restore_rng_states",
    "preserved_rng_states",
    "seed_from_rng_states",
]

logger = logging.getLogger(__name__)


def seed_all_rng(seed: Optional[int] = None) -> int:
    """Seed python's `random`, numpy and torch (CPU and every CUDA device); returns the seed used.

    ``None`` draws a fresh seed from the OS, the time and the process id, and logs it so that the
    run can be repeated.
    """
    if seed is None:
        seed = (os.getpid() + int(datetime.now().strftime("%S%f")) + int.from_bytes(os.urandom(2), "big")) % (2**31)
        logger.info(f"Using a randomly drawn seed {seed}")
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def capture_rng_states() -> Dict[str, Any]:
    """The states of python's `random`, numpy, torch and (when present) CUDA generators.

    Everything is a tensor, int, float, str or a list/tuple of those, so a checkpoint holding it
    loads with ``torch.load(weights_only=True)``.
    """
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    states: Dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Dict[str, Any]) -> None:
    """Put every generator back into a state from :func:`capture_rng_states`."""
    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in states:
        np_state = states["numpy"]
        keys = np.asarray(torch.as_tensor(np_state["keys"]).numpy(), dtype=np.uint32)
        np.random.set_state(
            (np_state["name"], keys, np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"])
        )
    if "torch" in states:
        torch.set_rng_state(torch.as_tensor(states["torch"], dtype=torch.uint8))
    if "cuda" in states and torch.cuda.is_available():
        cuda_states = states["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            logger.warning(
                f"The checkpoint holds {len(cuda_states)} CUDA generator states but "
                f"{torch.cuda.device_count()} devices are visible; CUDA generators are not restored."
            )


@contextlib.contextmanager
def preserved_rng_states() -> Iterator[None]:
    """Run a block without disturbing the generators of the code around it (e.g. an evaluation)."""
    states = capture_rng_states()
    try:
        yield
    finally:
        restore_rng_states(states)


def seed_from_rng_states(states: Dict[str, Any], salt: int) -> int:
    """A seed determined by saved generator states and ``salt`` (e.g. a rank), for reseeding."""
    torch_state = torch.as_tensor(states["torch"], dtype=torch.uint8)
    # A polynomial hash of the state bytes: deterministic across runs, unlike Python's hash().
    weights = torch.arange(1, torch_state.numel() + 1, dtype=torch.int64)
    digest = int((torch_state.to(torch.int64) * weights).sum().item())
    return (digest * 1000003 + salt * 7919) % (2**31)
