"""The fast paths of a built model: one switch, the plain model's state and results, plain code
under tracing, user subclasses left alone."""

import copy
import io

import pytest
import torch
from fast_path_checks import training_steps_on_shared_proposals
from torch import nn

from mrcnn.benchmark import natural_image, synthetic_training_batch, tiny_config
from mrcnn.modeling import build_model
from mrcnn.modeling.backbone.resnet import BasicBlock, BottleneckBlock
from mrcnn.modeling.fast_paths import (
    FAST_CLASSES,
    apply_fast_paths,
    fast_paths_disabled,
    fast_paths_enabled,
    has_fast_paths,
    remove_fast_paths,
)


def _model_pair(depth: int = 18):
    """(fast, plain): the same tiny Mask R-CNN weights built with MODEL.FAST_PATHS True and False,
    in eval mode with frozen BatchNorm statistics (the state fast paths fold)."""
    cfg = tiny_config(num_classes=3, image_size=96)
    cfg.MODEL.RESNETS.DEPTH = depth
    if depth >= 50:
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
        cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 16
    cfg.MODEL.RESNETS.NORM = "FrozenBN"
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    torch.manual_seed(0)
    fast = build_model(cfg)
    cfg.MODEL.FAST_PATHS = False
    plain = build_model(cfg)
    with torch.no_grad():
        for module in fast.modules():  # statistics that are not the identity, so folding matters
            if hasattr(module, "running_var") and module.running_var is not None:
                module.running_var.uniform_(0.5, 2.0)
                module.running_mean.uniform_(-0.5, 0.5)
    plain.load_state_dict(fast.state_dict())
    return fast.eval(), plain.eval()


def _inputs(seed: int = 0):
    image = torch.from_numpy(natural_image(80, 112, seed=seed)).permute(2, 0, 1).contiguous()
    return [{"image": image, "height": 80, "width": 112}]


def _onednn_ops_run(model, inputs) -> int:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile, torch.no_grad():
        model(inputs)
    return sum(event.count for event in profile.key_averages() if "mkldnn::_convolution" in event.key)


@pytest.mark.parametrize("depth", [18, 50])
def test_fast_model_has_the_plain_state_and_detections(depth):
    fast, plain = _model_pair(depth)
    assert has_fast_paths(fast) and not has_fast_paths(plain)
    assert list(fast.state_dict()) == list(plain.state_dict())
    assert [name for name, _ in fast.named_modules()] == [name for name, _ in plain.named_modules()]
    inputs = _inputs()
    with torch.no_grad():
        expected = plain(inputs)[0]["instances"]
        got = fast(inputs)[0]["instances"]
        with fast_paths_disabled():
            assert not fast_paths_enabled()
            unfused = fast(inputs)[0]["instances"]
    assert fast_paths_enabled()
    assert len(expected) > 10 and len(got) == len(expected)
    torch.testing.assert_close(got.pred_boxes.tensor, expected.pred_boxes.tensor, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(got.scores, expected.scores, atol=1e-4, rtol=1e-4)
    assert torch.equal(got.pred_classes, expected.pred_classes)
    agreement = (got.pred_masks == expected.pred_masks).float().mean()
    assert agreement > 0.999
    # switched off, the fast model runs the plain code: the same numbers to the bit
    assert torch.equal(unfused.pred_boxes.tensor, expected.pred_boxes.tensor)
    assert torch.equal(unfused.scores, expected.scores)
    assert torch.equal(unfused.pred_masks, expected.pred_masks)


def test_the_switch_decides_whether_fused_kernels_run():
    fast, plain = _model_pair(18)
    inputs = _inputs(1)
    assert _onednn_ops_run(fast, inputs) > 10
    assert _onednn_ops_run(plain, inputs) == 0
    with fast_paths_disabled():
        assert _onednn_ops_run(fast, inputs) == 0


def test_training_step_losses_and_gradients_equal_the_plain_model():
    fast, plain = _model_pair(18)
    batch = synthetic_training_batch(2, 96, 128, num_classes=3, seed=3)
    (fast_losses, fast_grads), (plain_losses, plain_grads) = training_steps_on_shared_proposals(fast, plain, batch)
    assert fast_losses.keys() == plain_losses.keys() and len(fast_losses) == 5
    for name in fast_losses:
        assert fast_losses[name] == pytest.approx(plain_losses[name], rel=1e-4, abs=1e-6), name
    assert fast_grads.keys() == plain_grads.keys() and len(fast_grads) > 20
    for name in fast_grads:
        torch.testing.assert_close(fast_grads[name], plain_grads[name], atol=1e-4, rtol=1e-3, msg=name)


def test_tracing_sees_only_plain_ops():
    fast, _ = _model_pair(18)
    image = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        traced = torch.jit.trace(fast.backbone, image, strict=False)
    graph = str(traced.inlined_graph)
    assert "aten::_convolution" in graph and "mkldnn" not in graph
    # and fused kernels run again right after
    assert _onednn_ops_run(fast, _inputs()) > 10


def test_subclasses_keep_their_own_code_and_removal_restores_the_plain_classes():
    class MyBlock(BasicBlock):
        def forward(self, x):
            return super().forward(x) * 2

    model = nn.Sequential(MyBlock(8, 8), BottleneckBlock(8, 16, bottleneck_channels=4))
    apply_fast_paths(model)
    assert type(model[0]) is MyBlock and type(model[1]) is FAST_CLASSES[BottleneckBlock]
    apply_fast_paths(model)  # twice changes nothing
    assert type(model[1]) is FAST_CLASSES[BottleneckBlock]
    remove_fast_paths(model)
    assert type(model[1]) is BottleneckBlock and not has_fast_paths(model)
    scripted = torch.jit.script(model[1].conv1)  # plain modules script
    assert scripted is not None


def test_model_with_cached_weights_copies_and_pickles():
    fast, _ = _model_pair(18)
    inputs = _inputs(2)
    with torch.no_grad():
        expected = fast(inputs)[0]["instances"]  # fills the caches with packed (uncopyable) weights
        copied = copy.deepcopy(fast)
        torch.testing.assert_close(copied(inputs)[0]["instances"].scores, expected.scores)
    assert has_fast_paths(copied)
    buffer = io.BytesIO()
    torch.save(fast, buffer)
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=False)
    with torch.no_grad():
        torch.testing.assert_close(restored(inputs)[0]["instances"].scores, expected.scores)
