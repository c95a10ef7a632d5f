"""summarize gives the median, quartiles and extremes of durations; time_alternating lets the runs
take turns, times only the turns after the warm-up and returns each run's last result."""

import time

import torch

from mrcnn.benchmark import summarize, time_alternating


def test_summarize_statistics():
    stats = summarize([4.0, 1.0, 3.0, 2.0])
    assert stats["median"] == 2.5 and stats["min"] == 1.0 and stats["max"] == 4.0 and stats["count"] == 4
    assert stats["p25"] <= stats["median"] <= stats["p75"]
    assert summarize([0.5]) == {"median": 0.5, "p25": 0.5, "p75": 0.5, "min": 0.5, "max": 0.5, "count": 1}


def test_time_alternating_takes_turns():
    order = []
    seconds, last = time_alternating(
        {"a": lambda: order.append("a") or len(order), "b": lambda: order.append("b") or -len(order)},
        iters=3,
        warmup=1,
        device=torch.device("cpu"),
    )
    assert order == ["a", "b"] * 4
    assert [len(v) for v in seconds.values()] == [3, 3]
    assert last == {"a": 7, "b": -8}


def test_time_alternating_measures_each_call():
    # sleeps last at least as long as asked (only the lower bound is certain on a busy machine)
    seconds, _ = time_alternating(
        {"short": lambda: time.sleep(0.01), "long": lambda: time.sleep(0.05)},
        iters=2,
        warmup=0,
        device=torch.device("cpu"),
    )
    assert len(seconds["short"]) == len(seconds["long"]) == 2
    assert all(s >= 0.01 for s in seconds["short"]) and all(s >= 0.05 for s in seconds["long"])
