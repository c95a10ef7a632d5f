"""MODEL.WEIGHTS as a local path, an http URL (downloaded once into the cache), detectron2:// and
torchvision:// names; offline, the error names the URL and the way out. No test leaves the machine:
URLs point at a server the test runs on 127.0.0.1."""

import functools
import http.server
import pickle
import socket
import threading

import numpy as np
import pytest
import torch
from torch import nn

from mrcnn.benchmark import fpn_config
from mrcnn.checkpoint import DetectionCheckpointer, weights_path
from mrcnn.checkpoint.weights_path import WeightsDownloadError, resolve_weights_path, weights_url


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests = 0

    def do_GET(self):
        type(self).requests += 1
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture()
def server(tmp_path):
    """Serves tmp_path/served over http; yields (base URL, folder, handler class, stop)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = type("Handler", (_CountingHandler,), {"requests": 0})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stopped = []

    def stop():
        if not stopped:
            httpd.shutdown()
            httpd.server_close()
            stopped.append(True)

    yield f"http://127.0.0.1:{httpd.server_address[1]}", served, handler, stop
    stop()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_local_paths(tmp_path):
    path = tmp_path / "model.pth"
    torch.save({"model": _Net().state_dict()}, path)
    assert resolve_weights_path(str(path)) == str(path)
    with pytest.raises(FileNotFoundError, match="no_such_model.pth"):
        resolve_weights_path(str(tmp_path / "no_such_model.pth"))


def test_url_is_downloaded_once_into_the_cache(tmp_path, server):
    base, served, handler, stop = server
    (served / "zoo").mkdir()
    source = _Net()
    torch.save({"model": source.state_dict()}, served / "zoo" / "model.pth")
    cache = tmp_path / "cache"
    local = resolve_weights_path(f"{base}/zoo/model.pth", cache_dir=str(cache))
    assert local.startswith(str(cache)) and open(local, "rb").read() == (served / "zoo" / "model.pth").read_bytes()
    stop()  # from now on the network is gone: the cached copy must do
    assert resolve_weights_path(f"{base}/zoo/model.pth", cache_dir=str(cache)) == local
    assert handler.requests == 1
    target = _Net()
    DetectionCheckpointer(target).load(local)
    assert torch.equal(target.linear.weight, source.linear.weight)


def test_detectron2_scheme_through_the_checkpointer(tmp_path, server, monkeypatch):
    base, served, _, _ = server
    (served / "ImageNetPretrained").mkdir()
    source = _Net()
    with open(served / "ImageNetPretrained" / "tiny.pkl", "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in source.state_dict().items()}, "__author__": "test zoo"}, f)
    monkeypatch.setattr(weights_path, "DETECTRON2_MODEL_ZOO_URL", f"{base}/")
    monkeypatch.setenv("MRCNN_CACHE", str(tmp_path / "cache"))
    target = _Net()
    extra = DetectionCheckpointer(target).load("detectron2://ImageNetPretrained/tiny.pkl")
    assert extra["__author__"] == "test zoo"
    assert torch.equal(target.linear.bias, source.linear.bias)
    assert (tmp_path / "cache" / "ImageNetPretrained" / "tiny.pkl").is_file()


def test_catalog_scheme_of_detectron2_zoo_configs(tmp_path, server, monkeypatch):
    # the ImageNet backbones the GroupNorm and X-152 zoo configs name by catalog entry
    detectron = "https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/"
    assert weights_url("catalog://ImageNetPretrained/FAIR/R-50-GN") == detectron + "47261647/R-50-GN.pkl"
    assert (
        weights_url("catalog://ImageNetPretrained/FAIR/X-152-32x8d-IN5k") == detectron + "25093814/X-152-32x8d-IN5k.pkl"
    )
    with pytest.raises(ValueError, match="catalog://ImageNetPretrained/FAIR/R-50-BN"):
        weights_url("catalog://ImageNetPretrained/FAIR/R-50-BN")
    base, served, _, _ = server
    (served / "ImageNetPretrained" / "47261647").mkdir(parents=True)
    source = _Net()
    with open(served / "ImageNetPretrained" / "47261647" / "R-50-GN.pkl", "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in source.state_dict().items()}}, f)
    monkeypatch.setattr(weights_path, "DETECTRON_MODEL_ZOO_URL", f"{base}/")
    target = _Net()
    DetectionCheckpointer(target).load(
        resolve_weights_path("catalog://ImageNetPretrained/FAIR/R-50-GN", cache_dir=str(tmp_path / "cache"))
    )
    assert torch.equal(target.linear.weight, source.linear.weight)


def test_names_map_to_published_urls():
    assert weights_url("detectron2://ImageNetPretrained/MSRA/R-50.pkl") == (
        "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-50.pkl"
    )
    models = "https://download.pytorch.org/models/"
    assert weights_url("torchvision://maskrcnn_resnet50_fpn") == models + "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
    v2 = models + "maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth"
    assert weights_url("torchvision://maskrcnn_resnet50_fpn_v2") == v2
    assert weights_url("torchvision://resnet50.IMAGENET1K_V1") == models + "resnet50-0676ba61.pth"
    assert weights_url("torchvision://ResNet50_Weights.IMAGENET1K_V1") == models + "resnet50-0676ba61.pth"
    assert weights_url("torchvision://resnet50-0676ba61.pth") == models + "resnet50-0676ba61.pth"
    assert weights_url("/data/model.pth") is None
    with pytest.raises(ValueError, match="maskrcnn_resnet50_fpn"):
        weights_url("torchvision://maskrcnn_resnet50")


def test_torchvision_scheme_uses_the_torch_hub_copy(tmp_path, monkeypatch):
    from torchvision.models import resnet18

    from mrcnn.modeling import build_model

    torch.manual_seed(0)
    reference = resnet18(weights=None).eval()
    for module in reference.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), hub / "checkpoints" / "resnet18-f37072fd.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))

    cfg = fpn_config()
    cfg.merge_from_list(
        [
            "MODEL.RESNETS.DEPTH",
            "18",
            "MODEL.RESNETS.RES2_OUT_CHANNELS",
            "64",
            "MODEL.RESNETS.STRIDE_IN_1X1",
            "False",
            "MODEL.FPN.OUT_CHANNELS",
            "32",
            "MODEL.ROI_BOX_HEAD.NUM_FC",
            "1",
            "MODEL.ROI_BOX_HEAD.FC_DIM",
            "32",
        ]
    )
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load("torchvision://resnet18.IMAGENET1K_V1")
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ours = model.backbone.bottom_up(image)["res5"]
        x = reference.maxpool(reference.relu(reference.bn1(reference.conv1(image))))
        theirs = reference.layer4(reference.layer3(reference.layer2(reference.layer1(x))))
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max() <= 1e-4 * theirs.abs().max()


def test_offline_download_error_names_the_url(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/models/model_final.pth"
    with pytest.raises(WeightsDownloadError) as info:
        resolve_weights_path(url, cache_dir=str(tmp_path / "cache"))
    message = str(info.value)
    assert url in message and "download" in message and "local path" in message
    with pytest.raises(WeightsDownloadError, match="model_final.pth"):
        DetectionCheckpointer(_Net()).load(url)


def test_downloaded_pickles_go_through_the_safe_loader(tmp_path, server):
    base, served, _, _ = server
    with open(served / "w.pkl", "wb") as f:
        pickle.dump({"model": {"linear.weight": np.ones((3, 4), np.float32)}, "__author__": "x"}, f)
    victim = tmp_path / "created_by_payload"
    with open(served / "evil.pkl", "wb") as f:
        pickle.dump({"model": {"linear.weight": _TouchOnLoad(str(victim))}}, f)
    target = _Net()
    DetectionCheckpointer(target).load(resolve_weights_path(f"{base}/w.pkl", cache_dir=str(tmp_path / "c")))
    assert torch.equal(target.linear.weight, torch.ones(3, 4))
    with pytest.raises(ValueError, match="system"):
        DetectionCheckpointer(target).load(resolve_weights_path(f"{base}/evil.pkl", cache_dir=str(tmp_path / "c")))
    assert not victim.exists()


class _TouchOnLoad:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))
