"""detectron2's model zoo by name: its config files (ours, with the same settings) and its weights.

Names are paths relative to the configs directory, as detectron2 users write them:
``get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")``. The yaml files are
the repository's ``configs/`` directory, which the installed package carries as
``mrcnn/model_zoo/configs`` (see setup.py); in a source checkout they are read from ``configs/``.
"""

import difflib
import os
from typing import Dict, List, NamedTuple, Optional

import torch
from torch import nn

from mrcnn.checkpoint import DetectionCheckpointer
from mrcnn.config import CfgNode, get_cfg
from mrcnn.modeling import build_model

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


class ZooModel(NamedTuple):
    """A trained model of detectron2's zoo: its file under the zoo URL and its COCO val2017 AP."""

    file: str  # "<model id>/<file name>", below detectron2://<config name>/
    box_ap: float
    mask_ap: Optional[float]  # None for box-only models


# detectron2's MODEL_ZOO.md: Faster and Mask R-CNN models trained on COCO train2017.
ZOO_MODELS: Dict[str, ZooModel] = {
    "COCO-Detection/faster_rcnn_R_50_C4_1x": ZooModel("137257644/model_final_721ade.pkl", 35.7, None),
    "COCO-Detection/faster_rcnn_R_50_DC5_1x": ZooModel("137847829/model_final_51d356.pkl", 37.3, None),
    "COCO-Detection/faster_rcnn_R_50_FPN_1x": ZooModel("137257794/model_final_b275ba.pkl", 37.9, None),
    "COCO-Detection/faster_rcnn_R_50_C4_3x": ZooModel("137849393/model_final_f97cb7.pkl", 38.4, None),
    "COCO-Detection/faster_rcnn_R_50_DC5_3x": ZooModel("137849425/model_final_68d202.pkl", 39.0, None),
    "COCO-Detection/faster_rcnn_R_50_FPN_3x": ZooModel("137849458/model_final_280758.pkl", 40.2, None),
    "COCO-Detection/faster_rcnn_R_101_C4_3x": ZooModel("138204752/model_final_298dad.pkl", 41.1, None),
    "COCO-Detection/faster_rcnn_R_101_DC5_3x": ZooModel("138204841/model_final_3e0943.pkl", 40.6, None),
    "COCO-Detection/faster_rcnn_R_101_FPN_3x": ZooModel("137851257/model_final_f6e8b1.pkl", 42.0, None),
    "COCO-Detection/faster_rcnn_X_101_32x8d_FPN_3x": ZooModel("139173657/model_final_68b088.pkl", 43.0, None),
    "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_1x": ZooModel("137259246/model_final_9243eb.pkl", 36.8, 32.2),
    "COCO-InstanceSegmentation/mask_rcnn_R_50_DC5_1x": ZooModel("137260150/model_final_4f86c3.pkl", 38.3, 34.2),
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x": ZooModel("137260431/model_final_a54504.pkl", 38.6, 35.2),
    "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_3x": ZooModel("137849525/model_final_4ce675.pkl", 39.8, 34.4),
    "COCO-InstanceSegmentation/mask_rcnn_R_50_DC5_3x": ZooModel("137849551/model_final_84107b.pkl", 40.0, 35.9),
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x": ZooModel("137849600/model_final_f10217.pkl", 41.0, 37.2),
    "COCO-InstanceSegmentation/mask_rcnn_R_101_C4_3x": ZooModel("138363239/model_final_a2914c.pkl", 42.6, 36.7),
    "COCO-InstanceSegmentation/mask_rcnn_R_101_DC5_3x": ZooModel("138363294/model_final_0464b7.pkl", 41.9, 37.3),
    "COCO-InstanceSegmentation/mask_rcnn_R_101_FPN_3x": ZooModel("138205316/model_final_a3ec72.pkl", 42.9, 38.6),
    "COCO-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_3x": ZooModel("139653917/model_final_2d9806.pkl", 44.3, 39.5),
    "Misc/mask_rcnn_R_50_FPN_1x_dconv_c3-c5": ZooModel("138602867/model_final_65c703.pkl", 41.5, 37.5),
    "Misc/mask_rcnn_R_50_FPN_3x_dconv_c3-c5": ZooModel("144998336/model_final_821d0b.pkl", 42.7, 38.5),
    "Misc/cascade_mask_rcnn_R_50_FPN_1x": ZooModel("138602847/model_final_e9d89b.pkl", 42.1, 36.4),
    "Misc/cascade_mask_rcnn_R_50_FPN_3x": ZooModel("144998488/model_final_480dd8.pkl", 44.3, 38.5),
    "Misc/mask_rcnn_R_50_FPN_3x_syncbn": ZooModel("169527823/model_final_3b3c51.pkl", 41.9, 37.8),
    "Misc/mask_rcnn_R_50_FPN_3x_gn": ZooModel("138602888/model_final_dc5d9e.pkl", 42.6, 38.6),
    "Misc/scratch_mask_rcnn_R_50_FPN_3x_gn": ZooModel("138602908/model_final_01ca85.pkl", 39.9, 36.6),
    "Misc/scratch_mask_rcnn_R_50_FPN_9x_gn": ZooModel("183808979/model_final_da7b4c.pkl", 43.7, 39.6),
    "Misc/scratch_mask_rcnn_R_50_FPN_9x_syncbn": ZooModel("184226666/model_final_5ce33e.pkl", 43.6, 39.3),
    "Misc/cascade_mask_rcnn_X_152_32x8d_FPN_IN5k_gn_dconv": ZooModel("18131413/model_0039999_e76410.pkl", 50.2, 44.0),
}

_HERE = os.path.dirname(os.path.abspath(__file__))
_PACKAGED_CONFIGS = os.path.join(_HERE, "configs")
_CHECKOUT_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(_HERE)), "configs")


def configs_dir() -> str:
    """The directory holding the zoo's yaml files (installed package or source checkout)."""
    for candidate in (_PACKAGED_CONFIGS, _CHECKOUT_CONFIGS):
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(
        f"mrcnn's config files are missing: neither {_PACKAGED_CONFIGS} (installed package) nor "
        f"{_CHECKOUT_CONFIGS} (source checkout) exists; reinstall mrcnn."
    )


def available_configs() -> List[str]:
    """Every config file the zoo holds, as relative paths ("Misc/mask_rcnn_R_50_FPN_3x_gn.yaml", ...)."""
    root = configs_dir()
    found = []
    for directory, _, files in os.walk(root):
        for name in files:
            if name.endswith(".yaml"):
                found.append(os.path.relpath(os.path.join(directory, name), root).replace(os.sep, "/"))
    return sorted(found)


def _zoo_name(config_path: str) -> str:
    """'COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml' -> 'COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x'."""
    name = config_path.replace("\\", "/").strip("/")
    return name[: -len(".yaml")] if name.endswith(".yaml") else name


def get_config_file(config_path: str) -> str:
    """The path of a zoo config file given relative to the configs directory.

    Raises FileNotFoundError naming ``config_path`` and the closest available names.
    """
    path = os.path.join(configs_dir(), _zoo_name(config_path) + ".yaml")
    if not os.path.isfile(path):
        close = difflib.get_close_matches(_zoo_name(config_path) + ".yaml", available_configs(), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise FileNotFoundError(f"'{config_path}' is not a config of the model zoo ({configs_dir()}).{hint}")
    return path


def get_checkpoint_url(config_path: str) -> str:
    """The ``detectron2://`` address of the weights detectron2 trained with ``config_path``
    (MODEL.WEIGHTS accepts it; the file is downloaded once into the weights cache)."""
    name = _zoo_name(config_path)
    model = ZOO_MODELS.get(name)
    if model is None:
        trained = sorted(ZOO_MODELS)
        close = difflib.get_close_matches(name, trained, n=3, cutoff=0.5)
        hint = f" Closest with weights: {', '.join(close)}." if close else ""
        raise KeyError(f"detectron2's model zoo has no trained weights for '{config_path}'.{hint}")
    return f"detectron2://{name}/{model.file}"


def get_config(config_path: str, trained: bool = False) -> CfgNode:
    """The config of a zoo model: the defaults merged with its yaml file.

    ``trained`` sets MODEL.WEIGHTS to the zoo's trained weights; otherwise MODEL.WEIGHTS is what
    the file says (usually ImageNet weights for the backbone, the start of a training run).
    """
    cfg = get_cfg()
    cfg.merge_from_file(get_config_file(config_path))
    if trained:
        cfg.MODEL.WEIGHTS = get_checkpoint_url(config_path)
    return cfg


def get(config_path: str, trained: bool = False, device: Optional[str] = None) -> nn.Module:
    """A zoo model, built and in training mode, with MODEL.WEIGHTS loaded (see `get_config`).

    ``device``: where to put it; by default CUDA when available, else the CPU, as detectron2 does.
    """
    cfg = get_config(config_path, trained)
    cfg.MODEL.DEVICE = device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    return model
