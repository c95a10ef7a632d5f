"""The fast ROIAlign's CPU gradient equals torchvision's kernel's, for every pooling setting."""

import itertools

import pytest
import torch
from torchvision.ops import roi_align

from mrcnn.layers import ROIAlign
from mrcnn.modeling.fast_paths import apply_fast_paths


def _rois(num_images: int, height: int, width: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """(60, 5) RoIs: inside, across and beyond the map's borders, some empty, some sub-pixel."""
    count = 60
    scale = torch.tensor([width, height, width, height], dtype=dtype)
    corner = torch.rand(count, 2, generator=generator, dtype=dtype) * scale[:2] * 2.4 - 6
    size = torch.rand(count, 2, generator=generator, dtype=dtype) * 25
    size[40:45] = 0  # empty boxes
    size[45:50] = 0.3  # smaller than a pixel
    size[50:] += 30  # larger than the map
    index = torch.randint(0, num_images, (count, 1), generator=generator).to(dtype)
    return torch.cat([index, corner, corner + size], dim=1)


@pytest.mark.parametrize(
    "aligned,sampling_ratio,output_size,dtype",
    list(itertools.product([True, False], [0, 1, 2], [(7, 7), (5, 3)], [torch.float32, torch.float64])),
)
def test_gradient_matches_torchvision(aligned, sampling_ratio, output_size, dtype):
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(3, 5, 23, 31, generator=generator, dtype=dtype, requires_grad=True)
    rois = _rois(3, 46, 62, generator, dtype)
    pooler = apply_fast_paths(ROIAlign(output_size, spatial_scale=0.5, sampling_ratio=sampling_ratio, aligned=aligned))
    upstream = torch.randn(rois.shape[0], 5, *output_size, generator=generator, dtype=dtype)

    pooled = pooler(features, rois)
    (grad,) = torch.autograd.grad(pooled, features, upstream)
    reference = roi_align(features, rois, output_size, 0.5, sampling_ratio, aligned)
    (expected,) = torch.autograd.grad(reference, features, upstream)

    assert torch.equal(pooled, reference)
    assert grad.dtype == dtype and grad.shape == features.shape
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    assert (grad - expected).abs().max() <= tolerance * expected.abs().max()
    assert expected.abs().max() > 0


def test_gradient_is_channels_last_and_handles_no_rois():
    features = torch.randn(2, 8, 20, 20).to(memory_format=torch.channels_last).requires_grad_()
    rois = torch.tensor([[0, 1.0, 2, 15, 17], [1, 3, 3, 9, 19]])
    pooler = apply_fast_paths(ROIAlign(7, 1.0, 0, aligned=True))
    (grad,) = torch.autograd.grad(pooler(features, rois).sum(), features)
    (expected,) = torch.autograd.grad(roi_align(features, rois, 7, 1.0, 0, True).sum(), features)
    assert grad.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)

    (empty_grad,) = torch.autograd.grad(pooler(features, rois[:0]).sum(), features, allow_unused=True)
    assert empty_grad is None or float(empty_grad.abs().sum()) == 0.0


def test_gradcheck_in_double_precision():
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(1, 2, 9, 11, generator=generator, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.3, 1.2, 7.9, 6.1], [0, -1.5, 2.0, 4.4, 12.0]], dtype=torch.float64)
    pooler = apply_fast_paths(ROIAlign((3, 4), spatial_scale=1.0, sampling_ratio=0, aligned=True))
    assert torch.autograd.gradcheck(lambda x: pooler(x, rois), (features,))


def test_gradient_in_small_chunks_equals_one_pass(monkeypatch):
    from mrcnn.modeling.fast_paths import roi_align_cpu as roi_align_module

    generator = torch.Generator().manual_seed(2)
    features = torch.randn(2, 4, 30, 30, generator=generator, requires_grad=True)
    rois = _rois(2, 30, 30, generator, torch.float32)
    pooler = apply_fast_paths(ROIAlign(7, 1.0, 0, aligned=True))
    upstream = torch.randn(rois.shape[0], 4, 7, 7, generator=generator)
    (whole,) = torch.autograd.grad(pooler(features, rois), features, upstream)
    monkeypatch.setattr(roi_align_module, "_GRAD_WINDOW_ELEMENTS", 1)  # one RoI at a time
    (chunked,) = torch.autograd.grad(pooler(features, rois), features, upstream)
    torch.testing.assert_close(chunked, whole)
