"""Checkpoints: saving and resuming training state, and loading weights for fine-tuning."""

from fvcore.common.checkpoint import Checkpointer, PeriodicCheckpointer

from mrcnn.utils.atomic_save import atomic_torch_save, atomic_write, atomic_write_text

from .detection_checkpoint import EMA_CHECKPOINT_KEY, DetectionCheckpointer

__all__ = [
    "Checkpointer",
    "PeriodicCheckpointer",
    "DetectionCheckpointer",
    "EMA_CHECKPOINT_KEY",
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_text",
]
