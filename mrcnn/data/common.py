"""Dataset wrappers between the list of dicts, the mapper, the sampler and the DataLoader."""

import copy
import itertools
import logging
import pickle
from typing import Any, Callable, Iterator, List, Optional

import numpy as np
import torch.utils.data as torchdata

from .detection_utils import ImageLoadError

__all__ = ["DatasetFromList", "MapDataset", "SampledBatchDataset", "num_skipped_images"]

logger = logging.getLogger(__name__)

_num_skipped = 0  # unreadable images skipped by this process (each loader worker counts its own)


def num_skipped_images() -> int:
    """How many unreadable training images this process has skipped so far."""
    return _num_skipped


class DatasetFromList(torchdata.Dataset):
    """A map-style dataset over a list.

    With ``serialize`` the items are pickled into one numpy buffer: loader workers then share
    it copy-on-write instead of each slowly duplicating millions of small Python objects
    (reference counting touches every page of a plain list).
    """

    def __init__(self, items: List[Any], copy: bool = True, serialize: bool = True):
        self._copy, self._serialize = copy, serialize
        if serialize:
            blobs = [np.frombuffer(pickle.dumps(item, protocol=-1), dtype=np.uint8) for item in items]
            self._addresses = np.cumsum(np.asarray([len(b) for b in blobs], dtype=np.int64))
            self._buffer = np.concatenate(blobs) if blobs else np.zeros(0, dtype=np.uint8)
            self._length = len(blobs)
        else:
            self._items, self._length = items, len(items)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> Any:
        if self._serialize:
            start = 0 if index == 0 else int(self._addresses[index - 1])
            return pickle.loads(memoryview(self._buffer[start : int(self._addresses[index])]))
        if self._copy:
            return copy.deepcopy(self._items[index])
        return self._items[index]


class MapDataset(torchdata.Dataset):
    """``map_func`` applied to each item of ``dataset``.

    With ``max_retries`` set (training), an item whose image cannot be read (ImageLoadError),
    or that ``map_func`` maps to None, is replaced by another random item; each skip logs a
    warning naming the file and the running total. After ``max_retries`` consecutive failures
    it raises, naming the files. Without it (evaluation) errors propagate unchanged.
    """

    def __init__(self, dataset: torchdata.Dataset, map_func: Callable[[Any], Any], max_retries: Optional[int] = None):
        self._dataset, self._map_func, self._max_retries = dataset, map_func, max_retries

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, index: int) -> Any:
        if self._max_retries is None:
            return self._map_func(self._dataset[index])
        global _num_skipped
        failures = []
        for _ in range(self._max_retries + 1):
            item = self._dataset[index]
            try:
                result = self._map_func(item)
                reason = "the mapper returned None"
            except ImageLoadError as e:
                result, reason = None, str(e)
            if result is not None:
                return result
            file_name = item.get("file_name", f"index {index}") if isinstance(item, dict) else f"index {index}"
            failures.append(file_name)
            _num_skipped += 1
            logger.warning(
                f"Skipping training image {file_name} ({reason}); "
                f"{_num_skipped} image(s) skipped so far in this process."
            )
            index = int(np.random.randint(len(self._dataset)))
        raise RuntimeError(
            f"{len(failures)} training images in a row could not be used "
            f"(DATALOADER.MAX_LOAD_RETRIES={self._max_retries}): {', '.join(map(str, failures))}"
        )


class SampledBatchDataset(torchdata.IterableDataset):
    """Batches of mapped items in the order a (possibly infinite) sampler gives.

    Loader workers split the sampler's stream round-robin. With ``aspect_ratio_grouping``,
    landscape (w > h) and portrait images fill separate batches, so a batch pads less.
    """

    def __init__(
        self,
        dataset: torchdata.Dataset,
        sampler: torchdata.Sampler,
        batch_size: int,
        aspect_ratio_grouping: bool = True,
    ):
        if batch_size <= 0:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        self.dataset, self.sampler = dataset, sampler
        self.batch_size, self.aspect_ratio_grouping = batch_size, aspect_ratio_grouping

    def _indices(self) -> Iterator[int]:
        worker = torchdata.get_worker_info()
        indices = iter(self.sampler)
        if worker is None or worker.num_workers == 1:
            return indices
        return itertools.islice(indices, worker.id, None, worker.num_workers)

    def __iter__(self) -> Iterator[List[Any]]:
        buckets: List[List[Any]] = [[], []]
        for index in self._indices():
            item = self.dataset[index]
            bucket = buckets[_bucket_of(item) if self.aspect_ratio_grouping else 0]
            bucket.append(item)
            if len(bucket) == self.batch_size:
                yield bucket[:]
                del bucket[:]


def _bucket_of(item: Any) -> int:
    if isinstance(item, dict) and "image" in item:
        h, w = item["image"].shape[-2:]
    else:
        h, w = item["height"], item["width"]
    return 0 if w > h else 1
