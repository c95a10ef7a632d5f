"""Optimizer param groups, lr schedules with warm-up, and gradient clipping."""

import math

import pytest
import torch
from torch import nn

from mrcnn.config import get_cfg
from mrcnn.solver import (
    build_gradient_clipper,
    build_lr_scheduler,
    build_optimizer,
    get_default_optimizer_params,
)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)  # weight + bias
        self.norm = nn.GroupNorm(2, 4)  # norm weight + bias
        self.fc = nn.Linear(4, 2, bias=False)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def _group_of(optimizer, param):
    for group in optimizer.param_groups:
        if any(p is param for p in group["params"]):
            return group
    raise AssertionError("parameter not in any group")


def _cfg(**solver):
    cfg = get_cfg()
    for key, value in solver.items():
        cfg.SOLVER[key] = value
    return cfg


def test_param_groups_separate_norm_and_bias_settings():
    net = _Net()
    params = get_default_optimizer_params(
        net, base_lr=0.1, weight_decay=1e-4, weight_decay_norm=0.0, bias_lr_factor=2.0, weight_decay_bias=1e-5
    )
    optimizer = torch.optim.SGD(params, lr=0.1)
    assert _group_of(optimizer, net.conv.weight)["lr"] == 0.1
    assert _group_of(optimizer, net.conv.weight)["weight_decay"] == 1e-4
    assert _group_of(optimizer, net.conv.bias)["lr"] == pytest.approx(0.2)
    assert _group_of(optimizer, net.conv.bias)["weight_decay"] == 1e-5
    # Norm parameters (weight and bias) get the norm decay and the base lr.
    for p in (net.norm.weight, net.norm.bias):
        assert _group_of(optimizer, p)["weight_decay"] == 0.0
        assert _group_of(optimizer, p)["lr"] == 0.1
    listed = [p for group in params for p in group["params"]]
    assert len(listed) == 5  # frozen parameters are left out, none listed twice
    assert not any(p is net.frozen.weight for p in listed)


def test_build_optimizer_sgd_and_adamw_from_config():
    net = _Net()
    sgd = build_optimizer(_cfg(BASE_LR=0.05, MOMENTUM=0.8, NESTEROV=True, BIAS_LR_FACTOR=3.0), net)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.defaults["momentum"] == 0.8 and sgd.defaults["nesterov"] is True
    assert _group_of(sgd, net.fc.weight)["lr"] == 0.05
    assert _group_of(sgd, net.conv.bias)["lr"] == pytest.approx(0.15)
    # WEIGHT_DECAY_BIAS < 0 means "same as WEIGHT_DECAY".
    assert _group_of(sgd, net.conv.bias)["weight_decay"] == get_cfg().SOLVER.WEIGHT_DECAY
    adamw = build_optimizer(_cfg(OPTIMIZER="AdamW", BETAS=[0.8, 0.99], EPS=1e-6), net)
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.defaults["betas"] == (0.8, 0.99) and adamw.defaults["eps"] == 1e-6
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER"):
        build_optimizer(_cfg(OPTIMIZER="Lion"), net)


def _lrs(cfg, num_iter):
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=cfg.SOLVER.BASE_LR)
    scheduler = build_lr_scheduler(cfg, optimizer)
    values = []
    for _ in range(num_iter):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def test_warmup_multistep_schedule_values():
    cfg = _cfg(BASE_LR=0.1, MAX_ITER=100, WARMUP_ITERS=10, WARMUP_FACTOR=0.001, STEPS=[30, 60], GAMMA=0.1)
    lrs = _lrs(cfg, 100)
    for i in range(10):  # linear from 0.001 * base to base over the warm-up
        alpha = i / 10
        assert lrs[i] == pytest.approx(0.1 * (0.001 * (1 - alpha) + alpha), rel=1e-6)
    assert lrs[10] == pytest.approx(0.1)
    assert lrs[29] == pytest.approx(0.1)
    assert lrs[30] == pytest.approx(0.01)
    assert lrs[59] == pytest.approx(0.01)
    assert lrs[60] == pytest.approx(0.001)
    assert lrs[99] == pytest.approx(0.001)


def test_warmup_cosine_and_constant_warmup():
    cfg = _cfg(
        BASE_LR=0.2,
        BASE_LR_END=0.02,
        MAX_ITER=50,
        WARMUP_ITERS=5,
        WARMUP_METHOD="constant",
        WARMUP_FACTOR=0.1,
        LR_SCHEDULER_NAME="WarmupCosineLR",
    )
    lrs = _lrs(cfg, 50)
    assert lrs[:5] == pytest.approx([0.02] * 5)
    for i in (5, 20, 49):
        expected = 0.02 + 0.5 * (0.2 - 0.02) * (1 + math.cos(math.pi * i / 50))
        assert lrs[i] == pytest.approx(expected, rel=1e-6)


def test_schedule_without_warmup_and_bad_names():
    lrs = _lrs(_cfg(BASE_LR=1.0, MAX_ITER=10, WARMUP_ITERS=0, STEPS=[5]), 10)
    assert lrs == pytest.approx([1.0] * 5 + [0.1] * 5)
    with pytest.raises(ValueError, match="LR_SCHEDULER_NAME"):
        _lrs(_cfg(LR_SCHEDULER_NAME="Poly"), 1)
    with pytest.raises(ValueError, match="WARMUP_METHOD"):
        _lrs(_cfg(WARMUP_METHOD="exp", MAX_ITER=10, WARMUP_ITERS=2), 1)


def test_scheduler_state_round_trip_continues_the_schedule():
    cfg = _cfg(BASE_LR=0.1, MAX_ITER=20, WARMUP_ITERS=4, STEPS=[10])
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    scheduler = build_lr_scheduler(cfg, optimizer)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    assert set(state) == {"base_lrs", "last_epoch", "_step_count"}
    fresh_optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    fresh = build_lr_scheduler(cfg, fresh_optimizer)
    fresh.load_state_dict(state)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
        fresh_optimizer.step()
        fresh.step()
        assert fresh_optimizer.param_groups[0]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)


def test_gradient_clipping_by_value_and_by_norm():
    assert build_gradient_clipper(get_cfg()) is None
    cfg = get_cfg()
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "value"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.5
    a, b = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(2))
    a.grad = torch.tensor([3.0, -0.2, -4.0])
    b.grad = torch.tensor([0.1, 9.0])
    build_gradient_clipper(cfg)([a, b])
    assert a.grad.tolist() == pytest.approx([0.5, -0.2, -0.5])
    assert b.grad.tolist() == pytest.approx([0.1, 0.5])

    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "norm"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 1.0
    a.grad = torch.tensor([3.0, 0.0, 0.0])
    b.grad = torch.tensor([0.0, 4.0])  # total L2 norm 5 -> scaled by 1/5
    build_gradient_clipper(cfg)([a, b])
    assert a.grad.tolist() == pytest.approx([0.6, 0.0, 0.0], rel=1e-5)
    assert b.grad.tolist() == pytest.approx([0.0, 0.8], rel=1e-5)

    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "elementwise"
    with pytest.raises(ValueError, match="CLIP_TYPE"):
        build_gradient_clipper(cfg)
