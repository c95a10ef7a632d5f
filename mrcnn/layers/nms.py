"""Non-maximum suppression from torchvision.ops."""

import torch
from torchvision.ops import batched_nms as _batched_nms
from torchvision.ops import nms as _nms


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (K,) of the boxes (N, 4 XYXY) kept, sorted by decreasing score (N,)."""
    return _nms(boxes, scores, iou_threshold)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS run independently per category idxs (N,); indices (K,) kept, by decreasing score."""
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    # torchvision requires float boxes/scores of the same dtype
    return _batched_nms(boxes.float(), scores.float(), idxs, iou_threshold)
