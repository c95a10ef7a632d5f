"""EventStorage and the json writer."""
import json

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


def test_peak_memory_is_positive():
    megabytes, kind = peak_memory_mb()
    assert kind in ("rss", "cuda")
    assert megabytes > 10  # a python process with torch uses well over 10 MiB
