"""DetectionCheckpointer: atomic saves, last_checkpoint, safe loading, shape-mismatch skipping."""

import logging
import os
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from mrcnn.checkpoint import DetectionCheckpointer, atomic_torch_save


class _Net(nn.Module):
    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 3)
        self.predictor = nn.Linear(4, num_classes)


@pytest.fixture
def checkpoint_log(log_messages):
    return log_messages("mrcnn.checkpoint.detection_checkpoint", logging.DEBUG)


def test_save_is_atomic_and_tags_last_checkpoint(tmp_path):
    net = _Net()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    checkpointer = DetectionCheckpointer(net, str(tmp_path), optimizer=optimizer)
    checkpointer.save("model_0000004", iteration=4)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000004.pth"]  # no temporaries left
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000004.pth"
    checkpointer.save("model_best", tag_last=False)
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000004.pth"
    # Our own files load with weights_only=True.
    data = torch.load(tmp_path / "model_0000004.pth", weights_only=True)
    assert data["iteration"] == 4 and set(data) == {"model", "optimizer", "iteration"}
    assert checkpointer.get_checkpoint_file() == str(tmp_path / "model_0000004.pth")


def test_failed_save_keeps_previous_file(tmp_path):
    path = str(tmp_path / "model.pth")
    atomic_torch_save({"x": torch.ones(2)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot serialise")

    with pytest.raises(RuntimeError, match="cannot serialise"):
        atomic_torch_save({"x": torch.zeros(2), "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=True)["x"].tolist() == [1.0, 1.0]
    assert os.listdir(tmp_path) == ["model.pth"]


def test_resume_and_fine_tune_loading(tmp_path):
    net = _Net()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net.predictor.weight.grad = torch.ones_like(net.predictor.weight)
    net.backbone.weight.grad = torch.ones_like(net.backbone.weight)
    optimizer.step()  # creates momentum buffers
    DetectionCheckpointer(net, str(tmp_path), optimizer=optimizer).save("model_final", iteration=9)

    other = _Net()
    other_optimizer = torch.optim.SGD(other.parameters(), lr=0.1, momentum=0.9)
    checkpointer = DetectionCheckpointer(other, str(tmp_path), optimizer=other_optimizer)
    extra = checkpointer.resume_or_load("", resume=True)
    assert extra["iteration"] == 9
    assert torch.equal(other.backbone.weight, net.backbone.weight)
    assert other_optimizer.state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()

    # Without resume only the model is loaded, from the given path.
    fresh = _Net()
    fresh_optimizer = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    DetectionCheckpointer(fresh, str(tmp_path / "elsewhere"), optimizer=fresh_optimizer).resume_or_load(
        str(tmp_path / "model_final.pth"), resume=True
    )
    assert torch.equal(fresh.predictor.bias, net.predictor.bias)
    assert fresh_optimizer.state_dict()["state"] == {}


def test_shape_mismatch_is_skipped_with_one_line(tmp_path, checkpoint_log):
    source = _Net(num_classes=3)
    torch.save({"model": source.state_dict()}, tmp_path / "three.pth")
    target = _Net(num_classes=5)
    before = target.predictor.weight.detach().clone()
    DetectionCheckpointer(target).load(str(tmp_path / "three.pth"))
    assert torch.equal(target.backbone.weight, source.backbone.weight)
    assert torch.equal(target.predictor.weight, before)
    skipped = [m for m in checkpoint_log if m.startswith("Skipped 2 parameter(s)")]
    assert len(skipped) == 1
    assert "predictor.weight (3, 4) -> (5, 4)" in skipped[0] and "predictor.bias (3,) -> (5,)" in skipped[0]
    # The skipped keys are not reported again as missing.
    assert not any("not found in the checkpoint" in m for m in checkpoint_log)


def test_ddp_prefix_bare_state_dict_and_numpy_pickle(tmp_path):
    source = _Net()
    prefixed = {f"module.{k}": v for k, v in source.state_dict().items()}
    torch.save({"model": prefixed}, tmp_path / "ddp.pth")
    torch.save(source.state_dict(), tmp_path / "bare.pth")
    with open(tmp_path / "weights.pkl", "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in source.state_dict().items()}, "__author__": "x"}, f)
    for name in ("ddp.pth", "bare.pth", "weights.pkl"):
        target = _Net()
        DetectionCheckpointer(target).load(str(tmp_path / name))
        for key, value in source.state_dict().items():
            assert torch.equal(target.state_dict()[key], value), (name, key)


class _Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def test_unsafe_files_are_refused(tmp_path):
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"model": {"w": _Payload()}}, f)
    with pytest.raises(ValueError, match="evil.pkl.*not allowed"):
        DetectionCheckpointer(_Net()).load(str(tmp_path / "evil.pkl"))
    torch.save({"model": {"w": torch.zeros(1)}, "extra": _Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="weights_only=True"):
        DetectionCheckpointer(_Net()).load(str(tmp_path / "evil.pth"))


def test_missing_tagged_file_falls_back_to_newest_periodic(tmp_path):
    net = _Net()
    checkpointer = DetectionCheckpointer(net, str(tmp_path))
    checkpointer.save("model_0000004")
    checkpointer.save("model_0000009")
    (tmp_path / "last_checkpoint").write_text("model_0000014.pth")
    assert checkpointer.get_checkpoint_file() == str(tmp_path / "model_0000009.pth")
    assert checkpointer.periodic_checkpoints() == [
        str(tmp_path / "model_0000004.pth"),
        str(tmp_path / "model_0000009.pth"),
    ]
    assert checkpointer.has_checkpoint()
    assert not DetectionCheckpointer(net, str(tmp_path / "empty")).has_checkpoint()


def test_numpy_arrays_in_weights_become_tensors(tmp_path):
    source = _Net()
    with open(tmp_path / "w.pkl", "wb") as f:
        pickle.dump({"blobs": {k: v.numpy().astype(np.float32) for k, v in source.state_dict().items()}}, f, protocol=2)
    target = _Net()
    DetectionCheckpointer(target).load(str(tmp_path / "w.pkl"))
    assert torch.equal(target.predictor.weight, source.predictor.weight)
