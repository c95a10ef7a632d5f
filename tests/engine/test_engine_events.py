"""EventStorage, the json writer and the peak-memory figure they log."""

import json
import subprocess
import sys

import pytest
import torch

from mrcnn.utils.events import EventStorage, JSONWriter, get_event_storage, has_event_storage, peak_memory_mb


def test_storage_history_latest_and_smoothing():
    with EventStorage(start_iter=5) as storage:
        assert get_event_storage() is storage and has_event_storage()
        for value in (4.0, 1.0, 2.0, 100.0):
            storage.put_scalar("loss", torch.tensor(value))
            storage.step()
        storage.put_scalar("bbox/AP", 30.0, smoothing_hint=False)
        assert storage.iter == 9
        assert [v for v, _ in storage.history("loss").values()] == [4.0, 1.0, 2.0, 100.0]
        assert [i for _, i in storage.history("loss").values()] == [5, 6, 7, 8]
        assert storage.latest()["loss"] == (100.0, 8)
        smoothed = storage.latest_with_smoothing_hint(window_size=3)
        assert smoothed["loss"] == (2.0, 8)  # median of 1, 2, 100
        assert smoothed["bbox/AP"] == (30.0, 9)  # not smoothed
        with storage.name_scope("val"):
            storage.put_scalar("loss", 1.5)
        assert storage.latest()["val/loss"] == (1.5, 9)
        with pytest.raises(ValueError, match="smoothing_hint"):
            storage.put_scalar("bbox/AP", 1.0)
        with pytest.raises(KeyError, match="Known"):
            storage.history("nope")
    assert not has_event_storage()
    with pytest.raises(RuntimeError, match="EventStorage"):
        get_event_storage()


def test_json_writer_writes_each_iteration_once(tmp_path):
    path = tmp_path / "metrics.json"
    writer = JSONWriter(str(path), window_size=2)
    with EventStorage() as storage:
        for iteration in range(4):
            storage.iter = iteration
            storage.put_scalars(total_loss=float(iteration), lr=0.1)
            if iteration in (1, 3):
                writer.write()
        writer.write()  # nothing new: no extra line
    writer.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [1, 3]
    assert lines[1]["total_loss"] == pytest.approx(2.5)  # median of the last 2 values (2, 3)
    assert lines[0]["lr"] == pytest.approx(0.1)


def test_json_writer_keeps_results_put_at_an_iteration_already_written(tmp_path):
    # The evaluation after training puts its AP at the last iteration, which the writer has
    # written already; the AP must still reach metrics.json (and the AP plot).
    path = tmp_path / "metrics.json"
    writer = JSONWriter(str(path), window_size=1)
    with EventStorage() as storage:
        storage.iter = 9
        storage.put_scalars(total_loss=1.0)
        writer.write()
        storage.put_scalars(**{"bbox/AP": 50.0}, smoothing_hint=False)
        writer.write()
        writer.write()
    writer.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"iteration": 9, "total_loss": 1.0}, {"iteration": 9, "bbox/AP": 50.0}]


# Run in a fresh process, whose peak so far is close to what it holds now: a block allocated there
# raises the peak by a known amount.
_RSS_PEAK_OF_KNOWN_ALLOCATIONS = """
import torch
from mrcnn.utils.events import peak_memory_mb

def resident_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))

torch.ones(1 << 20, dtype=torch.uint8).add_(1)  # start torch's thread pool before measuring
before, kind = peak_memory_mb()
resident = resident_mb()
block_mb = (before - resident) + 256  # alive together with what is resident, it sets a new peak
block = torch.ones(int(block_mb * 2**20), dtype=torch.uint8)
during, _ = peak_memory_mb()
del block
smaller = torch.ones(128 * 2**20, dtype=torch.uint8)  # allocated after the block is freed
after, _ = peak_memory_mb()
print(kind, resident, block_mb, during, after)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the resident size from /proc")
def test_rss_peak_memory_follows_known_allocations():
    result = subprocess.run(
        [sys.executable, "-c", _RSS_PEAK_OF_KNOWN_ALLOCATIONS], capture_output=True, text=True, check=True
    )
    kind, *numbers = result.stdout.split()
    resident, block_mb, during, after = map(float, numbers)
    assert kind == "rss"
    # the peak while the block is alive: what was resident plus the block
    assert during == pytest.approx(resident + block_mb, abs=8)
    # a high-water mark: freeing the block and allocating less leaves it where it was
    assert after == pytest.approx(during, abs=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_memory_follows_known_allocations():
    device = torch.device("cuda")
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    first = torch.empty(64 * 2**20, dtype=torch.uint8, device=device)
    second = torch.empty(32 * 2**20, dtype=torch.uint8, device=device)  # both alive: 96 MiB
    del first
    third = torch.empty(16 * 2**20, dtype=torch.uint8, device=device)  # 48 MiB alive now
    megabytes, kind = peak_memory_mb()
    assert kind == "cuda"
    assert megabytes == base / 2**20 + 96
    del second, third
