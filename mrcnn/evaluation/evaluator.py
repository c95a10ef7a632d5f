"""The evaluator interface, a combinator of evaluators, and the inference loop that feeds them."""

import datetime
import logging
import time
from collections import OrderedDict
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import torch
from torch import nn

from mrcnn.utils import comm

__all__ = ["DatasetEvaluator", "DatasetEvaluators", "inference_on_dataset", "inference_speed", "inference_context"]

logger = logging.getLogger(__name__)


class DatasetEvaluator:
    """Accumulates model outputs over a dataset and turns them into metrics.

    The inference loop calls `reset()` once, `process(inputs, outputs)` for every batch, and
    `evaluate()` at the end. In a distributed run every rank processes its share of the
    images; `evaluate()` gathers them and returns the metrics on the main process only
    (other ranks return ``{}``).
    """

    def reset(self) -> None:
        """Forget everything processed so far; called before a new pass over the dataset."""

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        """Record one batch: ``inputs`` as given to the model, ``outputs`` as it returned them."""

    def evaluate(self) -> Dict[str, Any]:
        """Metrics of everything processed, as ``{task: {metric: value}}``; ``{}`` on non-main ranks."""
        return {}


class DatasetEvaluators(DatasetEvaluator):
    """Runs several evaluators on the same outputs and merges their results."""

    def __init__(self, evaluators: Sequence[DatasetEvaluator]):
        super().__init__()
        self._evaluators = list(evaluators)

    def reset(self) -> None:
        """Reset every evaluator."""
        for evaluator in self._evaluators:
            evaluator.reset()

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        """Hand the batch to every evaluator."""
        for evaluator in self._evaluators:
            evaluator.process(inputs, outputs)

    def evaluate(self) -> Dict[str, Any]:
        """Merged results; two evaluators reporting the same task is an error."""
        results: Dict[str, Any] = OrderedDict()
        for evaluator in self._evaluators:
            partial = evaluator.evaluate()
            if not comm.is_main_process() or not partial:
                continue
            for task, metrics in partial.items():
                if task in results:
                    raise KeyError(
                        f"Evaluators {type(evaluator).__name__} and an earlier one both report task '{task}'; "
                        "combine evaluators whose tasks differ."
                    )
                results[task] = metrics
        return results


@contextmanager
def inference_context(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode for the block and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _synchronize_device(model: nn.Module) -> None:
    """Wait for the CUDA kernels queued by ``model``, so that a timing measures the work itself."""
    parameter = next(model.parameters(), None) if hasattr(model, "parameters") else None
    if parameter is not None:
        if parameter.is_cuda:
            torch.cuda.synchronize(parameter.device)
    elif torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()  # a model without parameters: whichever device it used


@dataclass
class _InferenceTimes:
    """What one pass of the inference loop measured on this rank; "timed" leaves out the warm-up."""

    num_warmup: int = 0
    num_batches: int = 0
    num_images: int = 0
    timed_images: int = 0
    data_seconds: float = 0.0
    compute_seconds: float = 0.0
    eval_seconds: float = 0.0
    timed_seconds: float = 0.0
    total_seconds: float = 0.0


def _run_inference(
    model: nn.Module,
    data_loader: Iterable[List[Dict[str, Any]]],
    evaluator: DatasetEvaluator,
    num_warmup: int,
    log_period_s: float,
) -> _InferenceTimes:
    """Feed every batch through ``model`` (eval mode, inference mode) and ``evaluator.process``; time it."""
    try:
        total: Optional[int] = len(data_loader)  # type: ignore[arg-type]
    except TypeError:  # an iterable dataset has no length
        total = None
    logger.info(f"Start inference on {total if total is not None else 'an unknown number of'} batches")
    times = _InferenceTimes(num_warmup=min(num_warmup, total - 1) if total else num_warmup)
    timed_batches = 0
    start_time = last_log_time = time.perf_counter()
    timed_start = start_time
    with ExitStack() as stack:
        stack.enter_context(inference_context(model))
        stack.enter_context(torch.inference_mode())
        data_start = time.perf_counter()
        for idx, inputs in enumerate(data_loader):
            if idx == times.num_warmup:
                timed_start = time.perf_counter()
                timed_batches = times.timed_images = 0
                times.data_seconds = times.compute_seconds = times.eval_seconds = 0.0
            times.data_seconds += time.perf_counter() - data_start

            compute_start = time.perf_counter()
            outputs = model(inputs)
            _synchronize_device(model)
            times.compute_seconds += time.perf_counter() - compute_start

            eval_start = time.perf_counter()
            evaluator.process(inputs, outputs)
            times.eval_seconds += time.perf_counter() - eval_start

            times.num_batches += 1
            times.num_images += len(inputs)
            timed_batches += 1
            times.timed_images += len(inputs)
            now = time.perf_counter()
            if now - last_log_time >= log_period_s and idx >= times.num_warmup:
                last_log_time = now
                _log_progress(
                    idx + 1,
                    total,
                    timed_batches,
                    now - timed_start,
                    times.data_seconds,
                    times.compute_seconds,
                    times.eval_seconds,
                    times.timed_images,
                )
            data_start = time.perf_counter()
    end_time = time.perf_counter()
    times.total_seconds = end_time - start_time
    times.timed_seconds = end_time - timed_start
    return times


def inference_on_dataset(
    model: nn.Module,
    data_loader: Iterable[List[Dict[str, Any]]],
    evaluator: Union[DatasetEvaluator, Sequence[DatasetEvaluator], None],
    *,
    num_warmup: int = 5,
    log_period_s: float = 5.0,
) -> Dict[str, Any]:
    """Run ``model`` over every batch of ``data_loader`` and return ``evaluator``'s results.

    The model runs in eval mode under ``torch.inference_mode()`` (its training mode is restored
    afterwards). Progress with an ETA is logged about every ``log_period_s`` seconds; the
    reported seconds per image leave out the first ``num_warmup`` iterations, which pay for
    allocator warm-up and lazy initialisation. With ``evaluator=None`` only the timing is
    done and ``{}`` is returned (`inference_speed` returns the timing); non-main ranks also
    return ``{}``.
    """
    if evaluator is None:
        evaluator = DatasetEvaluator()
    elif not isinstance(evaluator, DatasetEvaluator):
        evaluator = DatasetEvaluators(list(evaluator))
    evaluator.reset()
    times = _run_inference(model, data_loader, evaluator, num_warmup, log_period_s)

    num_devices = comm.get_world_size()
    logger.info(
        f"Total inference time: {datetime.timedelta(seconds=int(times.total_seconds))} for {times.num_images} images "
        f"on {num_devices} device(s)"
    )
    if times.num_batches > times.num_warmup and times.timed_images > 0:
        per_image = times.timed_images
        logger.info(
            f"Inference speed (excluding {times.num_warmup} warm-up iterations): "
            f"{times.compute_seconds / per_image:.4f} s/img for the model, {times.timed_seconds / per_image:.4f} "
            f"s/img in all (data {times.data_seconds / per_image:.4f}, evaluator {times.eval_seconds / per_image:.4f}) "
            f"per device, on {num_devices} device(s)"
        )

    results = evaluator.evaluate()
    # an evaluator that has nothing to report on this rank may return None
    return results if results is not None else {}


def inference_speed(
    model: nn.Module, data_loader: Iterable[List[Dict[str, Any]]], *, num_warmup: int = 2, log_period_s: float = 5.0
) -> Dict[str, Any]:
    """Run ``model`` over every batch without evaluating; returns ``{"inference": {"num_images",
    "seconds_per_image", "total_seconds"}}`` over all ranks on the main process, ``{}`` on the others.

    seconds_per_image is the model's time per image (as `inference_on_dataset` reports it),
    leaving out the first ``num_warmup`` batches, which num_images still counts (a loader with a
    length keeps at least one batch timed; NaN when none is). total_seconds is the wall time of
    the slowest rank.
    """
    times = _run_inference(model, data_loader, DatasetEvaluator(), num_warmup, log_period_s)
    timed_images = times.timed_images if times.num_batches > times.num_warmup else 0
    per_rank = comm.gather((times.num_images, timed_images, times.compute_seconds, times.total_seconds))
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


def _log_progress(
    done: int,
    total: Optional[int],
    timed_batches: int,
    timed_seconds: float,
    data_seconds: float,
    compute_seconds: float,
    eval_seconds: float,
    timed_images: int,
) -> None:
    seconds_per_batch = timed_seconds / max(timed_batches, 1)
    eta = str(datetime.timedelta(seconds=int(seconds_per_batch * (total - done)))) if total is not None else "unknown"
    per_image = max(timed_images, 1)
    logger.info(
        f"Inference done {done}/{total if total is not None else '?'}. "
        f"Data {data_seconds / per_image:.4f} s/img, model {compute_seconds / per_image:.4f} s/img, "
        f"evaluator {eval_seconds / per_image:.4f} s/img, total {timed_seconds / per_image:.4f} s/img. ETA={eta}"
    )
