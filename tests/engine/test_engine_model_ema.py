"""The moving average of the weights (MODEL_EMA): its rule, swapping it in for evaluation,
checkpoints that hold it, exact resume, and loading it as MODEL.WEIGHTS."""

import pytest
import torch
from engine_toys import ToyModel, ToyTrainer, toy_cfg
from torch import nn

from mrcnn.checkpoint import EMA_CHECKPOINT_KEY, DetectionCheckpointer
from mrcnn.engine import ModelEMA, hooks
from mrcnn.utils.env import seed_all_rng


def _bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 2))


def _state(model: nn.Module):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def test_average_follows_the_rule_with_its_warm_up():
    model = _bn_model().train()
    ema = ModelEMA(model, decay=0.9)
    ema.reset()
    expected = _state(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(30):
        loss = model(torch.randn(8, 4)).square().mean()  # also moves the BatchNorm statistics
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema.update()
        decay = min(0.9, (1 + step) / (10 + step))
        current = _state(model)
        for name, value in current.items():
            if value.is_floating_point():
                expected[name] = decay * expected[name] + (1 - decay) * value
            else:
                expected[name] = value
    assert ema.num_updates == 30
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(1000) == 0.9
    for name, value in expected.items():
        torch.testing.assert_close(ema.weights[name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert ema.weights["1.num_batches_tracked"].item() == 30  # integer buffers are copied
    # the average lags the weights: it is neither the start nor the end of training
    assert not torch.allclose(ema.weights["0.weight"], model[0].weight)


def test_applied_swaps_the_average_in_and_the_trained_weights_back():
    model = _bn_model()
    ema = ModelEMA(model, decay=0.5)
    ema.reset()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    ema.update()
    trained = _state(model)
    parameters = list(model.parameters())
    with ema.applied():
        for name, value in model.state_dict().items():
            assert torch.equal(value, ema.weights[name]), name
        assert not torch.equal(model[0].weight, trained["0.weight"])
    for name, value in model.state_dict().items():
        assert torch.equal(value, trained[name]), name
    assert all(a is b for a, b in zip(parameters, model.parameters()))  # written in place


def test_take_buffers_keeps_statistics_recomputed_under_the_average():
    model = _bn_model().train()
    ema = ModelEMA(model, decay=0.5)
    ema.reset()
    with ema.applied():
        model(torch.randn(16, 4) * 3 + 2)
        recomputed = model[1].running_mean.clone()
        ema.take_buffers()
    assert torch.equal(ema.weights["1.running_mean"], recomputed)
    assert not torch.equal(model[1].running_mean, recomputed)  # the trained model keeps its own


def test_decay_out_of_range_is_refused():
    with pytest.raises(ValueError, match="MODEL_EMA.DECAY"):
        ModelEMA(_bn_model(), decay=1.0)


class _RecordingTrainer(ToyTrainer):
    """The toy trainer with one test set whose "evaluation" records the weights it was given."""

    evaluated = []

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        cls.evaluated.append(_state(model))
        return {"bbox": {"AP": float(len(cls.evaluated))}}


def _ema_cfg(output_dir, extra=()):
    return toy_cfg(
        output_dir,
        ["MODEL_EMA.ENABLED", "True", "MODEL_EMA.DECAY", "0.8", "DATASETS.TEST", "('toy',)", "TEST.EVAL_PERIOD", "10"]
        + list(extra),
    )


def test_trainer_keeps_the_average_evaluates_it_and_checkpoints_both(tmp_path):
    seed_all_rng(0)
    _RecordingTrainer.evaluated = []
    trainer = _RecordingTrainer(_ema_cfg(tmp_path))
    steps = []
    trainer.register_hooks(
        [
            hooks.CallbackHook(
                before_train=lambda t: steps.append(_state(t.model)),
                after_step=lambda t: steps.append(_state(t.model)),
            )
        ]
    )
    trainer.resume_or_load(resume=False)
    trainer.train()

    # the average, recomputed from the weights after every step
    expected = dict(steps[0])
    for step, weights in enumerate(steps[1:]):
        decay = min(0.8, (1 + step) / (10 + step))
        expected = {name: decay * expected[name] + (1 - decay) * value for name, value in weights.items()}
    saved = torch.load(tmp_path / "model_final.pth", weights_only=True)
    average = saved[EMA_CHECKPOINT_KEY]["weights"]
    assert saved[EMA_CHECKPOINT_KEY]["num_updates"] == 20
    for name, value in expected.items():
        torch.testing.assert_close(average[name], value, rtol=1e-5, atol=1e-6, msg=name)
        assert torch.equal(saved["model"][name], steps[-1][name]), name  # "model": the trained weights

    # evaluations (at iteration 10 and at the end) saw the average; training goes on with its own weights
    assert len(_RecordingTrainer.evaluated) == 2
    for name, value in average.items():
        assert torch.equal(_RecordingTrainer.evaluated[-1][name], value), name
        assert torch.equal(trainer.model.state_dict()[name], steps[-1][name]), name
    assert not torch.equal(average["head.weight"], steps[-1]["head.weight"])

    # MODEL.WEIGHTS takes the average; resuming takes the trained weights and the average
    model = ToyModel()
    DetectionCheckpointer(model).resume_or_load(str(tmp_path / "model_final.pth"), resume=False)
    for name, value in model.state_dict().items():
        assert torch.equal(value, average[name]), name
    model = ToyModel()  # --eval-only --resume: the model's checkpointer alone, from last_checkpoint
    DetectionCheckpointer(model, save_dir=str(tmp_path)).resume_or_load("", resume=True)
    for name, value in model.state_dict().items():
        assert torch.equal(value, average[name]), name
    resumed = _RecordingTrainer(_ema_cfg(tmp_path))
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 20
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, steps[-1][name]), name
        assert torch.equal(resumed.model_ema.weights[name], average[name]), name
    without_average = _RecordingTrainer(_ema_cfg(tmp_path, ["MODEL_EMA.ENABLED", "False"]))
    without_average.resume_or_load(resume=True)  # training resumes from the trained weights
    for name, value in without_average.model.state_dict().items():
        assert torch.equal(value, steps[-1][name]), name


class _Crash(Exception):
    pass


def test_resume_continues_the_average_bit_for_bit(tmp_path):
    seed_all_rng(0)
    straight = ToyTrainer(_ema_cfg(tmp_path / "straight", ["DATASETS.TEST", "()"]))
    straight.resume_or_load(resume=False)
    straight.train()

    seed_all_rng(0)
    first = ToyTrainer(_ema_cfg(tmp_path / "resumed", ["DATASETS.TEST", "()"]))
    first.resume_or_load(resume=False)

    def crash(trainer):
        if trainer.iter == 10:
            raise _Crash("simulated crash before iteration 10")

    first.register_hooks([hooks.CallbackHook(before_step=crash)])
    with pytest.raises(_Crash):
        first.train()
    seed_all_rng(1234)
    resumed = ToyTrainer(_ema_cfg(tmp_path / "resumed", ["DATASETS.TEST", "()"]))
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 10 and resumed.model_ema.num_updates == 10
    resumed.train()
    for name, value in straight.model_ema.weights.items():
        assert torch.equal(value, resumed.model_ema.weights[name]), name
    assert resumed.model_ema.num_updates == straight.model_ema.num_updates == 20
