"""Measuring helpers and reference models for tools/benchmark.py and the parity tests.

This package sits at the top of the library, beside engine/: it may import any part of mrcnn,
and nothing in mrcnn imports it.
"""

from .coco_evaluation_timing import synthetic_coco_ground_truth, time_coco_evaluation
from .detections_agreement import detections_agreement, full_float32
from .dispatch_count import SYNCHRONIZING_OPERATORS, count_dispatches
from .flop_count import count_gflops
from .loader_throughput import measure_loader_throughput
from .model_pairs import (
    TORCHVISION_CONFIG,
    match_torchvision_settings,
    mrcnn_model_from_torchvision,
    torchvision_equivalent_config,
)
from .peak_memory import peak_memory_bytes
from .profiling import profile_top_ops, write_trace
from .synthetic_inputs import natural_image, synthetic_training_batch, to_torchvision_training_inputs
from .timing import matmul_gflops, summarize, synchronize, time_alternating
from .tiny_config import fpn_config, tiny_config
from .torchvision_reference import calibrated_torchvision_maskrcnn, freeze_batchnorms
from .training_agreement import training_step, training_step_agreement

__all__ = [
    "SYNCHRONIZING_OPERATORS",
    "TORCHVISION_CONFIG",
    "calibrated_torchvision_maskrcnn",
    "count_dispatches",
    "count_gflops",
    "detections_agreement",
    "fpn_config",
    "freeze_batchnorms",
    "full_float32",
    "match_torchvision_settings",
    "matmul_gflops",
    "measure_loader_throughput",
    "mrcnn_model_from_torchvision",
    "natural_image",
    "peak_memory_bytes",
    "profile_top_ops",
    "summarize",
    "synchronize",
    "synthetic_coco_ground_truth",
    "synthetic_training_batch",
    "time_alternating",
    "time_coco_evaluation",
    "tiny_config",
    "training_step",
    "training_step_agreement",
    "to_torchvision_training_inputs",
    "torchvision_equivalent_config",
    "write_trace",
]
