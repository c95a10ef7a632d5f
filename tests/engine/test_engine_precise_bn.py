"""PreciseBN: BatchNorm running statistics become those of the batches the hook runs the model on."""

import itertools
from types import SimpleNamespace

import pytest
import torch
from engine_toys import ToyModel, ToyTrainer, toy_cfg, toy_loader
from torch import nn

from mrcnn.engine.hooks import PreciseBN


class _BatchNormOnStack(nn.Module):
    """Stacks a list of (C, H, W) tensors and applies BatchNorm2d; returns nothing useful."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, batch):
        return self.norm(torch.stack(batch)).sum()


def _batches(count: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    # channels with different means and spreads, so that the statistics are recognisable
    scale, shift = torch.tensor([1.0, 3.0, 0.5]).view(3, 1, 1), torch.tensor([2.0, -1.0, 0.0]).view(3, 1, 1)
    return [[torch.randn(3, 5, 5, generator=generator) * scale + shift for _ in range(4)] for _ in range(count)]


def _population_statistics(batches):
    """Mean and (biased) variance per channel over every element of every batch."""
    elements = torch.stack([image for batch in batches for image in batch]).transpose(0, 1).reshape(3, -1)
    return elements.mean(dim=1), elements.var(dim=1, unbiased=False)


def test_running_statistics_become_those_of_the_batches_seen():
    model = _BatchNormOnStack()
    batches = _batches(7)
    hook = PreciseBN(period=0, model=model, data_loader=batches, num_iter=3)
    hook.update_stats()
    mean, var = _population_statistics(batches[:3])
    torch.testing.assert_close(model.norm.running_mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.norm.running_var, var, rtol=1e-5, atol=1e-6)
    assert model.norm.momentum == 0.1  # put back
    # the next update continues the same iterator: batches 3, 4, 5
    hook.update_stats()
    mean, var = _population_statistics(batches[3:6])
    torch.testing.assert_close(model.norm.running_mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.norm.running_var, var, rtol=1e-5, atol=1e-6)


def test_runs_at_the_evaluation_period_and_after_the_last_iteration():
    model = _BatchNormOnStack()
    calls = []
    hook = PreciseBN(period=4, model=model, data_loader=_batches(1) * 100, num_iter=2)
    hook.update_stats = lambda: calls.append(hook.trainer.iter)
    hook.trainer = SimpleNamespace(iter=0, max_iter=10)
    for iteration in range(10):
        hook.trainer.iter = iteration
        hook.after_step()
    assert calls == [3, 7, 9]  # after iterations 4, 8 and the last (10)


def test_leaves_the_random_generators_as_they_were():
    class Sampling(_BatchNormOnStack):
        def forward(self, batch):
            torch.rand(5)  # like the proposal sampling of a detector in training mode
            return super().forward(batch)

    hook = PreciseBN(period=0, model=Sampling(), data_loader=_batches(3), num_iter=3)
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    hook.update_stats()
    assert torch.equal(torch.rand(4), expected)


def test_model_without_batch_norm_is_left_alone():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.GroupNorm(2, 4))

    def never_iterated():
        raise AssertionError("a model without BatchNorm needs no batches")
        yield

    before = {k: v.clone() for k, v in model.state_dict().items()}
    hook = PreciseBN(period=1, model=model, data_loader=never_iterated(), num_iter=5)
    hook.update_stats()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # BatchNorm layers in eval mode are not updated either
    frozen = _BatchNormOnStack().eval()
    PreciseBN(period=1, model=frozen, data_loader=never_iterated(), num_iter=5).update_stats()
    assert torch.equal(frozen.norm.running_mean, torch.zeros(3))


@pytest.mark.parametrize("num_iter", [0, -3])
def test_num_iter_must_be_positive(num_iter):
    with pytest.raises(ValueError, match="TEST.PRECISE_BN.NUM_ITER"):
        PreciseBN(period=0, model=_BatchNormOnStack(), data_loader=[], num_iter=num_iter)


class _ToyBatchNormModel(ToyModel):
    """The toy detector-shaped model with BatchNorm instead of GroupNorm."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm2d(8)


class _ToyBatchNormTrainer(ToyTrainer):
    @classmethod
    def build_model(cls, cfg):
        return _ToyBatchNormModel()


def test_default_trainer_registers_it_when_enabled(tmp_path):
    extra = ["TEST.PRECISE_BN.ENABLED", "True", "TEST.PRECISE_BN.NUM_ITER", "3", "TEST.EVAL_PERIOD", "5"]
    trainer = _ToyBatchNormTrainer(toy_cfg(str(tmp_path), ["SOLVER.MAX_ITER", "10"] + extra))
    assert [type(h).__name__ for h in trainer._hooks][:3] == ["IterationTimer", "LRScheduler", "PreciseBN"]
    trainer.train()

    # After the last iteration the hook ran on batches 3-5 of its own loader (0-2 went to the run
    # after iteration 5): the statistics of those batches under the final weights.
    model = trainer.model
    running_mean, running_var = model.norm.running_mean.clone(), model.norm.running_var.clone()
    batches = list(itertools.islice(iter(toy_loader(batch_size=4, seed=0)), 6))[3:]
    inputs = []
    handle = model.norm.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach()))
    with torch.no_grad():
        for batch in batches:
            model(batch)
    handle.remove()
    elements = torch.cat(inputs).transpose(0, 1).reshape(8, -1)
    torch.testing.assert_close(running_mean, elements.mean(dim=1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(running_var, elements.var(dim=1, unbiased=False), rtol=1e-5, atol=1e-6)

    # disabled (the default), or a model without BatchNorm: no hook
    assert "PreciseBN" not in [type(h).__name__ for h in ToyTrainer(toy_cfg(str(tmp_path), extra))._hooks]
    plain = _ToyBatchNormTrainer(toy_cfg(str(tmp_path)))
    assert "PreciseBN" not in [type(h).__name__ for h in plain._hooks]
