"""RoIAlign split over threads on the CPU returns exactly what one call returns."""

import pytest
import torch
from torchvision.ops import roi_align

from mrcnn.layers import ROIAlign
from mrcnn.modeling.fast_paths import apply_fast_paths
from mrcnn.modeling.fast_paths import roi_align_cpu as roi_align_module


def _rois(count: int, generator: torch.Generator) -> torch.Tensor:
    corner = torch.rand(count, 2, generator=generator) * 100 - 10
    size = torch.rand(count, 2, generator=generator) * 60 + 1
    index = torch.randint(0, 2, (count, 1), generator=generator).float()
    return torch.cat([index, corner, corner + size], dim=1)


@pytest.mark.parametrize("aligned", [False, True])
def test_threaded_pooling_is_bit_identical(aligned, monkeypatch):
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 8, 24, 30, generator=generator)
    rois = _rois(101, generator)
    pooler = apply_fast_paths(ROIAlign((7, 7), spatial_scale=0.25, sampling_ratio=2, aligned=aligned))
    expected = roi_align(features, rois, (7, 7), 0.25, 2, aligned)
    calls = []
    original = roi_align_module._roi_align_in_threads

    def spy(*args):
        calls.append(args[2])
        return original(*args)

    monkeypatch.setattr(roi_align_module, "_roi_align_in_threads", spy)
    monkeypatch.setattr(roi_align_module, "_MIN_ROIS_PER_THREAD", 8)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        with torch.no_grad():
            pooled = pooler(features, rois)
        with torch.inference_mode():
            pooled_inference = pooler(features, rois)
    finally:
        torch.set_num_threads(threads)
    assert calls == [3, 3]
    assert torch.equal(pooled, expected) and torch.equal(pooled_inference, expected)
    assert expected.abs().sum() > 0
    # with gradients: the forward is split too, the gradient comes from ROIAlign's own backward
    torch.set_num_threads(2)
    try:
        grad_pooled = pooler(features.requires_grad_(), rois)
    finally:
        torch.set_num_threads(threads)
    assert grad_pooled.grad_fn is not None and calls[2:] == [2]
    assert torch.equal(grad_pooled, expected)
