"""Index samplers that shard a dataset across ranks: infinite for training, exact for inference."""

import itertools
import logging
import math
from collections import defaultdict
from typing import Dict, Iterator, List, Optional

import torch
from torch.utils.data.sampler import Sampler

from mrcnn.utils import comm

__all__ = ["TrainingSampler", "InferenceSampler", "RepeatFactorTrainingSampler"]

logger = logging.getLogger(__name__)


def _rank_and_world_size(rank: Optional[int], world_size: Optional[int]):
    world_size = comm.get_world_size() if world_size is None else world_size
    rank = comm.get_rank() if rank is None else rank
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world size {world_size}")
    return rank, world_size


class _EndlessShardedSampler(Sampler):
    """An endless stream of epochs of indices drawn from one seeded generator; rank r takes every
    world_size-th index of it. Subclasses say what one epoch is (`_epoch_indices`)."""

    def __init__(self, seed: Optional[int], rank: Optional[int], world_size: Optional[int]):
        self._seed = int(comm.shared_random_seed() if seed is None else seed)
        self._rank, self._world_size = _rank_and_world_size(rank, world_size)

    def _epoch_indices(self, generator: torch.Generator) -> List[int]:
        """The indices of the next epoch, drawn from ``generator``."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(self._infinite_indices(), self._rank, None, self._world_size)

    def _infinite_indices(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self._seed)
        while True:
            yield from self._epoch_indices(generator)


class TrainingSampler(_EndlessShardedSampler):
    """An endless stream of indices of ``range(size)``; rank r takes every world_size-th of them.

    All ranks share one seeded stream of permutations (the seed must agree across ranks; by
    default it is drawn on rank 0 and broadcast), so in every stretch of ``size`` steps
    together they visit each index once.
    """

    def __init__(
        self,
        size: int,
        shuffle: bool = True,
        seed: Optional[int] = None,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
    ):
        if size <= 0:
            raise ValueError(f"TrainingSampler needs a dataset of positive size, got {size}")
        self._size, self._shuffle = size, shuffle
        super().__init__(seed, rank, world_size)

    def _epoch_indices(self, generator: torch.Generator) -> List[int]:
        if self._shuffle:
            return torch.randperm(self._size, generator=generator).tolist()
        return list(range(self._size))


class RepeatFactorTrainingSampler(_EndlessShardedSampler):
    """Like TrainingSampler, but index i appears on average ``repeat_factors[i]`` times per epoch.

    A fractional factor r is rounded stochastically each epoch (floor(r) copies plus one more
    with probability r - floor(r)), so rare-category images are seen more often (LVIS-style).
    """

    def __init__(
        self,
        repeat_factors: torch.Tensor,
        shuffle: bool = True,
        seed: Optional[int] = None,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
    ):
        repeat_factors = torch.as_tensor(repeat_factors, dtype=torch.float32)
        if repeat_factors.dim() != 1 or len(repeat_factors) == 0 or (repeat_factors < 0).any():
            raise ValueError("RepeatFactorTrainingSampler needs a non-empty 1-D tensor of factors ≥ 0")
        self._shuffle = shuffle
        super().__init__(seed, rank, world_size)
        self._int_part = torch.trunc(repeat_factors)
        self._frac_part = repeat_factors - self._int_part

    @staticmethod
    def repeat_factors_from_category_frequency(dataset_dicts: List[dict], repeat_thresh: float) -> torch.Tensor:
        """Per-image factor max over its categories c of max(1, sqrt(t / f(c))).

        f(c) is the fraction of images containing category c, t is ``repeat_thresh``.
        """
        images_per_category: Dict[int, int] = defaultdict(int)
        for record in dataset_dicts:
            for category in {a["category_id"] for a in record.get("annotations", [])}:
                images_per_category[category] += 1
        num_images = len(dataset_dicts)
        category_factor = {
            c: max(1.0, math.sqrt(repeat_thresh / (count / num_images))) for c, count in images_per_category.items()
        }
        factors = [
            max((category_factor[a["category_id"]] for a in record.get("annotations", [])), default=1.0)
            for record in dataset_dicts
        ]
        return torch.tensor(factors, dtype=torch.float32)

    def _epoch_indices(self, generator: torch.Generator) -> List[int]:
        extra = (torch.rand(len(self._frac_part), generator=generator) < self._frac_part).float()
        counts = (self._int_part + extra).long()
        indices = torch.repeat_interleave(torch.arange(len(counts)), counts)
        if len(indices) == 0:
            raise ValueError("RepeatFactorTrainingSampler: every repeat factor rounded to 0 in this epoch")
        if self._shuffle:
            indices = indices[torch.randperm(len(indices), generator=generator)]
        return indices.tolist()


class InferenceSampler(Sampler):
    """Each index of ``range(size)`` exactly once across ranks, in order: rank r gets the r-th
    contiguous shard (shards differ in length by at most one)."""

    def __init__(self, size: int, rank: Optional[int] = None, world_size: Optional[int] = None):
        if size < 0:
            raise ValueError(f"InferenceSampler: size must be ≥ 0, got {size}")
        self._size = size
        self._rank, self._world_size = _rank_and_world_size(rank, world_size)
        self._local_indices = self._get_local_indices(size, self._world_size, self._rank)

    @staticmethod
    def _get_local_indices(total_size: int, world_size: int, rank: int) -> range:
        shard_size, remainder = divmod(total_size, world_size)
        begin = rank * shard_size + min(rank, remainder)
        end = begin + shard_size + (1 if rank < remainder else 0)
        return range(begin, end)

    def __iter__(self) -> Iterator[int]:
        yield from self._local_indices

    def __len__(self) -> int:
        return len(self._local_indices)
