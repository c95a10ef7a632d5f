"""BatchNorm whose training statistics are those of the whole batch across processes, on any device.

``get_norm("SyncBN")`` builds `SyncBatchNorm`, an nn.BatchNorm2d that, in training under a process
group, normalises with the statistics of the union of every process's batch:

* CUDA tensors: torch's own synchronised kernels (the autograd function behind nn.SyncBatchNorm:
  fused statistics, one all-gather), when the running torch has it with the signature we call.
* CPU tensors (gloo), where torch's kernels do not exist (and DDP refuses any nn.SyncBatchNorm in
  a CPU module): every process computes the mean and biased variance of its part and its element
  count; one differentiable all-reduce shares them, and each process combines them, weighted by
  the counts, into the statistics of the whole batch (the parallel-variance formula, which does
  not lose precision to E[x^2] - E[x]^2).

Both compute the same thing, so a model trains alike on GPUs and on CPU processes:

* statistics over all elements of all processes, whatever each process holds (a different
  number of images, or of RoIs in a head, or none: an empty input still joins the collective);
* running_var updated with the unbiased variance (n / (n - 1)), as nn.BatchNorm2d does;
* gradients of the whole batch: the backward of the collective sums the gradients that reach the
  shared statistics from every process. With DDP averaging the parameter gradients, two
  processes with half a batch each get the gradients of one process with the whole batch.

One process, no process group, or eval mode: exactly nn.BatchNorm2d. (detectron2's
NaiveSyncBatchNorm, by default, weights every process equally whatever its number of elements
and updates running_var with the biased variance; ours is exact for unequal parts.)
"""

import inspect
from typing import List, Optional

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["SyncBatchNorm", "all_reduce_with_grad"]

# Devices on which torch's synchronised batch-norm kernels (batch_norm_stats, ...) run.
_TORCH_SYNC_DEVICE_TYPES = ("cuda", "hpu", "xpu")
_TORCH_SYNC_ARGUMENTS = [
    "input",
    "weight",
    "bias",
    "running_mean",
    "running_var",
    "eps",
    "momentum",
    "process_group",
    "world_size",
]


def _torch_sync_batch_norm_function():
    """torch's autograd function behind nn.SyncBatchNorm (a private module), or None when the
    running torch lacks it or it takes other arguments than those we pass."""
    try:
        from torch.nn.modules._functions import SyncBatchNorm as function
    except ImportError:
        return None
    arguments = list(inspect.signature(function.forward).parameters)[1:]  # after ctx
    return function if arguments == _TORCH_SYNC_ARGUMENTS else None


_TORCH_SYNC_BATCH_NORM = _torch_sync_batch_norm_function()


class _AllReduceSum(torch.autograd.Function):
    """Sum over the processes of ``group``; the gradient is summed the same way."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group: Optional[dist.ProcessGroup]) -> torch.Tensor:
        ctx.group = group
        total = tensor.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
        return total

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad, None


def all_reduce_with_grad(tensor: torch.Tensor, group: Optional[dist.ProcessGroup] = None) -> torch.Tensor:
    """The sum of ``tensor`` over the processes of ``group``, differentiable (gradients are summed too)."""
    return _AllReduceSum.apply(tensor, group)


def _torch_kernels_run_on(device: torch.device) -> bool:
    if _TORCH_SYNC_BATCH_NORM is None:
        return False
    return device.type in _TORCH_SYNC_DEVICE_TYPES


class SyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d with the statistics of the whole batch of all processes of ``process_group``
    (default: all processes) in training. Same parameters, buffers and state-dict names as
    nn.BatchNorm2d. Input (N, C, H, W) of any N, including 0.
    """

    def __init__(self, *args, process_group: Optional[dist.ProcessGroup] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.process_group = process_group

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W), normalised with the statistics of the whole distributed batch."""
        group = self.process_group
        if group is None and dist.is_available() and dist.is_initialized():
            group = dist.group.WORLD
        if not self.training or group is None or dist.get_world_size(group) == 1:
            return super().forward(input)
        self._check_input_dim(input)
        factor = self._momentum_factor()
        if _torch_kernels_run_on(input.device):
            tracked = self.track_running_stats
            return _TORCH_SYNC_BATCH_NORM.apply(
                input,
                self.weight,
                self.bias,
                self.running_mean if tracked else None,
                self.running_var if tracked else None,
                self.eps,
                factor,
                group,
                dist.get_world_size(group),
            )
        return self._all_reduce_forward(input, group, factor)

    def _momentum_factor(self) -> float:
        """What the running statistics move by in this step (updates num_batches_tracked, as torch does)."""
        if not self.track_running_stats:
            return 0.0
        self.num_batches_tracked.add_(1)
        if self.momentum is None:  # cumulative average
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    def _all_reduce_forward(self, input: torch.Tensor, group: dist.ProcessGroup, factor: float) -> torch.Tensor:
        num_channels = input.shape[1]
        reduce_dims: List[int] = [0] + list(range(2, input.dim()))
        # Half-precision sums of many elements lose too much; the statistics are computed in float32.
        x = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
        count = input.numel() // num_channels if num_channels else 0
        if count > 0:
            var, mean = torch.var_mean(x, dim=reduce_dims, correction=0)
        else:
            # Still joins the all-reduce (the other processes wait for it), with a zero weight.
            mean = x.sum(dim=reduce_dims) * 0.0
            var = mean.clone()
        world_size, rank = dist.get_world_size(group), dist.get_rank(group)
        row = torch.cat([mean, var, mean.new_full((1,), float(count))])
        table = row.new_zeros((world_size, row.numel()))
        table = table.index_copy(0, torch.tensor([rank], device=row.device), row[None])
        table = all_reduce_with_grad(table, group)  # (world, 2C + 1): every process's statistics
        means, variances, counts = table.split([num_channels, num_channels, 1], dim=1)
        counts = counts.detach()
        total = float(counts.sum())
        if total == 0:
            return input.clone()  # empty everywhere: nothing to normalise, nothing to learn
        if total == 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {tuple(input.shape)} "
                f"in all {world_size} processes together."
            )
        shares = counts / total  # (world, 1)
        batch_mean = (shares * means).sum(dim=0)
        batch_var = (shares * (variances + (means - batch_mean).square())).sum(dim=0)

        if self.track_running_stats:
            with torch.no_grad():
                unbiased_var = batch_var * (total / (total - 1))
                self.running_mean.mul_(1 - factor).add_(batch_mean.to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased_var.to(self.running_var.dtype), alpha=factor)

        shape = [1, num_channels] + [1] * (input.dim() - 2)
        scale = torch.rsqrt(batch_var + self.eps)
        shift = -batch_mean * scale
        if self.affine:
            scale = scale * self.weight
            shift = shift * self.weight + self.bias
        output = x * scale.view(shape) + shift.view(shape)
        return output.to(input.dtype)
