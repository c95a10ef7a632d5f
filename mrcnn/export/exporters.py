"""Writing an ExportableMaskRCNN to an ONNX or TorchScript file, by tracing it on a sample batch.

Why tracing, and why the TorchScript-based ONNX exporter (``torch.onnx.export(dynamo=False)``)
at opset 17 rather than the ``torch.export``-based one (``dynamo=True``):

* The adapter is written so that tracing records every size and count as an op (image size,
  batch size, proposals per level, detections), so the traced graph is dynamic in all of them,
  N = 0 included. One trace serves both formats: the TorchScript file is the trace itself, and
  the ONNX exporter traces the same code, so both files compute the same function.
* NMS with data-dependent output sizes maps onto ONNX's own ``NonMaxSuppression`` (one node per
  NMS stage, one ONNX class per image x class group) through a symbolic that the TorchScript-based
  exporter accepts for any autograd Function; RoIAlign maps onto ``RoiAlign`` with torchvision's
  symbolic (opset 16 added the half-pixel mode our aligned poolers need).
* The ``torch.export``-based exporter needs every data-dependent size declared as an unbacked
  symbol and ``torch._check`` hints throughout nonzero/topk/NMS chains, and its graph capture of
  the model's Python (per-image lists, registries) is what the adapter exists to avoid anyway.
* Opset 17 has every op used (NonMaxSuppression 11, RoiAlign 16 with its half-pixel mode, CumSum
  14, Einsum 12, TopK 11) and is old enough to be widely supported by runtimes; only ONNX Runtime
  is tested here.

The model runs the plain code while traced: the CPU fast paths step aside under tracing and ONNX
export by themselves (mrcnn/modeling/fast_paths/switch.py), so no oneDNN-private op is recorded.
"""

import logging
import os
import warnings
from typing import Dict, List

import torch

from .exportable_model import ExportableMaskRCNN

__all__ = ["ONNX_OPSET", "export_onnx", "export_torchscript"]

logger = logging.getLogger(__name__)

ONNX_OPSET = 17


def _dynamic_axes(output_names: List[str]) -> Dict[str, Dict[int, str]]:
    axes = {"images": {0: "batch", 1: "height", 2: "width"}}
    for name in output_names:
        axes[name] = {0: "detections"}
    if "masks" in output_names:
        axes["masks"] = {0: "detections", 1: "height", 2: "width"}
    return axes


def _check_sample(sample: torch.Tensor) -> None:
    if sample.dim() != 4 or sample.shape[-1] != 3 or sample.dtype != torch.uint8:
        raise ValueError(f"The sample batch must be (B, H, W, 3) uint8, got {tuple(sample.shape)} {sample.dtype}")


def export_onnx(adapter: ExportableMaskRCNN, sample: torch.Tensor, path: str, opset: int = ONNX_OPSET) -> str:
    """Trace ``adapter`` on ``sample`` (B, H, W, 3) uint8 and write an ONNX model to ``path``; returns ``path``.

    Input "images" is dynamic in batch, height and width; every output in its detection count.
    """
    _check_sample(sample)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    adapter = adapter.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # the exporter warns about its own deprecation and about traced tensor-to-int
        # conversions that the adapter makes on purpose (constants of the model)
        warnings.simplefilter("ignore")
        torch.onnx.export(
            adapter,
            (sample,),
            path,
            dynamo=False,
            input_names=["images"],
            output_names=adapter.output_names,
            dynamic_axes=_dynamic_axes(adapter.output_names),
            opset_version=opset,
        )
    logger.info("Wrote the ONNX model (opset %d) to %s", opset, path)
    return path


def export_torchscript(adapter: ExportableMaskRCNN, sample: torch.Tensor, path: str) -> str:
    """Trace ``adapter`` on ``sample`` (B, H, W, 3) uint8 and save the TorchScript module to ``path``; returns ``path``.

    Loading it needs torch and torchvision's ops (``import torchvision`` in Python, or libtorchvision
    linked in C++), not mrcnn.
    """
    _check_sample(sample)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    adapter = adapter.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(adapter, (sample,), check_trace=False)
    traced.save(path)
    logger.info("Wrote the TorchScript model to %s", path)
    return path
