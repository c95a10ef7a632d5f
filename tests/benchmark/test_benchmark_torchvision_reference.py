"""The torchvision reference model: frozen BatchNorms keep their statistics, and the calibrated
model checks its arguments."""

import pytest
import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from mrcnn.benchmark import calibrated_torchvision_maskrcnn, freeze_batchnorms


def test_freeze_batchnorms_keeps_the_eval_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.ReLU(), nn.BatchNorm2d(4)))
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(2, 3, 8, 8)
    expected = model.eval()(x)
    frozen = freeze_batchnorms(model)
    assert isinstance(frozen[1], FrozenBatchNorm2d) and isinstance(frozen[2][1], FrozenBatchNorm2d)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    torch.testing.assert_close(frozen(x), expected, rtol=1e-5, atol=1e-5)


def test_calibrated_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        calibrated_torchvision_maskrcnn(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="depth must be one of"):
        calibrated_torchvision_maskrcnn(torch.zeros(3, 32, 32), depth=42)
