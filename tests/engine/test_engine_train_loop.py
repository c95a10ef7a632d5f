"""The loop with toy models: hook order, non-finite losses, AMP on the CPU, clipping, early stop."""

import pytest
import torch
from engine_toys import ToyModel, ToyTrainer, tiny_shapes_cfg, toy_cfg, toy_loader

from mrcnn.checkpoint import DetectionCheckpointer
from mrcnn.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, hooks


def _recorder(events, name):
    return hooks.CallbackHook(
        before_train=lambda t: events.append((name, "before_train")),
        before_step=lambda t: events.append((name, "before_step", t.iter)),
        after_step=lambda t: events.append((name, "after_step", t.iter)),
        after_train=lambda t: events.append((name, "after_train")),
    )


def test_hooks_run_in_order_around_each_step():
    model = ToyModel()
    trainer = SimpleTrainer(model, toy_loader(), torch.optim.SGD(model.parameters(), lr=0.01))
    events = []
    trainer.register_hooks([_recorder(events, "a"), None, _recorder(events, "b")])
    trainer.train(3, 5)
    assert events == [
        ("a", "before_train"),
        ("b", "before_train"),
        ("a", "before_step", 3),
        ("b", "before_step", 3),
        ("a", "after_step", 3),
        ("b", "after_step", 3),
        ("a", "before_step", 4),
        ("b", "before_step", 4),
        ("a", "after_step", 4),
        ("b", "after_step", 4),
        ("a", "after_train"),
        ("b", "after_train"),
    ]
    assert trainer.finished and trainer.steps_run == 2
    # Loss terms and data time land in the storage at their iteration.
    assert [i for _, i in trainer.storage.history("loss_fit").values()] == [3, 4]
    total = trainer.storage.history("total_loss").latest()
    parts = trainer.storage.history("loss_fit").latest() + trainer.storage.history("loss_small").latest()
    assert total == pytest.approx(parts)


def test_default_trainer_hook_order(tmp_path):
    cfg = toy_cfg(tmp_path, ["SOLVER.EARLY_STOP.ENABLED", "True", "TEST.EVAL_PERIOD", "5"])
    trainer = ToyTrainer(cfg)
    assert [type(h).__name__ for h in trainer.hooks] == [
        "IterationTimer",
        "LRScheduler",
        "PeriodicCheckpointer",
        "EarlyStopping",
        "PeriodicWriter",
    ]


def test_non_finite_loss_stops_with_named_terms_and_keeps_last_checkpoint(tmp_path):
    cfg = toy_cfg(tmp_path)

    class NanTrainer(ToyTrainer):
        @classmethod
        def build_model(cls, cfg):
            return ToyModel(nan_at_call=8)  # the forward of iteration 7

    trainer = NanTrainer(cfg)
    trainer.resume_or_load(resume=False)
    before_step = {}

    def remember(t):
        before_step.update({k: v.detach().clone() for k, v in t.model.state_dict().items()})

    trainer.register_hooks([hooks.CallbackHook(before_step=remember)])
    with pytest.raises(FloatingPointError) as error:
        trainer.train()
    message = str(error.value)
    assert "iteration 7" in message
    assert "loss_fit=nan" in message and "loss_small=" in message and "total_loss=nan" in message
    # The optimizer did not step on the bad loss and no checkpoint was written after it.
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, before_step[key]), key
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000004.pth"
    assert not (tmp_path / "model_final.pth").exists()
    assert not trainer.finished
    restored = ToyModel()
    extra = DetectionCheckpointer(restored, str(tmp_path)).resume_or_load("", resume=True)
    assert extra["iteration"] == 4
    assert all(torch.isfinite(p).all() for p in restored.parameters())
    # toy_cfg leaves gradient clipping off: the advice may suggest it.
    assert "turn on gradient clipping (SOLVER.CLIP_GRADIENTS.ENABLED True)" in message
    assert "already on" not in message


def test_non_finite_loss_with_clipping_on_does_not_suggest_clipping(tmp_path):
    cfg = toy_cfg(tmp_path, ["SOLVER.CLIP_GRADIENTS.ENABLED", "True"])

    class NanTrainer(ToyTrainer):
        @classmethod
        def build_model(cls, cfg):
            return ToyModel(nan_at_call=3)

    trainer = NanTrainer(cfg)
    with pytest.raises(FloatingPointError) as error:
        trainer.train()
    message = str(error.value)
    assert "iteration 2" in message and "loss_fit=nan" in message
    assert "Gradient clipping is already on (SOLVER.CLIP_GRADIENTS)" in message
    assert "turn on gradient clipping" not in message


def test_diverged_rpn_reports_the_iteration_and_advice_for_this_config(tiny_shapes, tmp_path):
    # The shapes config clips gradients; non-finite weights make the RPN's boxes non-finite.
    cfg = tiny_shapes_cfg(tmp_path, ["SOLVER.MAX_ITER", "3"])
    assert cfg.SOLVER.CLIP_GRADIENTS.ENABLED
    trainer = DefaultTrainer(cfg)

    def poison_rpn(t):
        if t.iter == 1:
            model = getattr(t.model, "module", t.model)
            with torch.no_grad():
                for parameter in model.proposal_generator.parameters():
                    parameter.fill_(float("nan"))

    trainer.register_hooks([hooks.CallbackHook(before_step=poison_rpn)])
    with pytest.raises(FloatingPointError) as error:
        trainer.train()
    message = str(error.value)
    assert message.startswith("Training diverged at iteration 1: RPN predicted non-finite")
    assert "Gradient clipping is already on" in message and "turn on gradient clipping" not in message


def test_amp_trainer_on_cpu_uses_bfloat16_autocast():
    model = ToyModel()
    dtypes = []
    model.conv.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    trainer = AMPTrainer(model, toy_loader(), torch.optim.SGD(model.parameters(), lr=0.01), precision=torch.float16)
    assert trainer.precision == torch.bfloat16 and trainer.grad_scaler is None  # CPU autocast: bf16 only
    trainer.train(0, 3)
    assert dtypes == [torch.bfloat16] * 3
    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_gradient_clipper_is_applied_before_the_step():
    model = ToyModel()
    start = [p.detach().clone() for p in model.parameters()]
    max_norm = 1e-3
    trainer = SimpleTrainer(
        model,
        toy_loader(),
        torch.optim.SGD(model.parameters(), lr=1.0),
        grad_clipper=lambda params: torch.nn.utils.clip_grad_norm_(list(params), max_norm),
    )
    trainer.train(0, 1)
    change = torch.sqrt(sum(((p.detach() - s) ** 2).sum() for p, s in zip(model.parameters(), start)))
    assert 0 < float(change) <= max_norm * 1.0001  # plain SGD, lr 1: the step is the clipped gradient


def test_early_stopping_stops_after_patience_measurements(tmp_path):
    model = ToyModel()
    trainer = SimpleTrainer(model, toy_loader(), torch.optim.SGD(model.parameters(), lr=0.01))
    scores = {1: 0.5, 3: 0.7, 5: 0.6, 7: 0.65, 9: 0.69, 11: 0.9}

    def put_metric(t):
        if t.iter in scores:
            t.storage.put_scalar("bbox/AP", scores[t.iter], smoothing_hint=False)

    stopper = hooks.EarlyStopping("bbox/AP", mode="max", patience=3, check_period=2)
    trainer.register_hooks([hooks.CallbackHook(after_step=put_metric), stopper])
    trainer.train(0, 20)
    assert trainer.iter == 9  # 0.7 at 3, then 0.6, 0.65, 0.69: three without improvement
    assert trainer.finished
    assert stopper.best_value == pytest.approx(0.7) and stopper.num_bad == 3
    assert stopper.state_dict()["num_bad"] == 3


def test_model_in_eval_mode_is_an_error():
    model = ToyModel()
    trainer = SimpleTrainer(model, toy_loader(), torch.optim.SGD(model.parameters(), lr=0.01))
    model.eval()
    with pytest.raises(RuntimeError, match="eval mode"):
        trainer.train(0, 1)
