"""Inference over a test loader without an evaluator: how many images, how fast."""
import contextlib
import logging
import time
from typing import Any, Dict, Iterable, Iterator

import torch
from torch import nn

from mrcnn.utils import comm

__all__ = ["inference_without_evaluator"]

logger = logging.getLogger(__name__)

_WARMUP_BATCHES = 2


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _synchronize(model: nn.Module) -> None:
    first = next(model.parameters(), None)
    if first is not None and first.is_cuda:
        torch.cuda.synchronize(first.device)


def inference_without_evaluator(model: nn.Module, data_loader: Iterable) -> Dict[str, Any]:
    """Run ``model`` over every batch; returns ``{"inference": {"num_images", "seconds_per_image",
    "total_seconds"}}`` summed over ranks on the main process, ``{}`` on the others.

    The first batches (warm-up) are excluded from seconds_per_image but counted in num_images.
    """
    num_images = 0
    timed_images = 0
    timed_seconds = 0.0
    start_all = time.perf_counter()
    with _eval_mode(model), torch.no_grad():
        for index, batch in enumerate(data_loader):
            start = time.perf_counter()
            model(batch)
            _synchronize(model)
            if index >= _WARMUP_BATCHES:
                timed_seconds += time.perf_counter() - start
                timed_images += len(batch)
            num_images += len(batch)
    total_seconds = time.perf_counter() - start_all
    per_rank = comm.gather((num_images, timed_images, timed_seconds, total_seconds))
    if not comm.is_main_process():
        return {}
    num_images = sum(entry[0] for entry in per_rank)
    timed_images = sum(entry[1] for entry in per_rank)
    # Ranks run in parallel: per-image time is each rank's, averaged over the timed images.
    timed_seconds = sum(entry[2] for entry in per_rank)
    total_seconds = max(entry[3] for entry in per_rank)
    seconds_per_image = timed_seconds / timed_images if timed_images else float("nan")
    logger.info(
        f"Inference without an evaluator: {num_images} images in {total_seconds:.2f} s "
        f"({seconds_per_image:.4f} s / image after warm-up)"
    )
    return {
        "inference": {
            "num_images": num_images,
            "seconds_per_image": seconds_per_image,
            "total_seconds": total_seconds,
        }
    }
