"""The evaluator interface, a combinator of evaluators, and the inference loop that feeds them."""
import datetime
import logging
import time
from collections import OrderedDict
from contextlib import ExitStack, contextmanager
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import torch
from torch import nn

from mrcnn.utils import comm

__all__ = ["DatasetEvaluator", "DatasetEvaluators", "inference_on_dataset", "inference_context"]

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


def _synchronize_device() -> None:
    # CUDA kernels run asynchronously; wait for them so the timings measure the work itself
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


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
    done and ``{}`` is returned; non-main ranks also return ``{}``.
    """
    if evaluator is None:
        evaluator = DatasetEvaluator()
    elif not isinstance(evaluator, DatasetEvaluator):
        evaluator = DatasetEvaluators(list(evaluator))
    try:
        total: Optional[int] = len(data_loader)  # type: ignore[arg-type]
    except TypeError:  # an iterable dataset has no length
        total = None
    num_devices = comm.get_world_size()
    logger.info(f"Start inference on {total if total is not None else 'an unknown number of'} batches")

    evaluator.reset()
    num_warmup = min(num_warmup, total - 1) if total else num_warmup
    timed_batches = timed_images = 0
    data_seconds = compute_seconds = eval_seconds = 0.0
    start_time = last_log_time = time.perf_counter()
    timed_start = start_time
    num_batches = num_images = 0
    with ExitStack() as stack:
        stack.enter_context(inference_context(model))
        stack.enter_context(torch.inference_mode())
        data_start = time.perf_counter()
        for idx, inputs in enumerate(data_loader):
            if idx == num_warmup:
                timed_start = time.perf_counter()
                timed_batches = timed_images = 0
                data_seconds = compute_seconds = eval_seconds = 0.0
            data_seconds += time.perf_counter() - data_start

            compute_start = time.perf_counter()
            outputs = model(inputs)
            _synchronize_device()
            compute_seconds += time.perf_counter() - compute_start

            eval_start = time.perf_counter()
            evaluator.process(inputs, outputs)
            eval_seconds += time.perf_counter() - eval_start

            num_batches += 1
            num_images += len(inputs)
            timed_batches += 1
            timed_images += len(inputs)
            now = time.perf_counter()
            if now - last_log_time >= log_period_s and idx >= num_warmup:
                last_log_time = now
                _log_progress(idx + 1, total, timed_batches, now - timed_start, data_seconds, compute_seconds,
                              eval_seconds, timed_images)
            data_start = time.perf_counter()

    total_seconds = time.perf_counter() - start_time
    logger.info(
        f"Total inference time: {datetime.timedelta(seconds=int(total_seconds))} for {num_images} images "
        f"on {num_devices} device(s)"
    )
    if num_batches > num_warmup and timed_images > 0:
        timed_seconds = time.perf_counter() - timed_start
        logger.info(
            f"Inference speed (excluding {num_warmup} warm-up iterations): {compute_seconds / timed_images:.4f} s/img "
            f"for the model, {timed_seconds / timed_images:.4f} s/img in all "
            f"(data {data_seconds / timed_images:.4f}, evaluator {eval_seconds / timed_images:.4f}) "
            f"per device, on {num_devices} device(s)"
        )

    results = evaluator.evaluate()
    # an evaluator that has nothing to report on this rank may return None
    return results if results is not None else {}


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
    eta = (
        str(datetime.timedelta(seconds=int(seconds_per_batch * (total - done)))) if total is not None else "unknown"
    )
    per_image = max(timed_images, 1)
    logger.info(
        f"Inference done {done}/{total if total is not None else '?'}. "
        f"Data {data_seconds / per_image:.4f} s/img, model {compute_seconds / per_image:.4f} s/img, "
        f"evaluator {eval_seconds / per_image:.4f} s/img, total {timed_seconds / per_image:.4f} s/img. ETA={eta}"
    )
