"""The fast paths on the model-zoo architectures beyond R-FPN (C4, DC5, deformable, ResNeXt):
applied without the model files knowing, they keep the plain model's state and results."""

import pytest
import torch
from fast_path_checks import training_steps_on_shared_proposals
from zoo_model_toys import calibrated_model, narrow_zoo_config

from mrcnn.benchmark import natural_image, synthetic_training_batch
from mrcnn.layers import convert_frozen_batchnorm
from mrcnn.modeling import build_model
from mrcnn.modeling.backbone.resnet import BottleneckBlock, DeformBottleneckBlock
from mrcnn.modeling.fast_paths import FAST_CLASSES, fast_paths_disabled, has_fast_paths
from mrcnn.modeling.roi_heads import Res5ROIHeads

_CONFIGS = {
    "C4": ("COCO-InstanceSegmentation/mask_rcnn_R_50_C4_1x.yaml", []),
    "DC5": ("COCO-InstanceSegmentation/mask_rcnn_R_50_DC5_1x.yaml", []),
    "dconv": ("Misc/mask_rcnn_R_50_FPN_1x_dconv_c3-c5.yaml", ["MODEL.RESNETS.DEFORM_MODULATED", "True"]),
    "ResNeXt": ("COCO-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_3x.yaml", ["MODEL.RESNETS.DEPTH", "50"]),
}


def _model_pair(name: str, frozen: bool = False):
    """(fast, plain): one calibrated narrow model, built with MODEL.FAST_PATHS True and False;
    ``frozen``: its BatchNorms then frozen (FrozenBN, as the zoo models train)."""
    config_file, extra = _CONFIGS[name]
    cfg = narrow_zoo_config(config_file, extra)
    if cfg.MODEL.RESNETS.NUM_GROUPS > 1:
        cfg.MODEL.RESNETS.NUM_GROUPS, cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 4, 2
    fast = calibrated_model(cfg)
    if frozen:
        convert_frozen_batchnorm(fast)
        cfg.MODEL.RESNETS.NORM = "FrozenBN"
    cfg.MODEL.FAST_PATHS = False
    plain = build_model(cfg).eval()
    plain.load_state_dict(fast.state_dict())
    return fast, plain


@pytest.mark.parametrize("name", list(_CONFIGS))
def test_fast_model_has_the_plain_state_and_detections(name):
    fast, plain = _model_pair(name)
    assert has_fast_paths(fast) and not has_fast_paths(plain)
    assert list(fast.state_dict()) == list(plain.state_dict())
    blocks = [m for m in fast.modules() if isinstance(m, (BottleneckBlock, DeformBottleneckBlock))]
    # every plain bottleneck (C4's res5 head included) runs fused; deformable blocks keep their code
    assert all(type(b) in (FAST_CLASSES[BottleneckBlock], DeformBottleneckBlock) for b in blocks)
    if name == "C4":
        assert type(fast.roi_heads) is FAST_CLASSES[Res5ROIHeads]
        assert type(fast.roi_heads.res5[0]) is FAST_CLASSES[BottleneckBlock]
    image = torch.from_numpy(natural_image(80, 112, seed=3)).permute(2, 0, 1).contiguous()
    inputs = [{"image": image, "height": 80, "width": 112}]
    with torch.no_grad():
        expected = plain(inputs)[0]["instances"]
        got = fast(inputs)[0]["instances"]
        with fast_paths_disabled():
            unfused = fast(inputs)[0]["instances"]
    assert len(expected) > 10 and len(got) == len(expected)
    torch.testing.assert_close(got.pred_boxes.tensor, expected.pred_boxes.tensor, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(got.scores, expected.scores, atol=1e-4, rtol=1e-4)
    assert torch.equal(got.pred_classes, expected.pred_classes)
    assert (got.pred_masks == expected.pred_masks).float().mean() > 0.999
    assert torch.equal(unfused.scores, expected.scores) and torch.equal(unfused.pred_masks, expected.pred_masks)


@pytest.mark.parametrize("name", ["C4", "dconv"])
def test_training_step_equals_the_plain_model(name):
    fast, plain = _model_pair(name, frozen=True)
    batch = synthetic_training_batch(2, 96, 128, num_classes=3, seed=3)
    (fast_losses, fast_grads), (plain_losses, plain_grads) = training_steps_on_shared_proposals(fast, plain, batch)
    assert fast_losses.keys() == plain_losses.keys() and len(fast_losses) == 5
    for key in fast_losses:
        assert fast_losses[key] == pytest.approx(plain_losses[key], rel=1e-4, abs=1e-6), key
    assert fast_grads.keys() == plain_grads.keys() and len(fast_grads) > 50
    # Channels-last activations sum in another order; through 50 narrow layers that rounding grows
    # to ~0.3% of a gradient's norm (with NCHW images both agree to 1e-6). A wrong fold or a
    # skipped op would differ by far more.
    for key in fast_grads:
        difference = (fast_grads[key] - plain_grads[key]).norm() / plain_grads[key].norm().clamp(min=1e-12)
        assert difference < 1e-2, (key, float(difference))
