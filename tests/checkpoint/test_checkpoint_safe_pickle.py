"""Weights pickles load; pickles that would run code are refused before anything runs."""

import builtins
import collections
import io
import os
import pickle
import subprocess

import numpy as np
import pytest
import torch
from torch import nn

from mrcnn.checkpoint import DetectionCheckpointer
from mrcnn.checkpoint.safe_pickle import UnsafePickleError, load_safe_pickle


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)


class _OpenForWriting:
    """Unpickling this calls open(path, "w"): the file appears."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


class _Shell:
    """Unpickling this runs a shell command that creates a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class _Subprocess:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (subprocess.call, (["touch", self.path],))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_weights_pickles_round_trip(protocol):
    data = {
        "model": collections.OrderedDict(
            w=np.arange(6, dtype=np.float32).reshape(2, 3),
            b=np.array([1, 2], dtype=np.int64),
            h=np.ones(4, dtype=np.float16),
            flags=np.array([True, False]),
        ),
        "__author__": "Detectron2 Model Zoo",
        "scalars": (np.float32(0.5), np.int64(3), 2.5, None, True),
        "names": {"a", "b"},
    }
    loaded = load_safe_pickle(io.BytesIO(pickle.dumps(data, protocol=protocol)))
    assert loaded["__author__"] == "Detectron2 Model Zoo" and loaded["names"] == {"a", "b"}
    for key, value in data["model"].items():
        assert loaded["model"][key].dtype == value.dtype and np.array_equal(loaded["model"][key], value)
    assert loaded["scalars"] == data["scalars"]


@pytest.mark.parametrize(
    "payload, refused",
    [
        (_OpenForWriting, "io.open"),
        (_Shell, "system"),
        (_Subprocess, "subprocess.call"),
    ],
)
def test_payload_that_creates_a_file_is_refused(tmp_path, payload, refused):
    victim = tmp_path / "created_by_payload"
    weights = tmp_path / "weights.pkl"
    with open(weights, "wb") as f:
        model = {"linear.weight": np.zeros((2, 3), np.float32), "x": payload(str(victim))}
        pickle.dump({"model": model}, f, protocol=2)
    with pytest.raises(UnsafePickleError) as info:
        load_safe_pickle(str(weights))
    assert refused in str(info.value) and "weights.pkl" in str(info.value)
    with pytest.raises(ValueError, match=refused):
        DetectionCheckpointer(_Net()).load(str(weights))
    assert not victim.exists()


def test_pth_payload_is_refused_by_weights_only(tmp_path):
    victim = tmp_path / "created_by_payload"
    torch.save({"model": _Net().state_dict(), "extra": _OpenForWriting(str(victim))}, tmp_path / "weights.pth")
    with pytest.raises(ValueError, match="weights_only=True"):
        DetectionCheckpointer(_Net()).load(str(tmp_path / "weights.pth"))
    assert not victim.exists()


def test_persistent_ids_and_garbage_are_errors(tmp_path):
    class WithPersistentId(pickle.Pickler):
        def persistent_id(self, obj):
            return "storage-0" if isinstance(obj, str) and obj == "outside" else None

    buffer = io.BytesIO()
    WithPersistentId(buffer, protocol=2).dump({"w": "outside"})
    buffer.seek(0)
    with pytest.raises(UnsafePickleError, match="persistent id"):
        load_safe_pickle(buffer)
    (tmp_path / "broken.pkl").write_bytes(b"\x80\x02}q\x00")
    with pytest.raises(pickle.UnpicklingError, match="broken.pkl"):
        load_safe_pickle(str(tmp_path / "broken.pkl"))
