"""Export adapters: a trained Mask R-CNN as an ONNX or TorchScript graph of decoded images.

    adapter = ExportableMaskRCNN.from_config(cfg, model)   # model: a built GeneralizedRCNN
    export_onnx(adapter, sample, "out/model.onnx")          # sample: (B, H, W, 3) uint8
    export_torchscript(adapter, sample, "out/model.ts")

The graphs take (B, H, W, 3) uint8 images of any size in INPUT.FORMAT channel order and return
boxes, scores, classes, masks pasted at H x W, and the image index of each detection
(see exportable_model.py); ``tools/export_model.py`` is the command line.
"""

from .exportable_model import OUTPUT_NAMES, ExportableMaskRCNN, check_exportable
from .exporters import ONNX_OPSET, export_onnx, export_torchscript
from .grouped_nms import grouped_nms
from .model_card import MODEL_CARD_NAME, model_card, write_model_card
from .pillow_resize import pillow_bilinear_resize, resized_shortest_edge_size

__all__ = [
    "MODEL_CARD_NAME",
    "ONNX_OPSET",
    "OUTPUT_NAMES",
    "ExportableMaskRCNN",
    "check_exportable",
    "export_onnx",
    "export_torchscript",
    "grouped_nms",
    "model_card",
    "pillow_bilinear_resize",
    "resized_shortest_edge_size",
    "write_model_card",
]
