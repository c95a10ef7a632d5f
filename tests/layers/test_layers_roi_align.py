import pytest
import torch

from mrcnn.layers import ROIAlign, batched_nms, nms


def test_roi_align_of_linear_ramp_gives_bin_centers():
    # feature value = continuous coordinate of the pixel center, so bilinear sampling is exact
    height, width = 32, 40
    rows = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
    cols = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width)
    features = torch.stack([rows + 0.5, cols + 0.5])[None]  # (1, 2, H, W)
    features = torch.cat([features, features + 100.0])  # second image offset by 100
    pooler = ROIAlign((4, 5), spatial_scale=0.5, sampling_ratio=2, aligned=True)
    rois = torch.tensor([[1.0, 8.0, 10.0, 48.0, 34.0], [0.0, 20.0, 20.0, 40.0, 28.0]])
    out = pooler(features, rois)
    assert out.shape == (2, 2, 4, 5)
    for k, (batch, x0, y0, x1, y1) in enumerate(rois.tolist()):
        x0, y0, x1, y1 = (v * 0.5 for v in (x0, y0, x1, y1))
        bin_y = y0 + (torch.arange(4) + 0.5) * (y1 - y0) / 4
        bin_x = x0 + (torch.arange(5) + 0.5) * (x1 - x0) / 5
        offset = 100.0 * batch
        torch.testing.assert_close(out[k, 0], bin_y[:, None].expand(4, 5) + offset)
        torch.testing.assert_close(out[k, 1], bin_x[None, :].expand(4, 5) + offset)


def test_roi_align_unaligned_is_shifted_by_half_pixel():
    features = (torch.arange(20, dtype=torch.float32) + 0.5)[None, None, None, :].expand(1, 1, 20, 20).contiguous()
    rois = torch.tensor([[0.0, 4.0, 4.0, 12.0, 12.0]])
    aligned = ROIAlign(2, 1.0, 2, aligned=True)(features, rois)
    legacy = ROIAlign(2, 1.0, 2, aligned=False)(features, rois)
    torch.testing.assert_close(aligned[0, 0, 0], torch.tensor([6.0, 10.0]))
    torch.testing.assert_close(legacy[0, 0, 0], torch.tensor([6.5, 10.5]))
    assert "aligned=True" in repr(ROIAlign(2, 1.0, 2))
    with pytest.raises(ValueError, match=r"\(K, 5\)"):
        ROIAlign(2, 1.0, 2)(features, rois[:, 1:])


def test_nms_and_batched_nms():
    boxes = torch.tensor(
        [[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [0.0, 0.0, 10.0, 5.0], [20.0, 20.0, 30.0, 30.0]]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    # IoU(0,1)=90/110, IoU(0,2)=0.5
    assert nms(boxes, scores, 0.6).tolist() == [0, 2, 3]
    assert nms(boxes, scores, 0.4).tolist() == [0, 3]
    classes = torch.tensor([0, 1, 0, 0])
    assert batched_nms(boxes, scores, classes, 0.4).tolist() == [0, 1, 3]
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).shape == (0,)
