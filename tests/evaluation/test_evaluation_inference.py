"""inference_on_dataset, DatasetEvaluators, and printing/flattening/serialising results."""

import json
import logging
import math
import re
import time

import numpy as np
import pytest
import torch
from torch import nn

from mrcnn.evaluation import (
    DatasetEvaluator,
    DatasetEvaluators,
    flatten_results_dict,
    inference_on_dataset,
    inference_speed,
    json_safe,
    print_csv_format,
)


class RecordingModel(nn.Module):
    """Returns one output per input and remembers the mode it ran in; the first call is slow."""

    def __init__(self, first_call_seconds=0.0, later_call_seconds=0.0):
        super().__init__()
        self.linear = nn.Linear(1, 1)
        self.calls = []
        self.first_call_seconds = first_call_seconds
        self.later_call_seconds = later_call_seconds

    def forward(self, inputs):
        self.calls.append((self.training, torch.is_inference_mode_enabled(), len(inputs)))
        time.sleep(self.first_call_seconds if len(self.calls) == 1 else self.later_call_seconds)
        return [{"value": self.linear(torch.ones(1)) * x["x"]} for x in inputs]


class SumEvaluator(DatasetEvaluator):
    def __init__(self, task="sum"):
        self.task = task
        self.resets = 0

    def reset(self):
        self.resets += 1
        self.total, self.count = 0.0, 0

    def process(self, inputs, outputs):
        for model_input, output in zip(inputs, outputs):
            assert not output["value"].requires_grad  # outputs come from inference mode
            self.total += float(model_input["x"])
            self.count += 1

    def evaluate(self):
        return {self.task: {"total": self.total, "count": self.count}}


def _loader(num_batches, batch_size=2):
    return [[{"x": b * batch_size + i} for i in range(batch_size)] for b in range(num_batches)]


def test_runs_in_eval_and_inference_mode_and_restores_training():
    model = RecordingModel()
    model.train()
    evaluator = SumEvaluator()
    results = inference_on_dataset(model, _loader(4), evaluator)
    assert results == {"sum": {"total": float(sum(range(8))), "count": 8}}
    assert evaluator.resets == 1
    assert model.calls == [(False, True, 2)] * 4
    assert model.training  # restored

    model.eval()
    inference_on_dataset(model, _loader(1), evaluator)
    assert not model.training  # an eval-mode model stays in eval mode


def test_training_mode_is_restored_when_the_model_raises():
    class Failing(RecordingModel):
        def forward(self, inputs):
            raise RuntimeError("broken model")

    model = Failing().train()
    with pytest.raises(RuntimeError, match="broken model"):
        inference_on_dataset(model, _loader(2), SumEvaluator())
    assert model.training


def test_without_evaluator_only_times_and_returns_empty_dict():
    model = RecordingModel()
    assert inference_on_dataset(model, _loader(3), None) == {}
    assert len(model.calls) == 3


def test_several_evaluators_are_merged_and_must_not_clash():
    results = inference_on_dataset(RecordingModel(), _loader(2), [SumEvaluator("a"), SumEvaluator("b")])
    assert results == {"a": {"total": 6.0, "count": 4}, "b": {"total": 6.0, "count": 4}}
    with pytest.raises(KeyError, match="both report task 'a'"):
        inference_on_dataset(RecordingModel(), _loader(1), DatasetEvaluators([SumEvaluator("a"), SumEvaluator("a")]))


def test_progress_eta_and_speed_exclude_warmup(caplog):
    # the first call takes 0.3 s (warm-up); the remaining 5 take 0.02 s each for 2 images
    model = RecordingModel(first_call_seconds=0.3, later_call_seconds=0.02)
    with caplog.at_level(logging.INFO, logger="mrcnn.evaluation"):
        inference_on_dataset(model, _loader(6), SumEvaluator(), num_warmup=1, log_period_s=0.0)
    assert re.search(r"Inference done \d/6\. .*ETA=0:00:0\d", caplog.text)
    match = re.search(r"excluding 1 warm-up iterations\): ([0-9.]+) s/img for the model", caplog.text)
    assert match, caplog.text
    seconds_per_image = float(match.group(1))
    # 0.01 s/img without the warm-up call; including it would give >= 0.035
    assert 0.009 <= seconds_per_image < 0.03


def test_inference_speed_counts_every_image_and_times_after_warmup():
    # one slow warm-up call of 0.3 s, then 3 calls of 0.02 s for 2 images each
    model = RecordingModel(first_call_seconds=0.3, later_call_seconds=0.02).train()
    speed = inference_speed(model, _loader(4), num_warmup=1)["inference"]
    assert speed["num_images"] == 8
    assert 0.009 <= speed["seconds_per_image"] < 0.03  # 0.01 s/img; with the warm-up >= 0.04
    assert speed["total_seconds"] >= 0.36
    assert model.calls == [(False, True, 2)] * 4 and model.training

    # a loader with a length keeps one batch timed; without one, all of them may be warm-up
    assert math.isfinite(inference_speed(RecordingModel(), _loader(1))["inference"]["seconds_per_image"])
    untimed = inference_speed(RecordingModel(), iter(_loader(2)), num_warmup=2)["inference"]
    assert untimed["num_images"] == 4 and math.isnan(untimed["seconds_per_image"])


def test_iterable_loader_without_length():
    def batches():
        yield from _loader(3)

    results = inference_on_dataset(RecordingModel(), batches(), SumEvaluator(), log_period_s=0.0)
    assert results["sum"]["count"] == 6


def test_flatten_and_json_safe_and_csv(caplog):
    results = {"bbox": {"AP": 50.0, "AP-cat": float("nan")}, "segm": {"AP": np.float64(25.5)}}
    flat = flatten_results_dict(results)
    assert list(flat) == ["bbox/AP", "bbox/AP-cat", "segm/AP"]
    assert flat["bbox/AP"] == 50.0 and math.isnan(flat["bbox/AP-cat"])

    safe = json_safe(results)
    assert safe == {"bbox": {"AP": 50.0, "AP-cat": None}, "segm": {"AP": 25.5}}
    assert type(safe["segm"]["AP"]) is float
    json.loads(json.dumps(safe, allow_nan=False))  # strict json holds it
    assert json_safe({("bbox", 1): (torch.tensor(2.5), float("-inf")), 7: np.int64(3)}) == {
        "('bbox', 1)": [2.5, None],
        7: 3,
    }  # json cannot write a tuple key; an int one it can

    # the training hooks' name for it is the same function
    from mrcnn.engine import hooks

    assert hooks.flatten_results_dict is flatten_results_dict

    with caplog.at_level(logging.INFO, logger="mrcnn.evaluation"):
        print_csv_format(results)
    assert "copypaste: Task: bbox" in caplog.text
    assert re.search(r"copypaste: AP$", caplog.text, re.MULTILINE)
    assert "copypaste: 50.0000" in caplog.text and "AP-cat" not in caplog.text
    with pytest.raises(TypeError, match="dict of results"):
        print_csv_format([1, 2])
