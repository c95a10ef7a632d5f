"""Weights files that are not weights: each error names the file and says what it really is."""

import pickle
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from mrcnn.checkpoint import DetectionCheckpointer
from mrcnn.checkpoint.weights_file import WeightsFileError, describe_unreadable_file


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 3)
        self.predictor = nn.Linear(4, 3)


def _load(path) -> None:
    DetectionCheckpointer(_Net()).load(str(path))


def _good_pth(tmp_path) -> bytes:
    torch.save({"model": _Net().state_dict(), "iteration": 3}, tmp_path / "good.pth")
    return (tmp_path / "good.pth").read_bytes()


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("notes.pth", b"hello world\nsecond line\n", r"a text file, not a weights file \(it begins 'hello world'\)"),
        ("notes.pkl", b"hello world\n", r"a text file, not a weights file \(it begins 'hello world'\)"),
        ("empty.pth", b"", r"it is empty \(0 bytes\)"),
        ("empty.pkl", b"", r"it is empty \(0 bytes\)"),
        ("page.pth", b"<!DOCTYPE html><html><body>404</body></html>", "an HTML/XML page"),
        ("lfs.pth", b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n", "a Git LFS pointer"),
        ("noise.pth", bytes(range(7, 256)), "not a format weights are saved in .*07 08 09"),
    ],
)
def test_files_that_are_not_weights(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(WeightsFileError, match=reason) as info:
        _load(path)
    assert str(path) in str(info.value)


def test_truncated_pth_is_named_as_truncated(tmp_path):
    """The zip format torch.save writes, cut short: no more torch-internal zip error without the path."""
    data = _good_pth(tmp_path)
    for cut in (len(data) // 2, len(data) - 10, 100):
        path = tmp_path / f"cut_{cut}.pth"
        path.write_bytes(data[:cut])
        with pytest.raises(WeightsFileError, match="its end is missing or corrupt .* the file is truncated") as info:
            _load(path)
        assert str(path) in str(info.value) and f"({cut} bytes on disk)" in str(info.value)
    # torch.save's legacy (pre-zip) format, cut short
    torch.save({"model": _Net().state_dict()}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    legacy = (tmp_path / "legacy.pth").read_bytes()
    (tmp_path / "legacy_cut.pth").write_bytes(legacy[: len(legacy) // 2])
    with pytest.raises(WeightsFileError, match="legacy format but ends early"):
        _load(tmp_path / "legacy_cut.pth")
    _load(tmp_path / "legacy.pth")  # the whole file still loads


def test_other_archives_and_pickles_under_pth(tmp_path):
    with zipfile.ZipFile(tmp_path / "archive.pth", "w") as archive:
        archive.writestr("readme.txt", "x")
    with pytest.raises(
        WeightsFileError, match=r"a zip archive but not one torch.save wrote \(entries: \['readme.txt'\]"
    ):
        _load(tmp_path / "archive.pth")
    torch.jit.save(torch.jit.script(_Net().backbone), str(tmp_path / "scripted.pth"))
    with pytest.raises(WeightsFileError, match="a TorchScript archive"):
        _load(tmp_path / "scripted.pth")
    with open(tmp_path / "arrays.pth", "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in _Net().state_dict().items()}}, f)
    with pytest.raises(WeightsFileError, match="a plain pickle, not torch.save's format.*give it the .pkl extension"):
        _load(tmp_path / "arrays.pth")
    (tmp_path / "arrays.pkl").write_bytes((tmp_path / "arrays.pth").read_bytes())
    _load(tmp_path / "arrays.pkl")  # renamed as the message says, it loads


def test_directory_is_named_with_the_weights_inside(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(IsADirectoryError, match=r"'.*run' is a directory, not a file \(it holds no .pth or .pkl"):
        _load(tmp_path / "run")
    (tmp_path / "run" / "model_final.pth").write_bytes(_good_pth(tmp_path))
    with pytest.raises(IsADirectoryError, match=r"did you mean one of \[.*run/model_final.pth'\]"):
        _load(tmp_path / "run")


def test_pickles_without_a_weights_dict(tmp_path):
    with open(tmp_path / "list.pkl", "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(ValueError, match=r"list.pkl' holds a list, not a dict of weights"):
        _load(tmp_path / "list.pkl")
    with open(tmp_path / "settings.pkl", "wb") as f:
        pickle.dump({"lr": 0.1, "name": "run"}, f)
    with pytest.raises(ValueError, match=r"settings.pkl' is a pickle without weights.*found keys \['lr', 'name'\]"):
        _load(tmp_path / "settings.pkl")
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match=r"list.pth' holds a list, not a dict of weights"):
        _load(tmp_path / "list.pth")


def test_another_frameworks_layout_is_refused(tmp_path):
    """An MMDetection-style file: nothing matches, which used to train from scratch after a few warnings."""
    net = _Net()
    before = net.backbone.weight.detach().clone()
    foreign = {
        "meta": {"epoch": 12},
        "state_dict": {
            "backbone.conv1.weight": torch.zeros(4, 3, 3, 3),
            "neck.lateral_convs.0.conv.weight": torch.zeros(4, 4, 1, 1),
            "roi_head.bbox_head.fc_cls.weight": torch.zeros(3, 4),
        },
    }
    torch.save(foreign, tmp_path / "mmdet.pth")
    with pytest.raises(WeightsFileError, match="has 3 entries but none with a name this model uses") as info:
        DetectionCheckpointer(net).load(str(tmp_path / "mmdet.pth"))
    message = str(info.value)
    assert str(tmp_path / "mmdet.pth") in message and "MMDetection" in message
    assert "'backbone.conv1.weight'" in message and "'backbone.weight'" in message  # the file's names and ours
    assert torch.equal(net.backbone.weight, before)
    # one matching name is enough: partial files (a backbone) still load, the rest is reported as today
    partial = {"backbone.weight": torch.ones(4, 3, 3, 3), "neck.other": torch.zeros(1)}
    torch.save(partial, tmp_path / "partial.pth")
    DetectionCheckpointer(net).load(str(tmp_path / "partial.pth"))
    assert torch.equal(net.backbone.weight, torch.ones(4, 3, 3, 3))


def test_good_files_still_load_and_describe_is_quiet_on_them(tmp_path):
    _good_pth(tmp_path)
    target = _Net()
    extra = DetectionCheckpointer(target).load(str(tmp_path / "good.pth"))
    assert extra["iteration"] == 3
    with open(tmp_path / "good.pkl", "wb") as f:
        pickle.dump({"model": {k: v.numpy().astype(np.float32) for k, v in target.state_dict().items()}}, f)
    _load(tmp_path / "good.pkl")
    assert describe_unreadable_file(str(tmp_path / "good.pth")) == ""
