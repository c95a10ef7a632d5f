"""count_gflops reports two operations per multiply-add, the unit of the matmul rate."""

import pytest
import torch

from mrcnn.benchmark import count_gflops


def test_flop_count_of_a_linear_layer():
    layer = torch.nn.Linear(64, 32, bias=False)
    gflops = count_gflops(layer, lambda model, x: (model(x),), torch.randn(10, 64))
    assert gflops == pytest.approx(2 * 10 * 64 * 32 / 1e9)


def test_flop_count_of_a_convolution():
    conv = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    gflops = count_gflops(conv, lambda model, x: (model(x),), torch.randn(1, 3, 16, 16))
    assert gflops == pytest.approx(2 * 16 * 16 * 8 * 3 * 3 * 3 / 1e9)
