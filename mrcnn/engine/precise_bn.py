"""The PreciseBN hook: BatchNorm running statistics recomputed as true averages before evaluation."""

import logging
from typing import Any, Iterable, Iterator, Optional

import torch.distributed as dist
from fvcore.nn.precise_bn import get_bn_modules, update_bn_stats
from torch import nn

from mrcnn.layers import SyncBatchNorm
from mrcnn.utils import comm
from mrcnn.utils.env import preserved_rng_states
from mrcnn.utils.events import EventStorage

from .model_ema import ModelEMA, averaged_weights
from .train_loop import HookBase

__all__ = ["PreciseBN"]

logger = logging.getLogger(__name__)


class PreciseBN(HookBase):
    """Every ``period`` iterations and after the last one, give the BatchNorm layers in training mode
    the statistics of ``num_iter`` batches of ``data_loader`` under the current weights.

    During training the running statistics are a moving average over weights that kept changing;
    fvcore's ``update_bn_stats`` runs the model (training mode, no gradients) on ``num_iter``
    batches and sets each layer's running mean and variance to those of all the elements it saw.
    ``period`` is TEST.EVAL_PERIOD: registered before the evaluation hook, it runs just before each
    evaluation and the checkpoint of that iteration. The batches come from an iterator of its own
    over ``data_loader`` (a second training loader), kept between runs. The random generators and
    the event storage are left as they were, so training continues as it would have. Does
    nothing for a model without BatchNorm layers in training mode.

    In distributed training every process runs it on its own batches. A SyncBatchNorm layer sees
    the statistics of all processes' batches, but fvcore weights each batch by the elements this
    process gave it, which differ between processes where the inputs do (a head's number of
    RoIs): the first process's statistics are then given to all, so that every process evaluates
    with what the checkpoint holds. Plain BatchNorm layers keep their per-process statistics.
    """

    def __init__(
        self,
        period: int,
        model: nn.Module,
        data_loader: Iterable[Any],
        num_iter: int,
        model_ema: Optional[ModelEMA] = None,
    ):
        """
        Args:
            period: run every this many iterations (0: only after the last iteration).
            model: the model whose BatchNorm layers (those in training mode) are updated; a
                DistributedDataParallel wrapper is looked through.
            data_loader: batches the model takes in training mode (with annotations).
            num_iter: batches per update.
            model_ema: the moving average of the weights that evaluations use (MODEL_EMA.ENABLED):
                the statistics are then those of the averaged weights, and go into the average.
        """
        self._model_ema = model_ema
        if int(num_iter) <= 0:
            raise ValueError(f"TEST.PRECISE_BN.NUM_ITER must be a positive number of batches; got {num_iter}.")
        self._period = int(period)
        self._model = getattr(model, "module", model)
        self._data_loader = data_loader
        self._num_iter = int(num_iter)
        self._data_iter: Optional[Iterator[Any]] = None
        self._disabled = len(get_bn_modules(self._model)) == 0
        if self._disabled:
            logger.info("PreciseBN does nothing: the model has no BatchNorm layer in training mode.")

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        if next_iter == self.trainer.max_iter or (self._period > 0 and next_iter % self._period == 0):
            self.update_stats()

    def update_stats(self) -> None:
        """Recompute the statistics now (callable by hand as well)."""
        if self._disabled:
            return
        if self._data_iter is None:
            self._data_iter = iter(self._data_loader)
        batches = (next(self._data_iter) for _ in range(self._num_iter))
        logger.info(f"Computing precise BatchNorm statistics over {self._num_iter} batches ...")
        # A storage of its own takes (and drops) what the model logs in these forward passes.
        with averaged_weights(self._model_ema), preserved_rng_states(), EventStorage():
            update_bn_stats(self._model, batches, self._num_iter)
            _share_synchronized_statistics(self._model)
            if self._model_ema is not None:
                self._model_ema.take_buffers()


def _share_synchronized_statistics(model: nn.Module) -> None:
    """Give the running statistics of the first process of each SyncBatchNorm's group to the others."""
    if comm.get_world_size() == 1:
        return
    for layer in get_bn_modules(model):
        if isinstance(layer, SyncBatchNorm) and layer.track_running_stats:
            group = layer.process_group
            source = dist.get_global_rank(group, 0) if group is not None else 0
            for buffer in (layer.running_mean, layer.running_var):
                dist.broadcast(buffer, src=source, group=group)
