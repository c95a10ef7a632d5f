"""Hooks with the toy trainer: checkpoint rotation, evaluation, best checkpoint, validation loss, writers."""

import json
import logging
import os
import random

import pytest
import torch
from engine_toys import ToyModel, ToyTrainer, toy_cfg, toy_dataset, toy_loader

from mrcnn.engine import SimpleTrainer, hooks


def test_periodic_checkpointer_keeps_newest_n_and_final(tmp_path):
    cfg = toy_cfg(
        tmp_path, ["SOLVER.CHECKPOINT_PERIOD", "2", "SOLVER.MAX_CHECKPOINTS_TO_KEEP", "2", "SOLVER.MAX_ITER", "10"]
    )
    trainer = ToyTrainer(cfg)
    trainer.train()
    saved = sorted(name for name in os.listdir(tmp_path) if name.endswith(".pth"))
    assert saved == ["model_0000007.pth", "model_0000009.pth", "model_final.pth"]
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    data = torch.load(tmp_path / "model_0000009.pth", weights_only=True)
    assert data["iteration"] == 9 and data["trainer"]["iteration"] == 9
    assert set(data) >= {"model", "trainer", "scheduler", "rng_states"}
    assert "optimizer" in data["trainer"]["_trainer"]
    assert len(data["rng_states"]) == 1 and set(data["rng_states"][0]) >= {"python", "numpy", "torch"}


def test_eval_hook_period_final_and_rng_untouched(tmp_path):
    def run(with_eval):
        torch.manual_seed(0)
        model = ToyModel()
        trainer = SimpleTrainer(model, toy_loader(), torch.optim.SGD(model.parameters(), lr=0.01))
        calls, states = [], []

        def evaluate():
            calls.append(trainer.iter)
            torch.rand(5), random.random()  # an evaluation that draws random numbers
            return {"bbox": {"AP": float(trainer.iter), "per_class": [1, 2]}, "segm": {"AP": 1.0}}

        if with_eval:
            trainer.register_hooks([hooks.EvalHook(5, evaluate)])
        trainer.register_hooks([hooks.CallbackHook(after_step=lambda t: states.append(torch.get_rng_state().clone()))])
        trainer.train(0, 15)
        return trainer, calls, states

    trainer, calls, states = run(True)
    assert calls == [4, 9, 14]  # every 5 iterations; the last one only once (after training)
    assert trainer.storage.history("bbox/AP").values() == [(4.0, 4), (9.0, 9), (14.0, 14)]
    assert trainer.storage.latest()["segm/AP"] == (1.0, 14)
    assert "bbox/per_class" not in trainer.storage.latest()  # not a number
    # Evaluating leaves the random generators exactly where training without it has them.
    _, _, plain_states = run(False)
    assert len(states) == len(plain_states) == 15
    assert all(torch.equal(a, b) for a, b in zip(states, plain_states))


def test_best_checkpointer_keeps_best_without_becoming_last(tmp_path):
    cfg = toy_cfg(tmp_path, ["SOLVER.MAX_ITER", "12", "SOLVER.CHECKPOINT_PERIOD", "100"])
    trainer = ToyTrainer(cfg)
    scores = {2: 10.0, 5: 30.0, 8: 20.0, 11: 25.0}
    best = hooks.BestCheckpointer(0, trainer.checkpointer, "bbox/AP", mode="max")
    put = hooks.CallbackHook(
        after_step=lambda t: t.iter in scores and t.storage.put_scalar("bbox/AP", scores[t.iter], smoothing_hint=False)
    )
    trainer.register_hooks([put, best])
    trainer.train()
    assert best.best_value == 30.0 and best.best_iter == 5
    data = torch.load(tmp_path / "model_best.pth", weights_only=True)
    assert data["iteration"] == 5 and data["best_metric"] == {"bbox/AP": 30.0}
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    assert trainer.state_dict()["hooks"]["BestCheckpointer"]["best_value"] == 30.0
    with pytest.raises(ValueError, match="'max' or 'min'"):
        hooks.BestCheckpointer(0, trainer.checkpointer, "bbox/AP", mode="largest")


def test_validation_loss_is_recorded_and_leaves_training_unchanged():
    def run(with_validation):
        torch.manual_seed(0)
        model = ToyModel()
        model.register_buffer("counter", torch.zeros(1))
        trainer = SimpleTrainer(model, toy_loader(), torch.optim.SGD(model.parameters(), lr=0.05))
        val_batches = [toy_dataset(4, seed=1)[:2], toy_dataset(4, seed=1)[2:]]
        if with_validation:
            trainer.register_hooks([hooks.ValidationLoss(3, val_batches)])
        trainer.train(0, 9)
        return trainer, model, val_batches

    trainer, model, val_batches = run(True)
    plain_trainer, plain_model, _ = run(False)
    history = trainer.storage.history("validation_loss").values()
    assert [i for _, i in history] == [2, 5, 8]
    with torch.no_grad():
        expected = sum(sum(float(v) for v in model(batch).values()) for batch in val_batches) / 2
    assert history[-1][0] == pytest.approx(expected, rel=1e-6)
    assert trainer.storage.latest()["validation/loss_fit"][1] == 8
    for a, b in zip(model.parameters(), plain_model.parameters()):
        assert torch.equal(a, b)


def test_writers_console_json_and_tensorboard(tmp_path):
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    events_logger = logging.getLogger("mrcnn.utils.events")
    handler = Collect()
    events_logger.addHandler(handler)
    events_logger.setLevel(logging.INFO)
    try:
        trainer = ToyTrainer(toy_cfg(tmp_path, ["SOLVER.MAX_ITER", "25"]))
        trainer.train()
    finally:
        events_logger.removeHandler(handler)
    lines = [json.loads(line) for line in (tmp_path / "metrics.json").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [19, 24]
    assert {"total_loss", "loss_fit", "loss_small", "lr", "time", "data_time"} <= set(lines[-1])
    console = [r for r in records if r.startswith("eta:")]
    assert len(console) == 2
    for field in ("iter: 24", "total_loss:", "loss_fit:", "lr:", "time:", "data_time:", "max_mem:"):
        assert field in console[-1]
    event_files = [name for name in os.listdir(tmp_path) if name.startswith("events.out.tfevents")]
    assert len(event_files) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(tmp_path))
    accumulator.Reload()
    assert [event.step for event in accumulator.Scalars("total_loss")] == [19, 24]
    assert accumulator.Scalars("lr")[-1].value == pytest.approx(lines[-1]["lr"])
