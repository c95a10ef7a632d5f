"""Training engine: the hook-based loop, hooks, AMP, distributed launch and DefaultTrainer."""

from . import hooks
from .defaults import (
    DefaultTrainer,
    config_from_args,
    config_from_file,
    create_ddp_model,
    default_argument_parser,
    default_setup,
    default_writers,
    import_plugins,
)
from .launch import launch, started_by_torchrun, torchrun_restart_count
from .model_ema import ModelEMA
from .preemption import EXIT_CODE_INTERRUPTED, TrainingInterrupted
from .train_loop import AMPTrainer, HookBase, SimpleTrainer, TrainerBase


def __getattr__(name: str):
    # DefaultPredictor pulls in the whole model and data stack; importing it only when asked keeps
    # `import mrcnn.engine` light for processes that only train (each spawned rank imports it).
    if name == "DefaultPredictor":
        from .predictor import DefaultPredictor

        return DefaultPredictor
    raise AttributeError(f"module 'mrcnn.engine' has no attribute '{name}'")


__all__ = [
    "hooks",
    "HookBase",
    "TrainerBase",
    "SimpleTrainer",
    "AMPTrainer",
    "DefaultTrainer",
    "DefaultPredictor",
    "ModelEMA",
    "default_argument_parser",
    "default_setup",
    "default_writers",
    "config_from_args",
    "config_from_file",
    "create_ddp_model",
    "import_plugins",
    "launch",
    "started_by_torchrun",
    "torchrun_restart_count",
    "TrainingInterrupted",
    "EXIT_CODE_INTERRUPTED",
]
