"""Samplers: exact sharding for inference, reproducible endless shuffles for training."""

import itertools
from collections import Counter

import pytest
import torch

from mrcnn.data.samplers import InferenceSampler, RepeatFactorTrainingSampler, TrainingSampler


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("size", [0, 1, 2, 7, 10, 101])
def test_inference_sampler_covers_each_index_once(size, world_size):
    shards = [list(InferenceSampler(size, rank=r, world_size=world_size)) for r in range(world_size)]
    assert list(itertools.chain(*shards)) == list(range(size))  # every index once, order kept
    lengths = [len(s) for s in shards]
    assert max(lengths) - min(lengths) <= 1
    assert [len(InferenceSampler(size, rank=r, world_size=world_size)) for r in range(world_size)] == lengths


def test_inference_sampler_rejects_bad_rank():
    with pytest.raises(ValueError, match="rank 3 is outside world size 3"):
        InferenceSampler(5, rank=3, world_size=3)


def _take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_training_sampler_is_reproducible_and_endless():
    first = _take(TrainingSampler(10, seed=42), 35)
    assert first == _take(TrainingSampler(10, seed=42), 35)
    assert first != _take(TrainingSampler(10, seed=43), 35)
    for epoch in range(3):  # each epoch is a permutation
        assert sorted(first[epoch * 10 : epoch * 10 + 10]) == list(range(10))
    assert first[:10] != first[10:20]  # reshuffled every epoch
    assert _take(TrainingSampler(4, shuffle=False, seed=0), 9) == [0, 1, 2, 3, 0, 1, 2, 3, 0]


@pytest.mark.parametrize("world_size", [2, 3])
def test_training_sampler_shards_across_ranks(world_size):
    size, epochs = 12, 2
    per_rank = [
        _take(TrainingSampler(size, seed=7, rank=r, world_size=world_size), size * epochs // world_size)
        for r in range(world_size)
    ]
    assert Counter(itertools.chain(*per_rank)) == dict.fromkeys(range(size), epochs)
    stream = _take(TrainingSampler(size, seed=7, rank=0, world_size=1), size * epochs)
    assert per_rank[1] == stream[1::world_size][: len(per_rank[1])]


def test_repeat_factors_from_category_frequency():
    # category 0 in every image, category 1 in one image of ten
    dicts = [{"annotations": [{"category_id": 0}]} for _ in range(9)]
    dicts.append({"annotations": [{"category_id": 0}, {"category_id": 1}]})
    factors = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency(dicts, repeat_thresh=0.4)
    assert factors[:9].tolist() == [1.0] * 9
    assert factors[9].item() == pytest.approx(2.0)  # sqrt(0.4 / 0.1)
    sampler = RepeatFactorTrainingSampler(torch.tensor([1.0, 2.5, 0.5] * 200), seed=3)
    counts = Counter(index % 3 for index in _take(sampler, 8000))
    total = sum(counts.values())
    assert counts[1] / total == pytest.approx(2.5 / 4.0, abs=0.02)
    assert counts[2] / total == pytest.approx(0.5 / 4.0, abs=0.02)
    assert _take(RepeatFactorTrainingSampler(factors, seed=1), 50) == _take(
        RepeatFactorTrainingSampler(factors, seed=1), 50
    )
