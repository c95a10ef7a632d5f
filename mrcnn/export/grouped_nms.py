"""Non-maximum suppression within groups (image x class, or image x level), for exported graphs.

The eager model runs ``batched_nms`` image by image. An exported graph takes a batch of any size
and a data-dependent number of candidates, so every image's groups go through one call:

* in ONNX export the call becomes one ``NonMaxSuppression`` node with one ONNX "class" per group
  (a (1, G, N) score matrix in which a box scores -inf outside its own group). ONNX Runtime then
  suppresses within each group with exact box coordinates, as torchvision's per-class loop does
  (the coordinate-offset trick of ``batched_nms`` would round coordinates shifted by thousands of
  pixels and could flip decisions near the threshold);
* elsewhere (eager, and traced TorchScript) a scripted loop over the groups calls
  ``torchvision.ops.nms``; scripting keeps the loop in a traced graph, so its trip count follows
  the data instead of being frozen at the sample's.
"""

import warnings

import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision.nms)
from torch import Tensor

__all__ = ["grouped_nms"]

_LOWEST_FLOAT32 = float(torch.finfo(torch.float32).min)


def _grouped_nms_python(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float) -> Tensor:
    """Indices (K,) int64 kept by torchvision's NMS run separately on each group's boxes."""
    kept = [torch.zeros(0, dtype=torch.int64, device=boxes.device)]
    for group in torch.unique(groups):
        members = torch.nonzero(groups == group).squeeze(1)
        keep = torch.ops.torchvision.nms(boxes[members], scores[members], iou_threshold)
        kept.append(members[keep])
    return torch.cat(kept)


with warnings.catch_warnings():
    # torch.jit.script is deprecated in favour of torch.export, but it is still how a loop with a
    # data-dependent trip count survives tracing into a TorchScript file
    warnings.simplefilter("ignore", FutureWarning)
    _grouped_nms_loop = torch.jit.script(_grouped_nms_python)


class _OnnxNonMaxSuppression(torch.autograd.Function):
    """ONNX NonMaxSuppression on boxes (1, N, 4) and group scores (1, G, N); (K,) box indices."""

    @staticmethod
    def forward(ctx, boxes: Tensor, group_scores: Tensor, iou_threshold: float) -> Tensor:
        # only runs while the exporter traces: any correct (K,) result does for shape inference
        groups = group_scores[0].argmax(dim=0)
        scores = group_scores[0].max(dim=0).values
        valid = torch.nonzero(torch.isfinite(scores)).squeeze(1)
        return valid[_grouped_nms_loop(boxes[0][valid], scores[valid], groups[valid], iou_threshold)]

    @staticmethod
    def symbolic(g, boxes, group_scores, iou_threshold):
        max_per_group = g.op("Constant", value_t=torch.tensor([2**62], dtype=torch.int64))
        iou = g.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float32))
        # -inf (not in the group) is below the lowest float and never selected
        score_threshold = g.op("Constant", value_t=torch.tensor([_LOWEST_FLOAT32], dtype=torch.float32))
        selected = g.op("NonMaxSuppression", boxes, group_scores, max_per_group, iou, score_threshold)
        column = g.op("Constant", value_t=torch.tensor([2], dtype=torch.int64))
        box_index = g.op("Gather", selected, column, axis_i=1)  # (K, 1): [batch, group, box] -> box
        return g.op("Squeeze", box_index, g.op("Constant", value_t=torch.tensor([1], dtype=torch.int64)))


def grouped_nms(boxes: Tensor, scores: Tensor, groups: Tensor, num_groups: Tensor, iou_threshold: float) -> Tensor:
    """Indices (K,) of the boxes (N, 4 XYXY) kept by NMS within each group, in no particular order.

    scores (N,) float32 (finite); groups (N,) int64 in [0, num_groups); num_groups a 0-d tensor.
    """
    if torch.onnx.is_in_onnx_export():
        group_ids = torch.arange(num_groups, device=groups.device)
        group_scores = torch.where(
            groups[None, :] == group_ids[:, None], scores[None, :], torch.full_like(scores, float("-inf"))[None, :]
        )
        return _OnnxNonMaxSuppression.apply(boxes[None].float(), group_scores[None].float(), float(iou_threshold))
    return _grouped_nms_loop(boxes.float(), scores.float(), groups, float(iou_threshold))
