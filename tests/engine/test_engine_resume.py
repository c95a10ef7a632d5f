"""Exact resume: N iterations straight equal N/2 + crash + --resume + N/2, weights and lrs alike."""

import pytest
import torch
from engine_toys import ToyTrainer, tiny_shapes_cfg, toy_cfg

from mrcnn.engine import DefaultTrainer, hooks
from mrcnn.utils.env import seed_all_rng


class _Crash(Exception):
    pass


def _crash_before(iteration):
    def before_step(trainer):
        if trainer.iter == iteration:
            raise _Crash(f"simulated crash before iteration {iteration}")

    return hooks.CallbackHook(before_step=before_step)


def _lrs(trainer):
    return {it: value for value, it in trainer.storage.history("lr").values()}


def _run_straight_and_resumed(trainer_cls, cfg_straight, cfg_resumed, crash_at):
    seed_all_rng(cfg_straight.SEED)
    straight = trainer_cls(cfg_straight)
    straight.resume_or_load(resume=False)
    straight.train()

    seed_all_rng(cfg_resumed.SEED)
    first = trainer_cls(cfg_resumed)
    first.resume_or_load(resume=False)
    first.register_hooks([_crash_before(crash_at)])
    with pytest.raises(_Crash):
        first.train()
    first_lrs = _lrs(first)

    seed_all_rng(1234)  # a new process would start from other generator states
    resumed = trainer_cls(cfg_resumed)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == crash_at
    resumed.train()
    return straight, first_lrs, resumed


def test_exact_resume_toy(tmp_path):
    straight, first_lrs, resumed = _run_straight_and_resumed(
        ToyTrainer, toy_cfg(tmp_path / "straight"), toy_cfg(tmp_path / "resumed"), crash_at=10
    )
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert {**first_lrs, **_lrs(resumed)} == _lrs(straight)
    assert sorted(_lrs(straight)) == list(range(20))


def test_exact_resume_tiny_mask_rcnn_on_shapes(tiny_shapes, tmp_path):
    extra = ["SOLVER.CHECKPOINT_PERIOD", "10", "SOLVER.STEPS", "(12,)", "SOLVER.MAX_ITER", "20"]
    straight, first_lrs, resumed = _run_straight_and_resumed(
        DefaultTrainer,
        tiny_shapes_cfg(tmp_path / "straight", extra),
        tiny_shapes_cfg(tmp_path / "resumed", extra),
        crash_at=10,
    )
    straight_state, resumed_state = straight.model.state_dict(), resumed.model.state_dict()
    differing = [k for k, v in straight_state.items() if not torch.equal(v, resumed_state[k])]
    assert differing == []
    lrs = _lrs(straight)
    assert {**first_lrs, **_lrs(resumed)} == lrs
    assert lrs[0] < lrs[5] and lrs[12] == pytest.approx(lrs[11] * 0.1)  # warm-up and a decay step covered
    losses = [v for v, _ in straight.storage.history("total_loss").values()]
    assert all(torch.isfinite(torch.tensor(losses)))
