"""detectron2's model zoo: ``get_config_file``, ``get_checkpoint_url``, ``get_config`` and ``get``,
called as detectron2 users call them."""

from .model_zoo import (
    ZOO_MODELS,
    ZooModel,
    available_configs,
    configs_dir,
    get,
    get_checkpoint_url,
    get_config,
    get_config_file,
)

__all__ = [
    "ZOO_MODELS",
    "ZooModel",
    "available_configs",
    "configs_dir",
    "get",
    "get_checkpoint_url",
    "get_config",
    "get_config_file",
]
