"""mrcnn.model_zoo as detectron2 users call it: config files by zoo name, checkpoint URLs, configs
and built models; every zoo config parses; the README lists every trained model."""

import os

import pytest
import torch

from mrcnn import model_zoo
from mrcnn.checkpoint.weights_path import weights_url
from mrcnn.config import ConfigError, get_cfg

README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "README.md")
NAME = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"

# The architecture keys each family of zoo files must end up with (after _BASE_ and the defaults).
_FAMILIES = {
    "C4": {"BACKBONE.NAME": "build_resnet_backbone", "ROI_HEADS.NAME": "Res5ROIHeads", "RPN.IN_FEATURES": ["res4"]},
    "DC5": {"BACKBONE.NAME": "build_resnet_backbone", "RESNETS.RES5_DILATION": 2, "ROI_HEADS.IN_FEATURES": ["res5"]},
    "FPN": {"BACKBONE.NAME": "build_resnet_fpn_backbone", "RPN.IN_FEATURES": ["p2", "p3", "p4", "p5", "p6"]},
}


def _model_key(cfg, dotted):
    node = cfg.MODEL
    for part in dotted.split("."):
        node = node[part]
    return node


def test_getting_started_lines():
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(NAME))
    cfg.MODEL.WEIGHTS = model_zoo.get_checkpoint_url(NAME)
    assert (
        cfg.MODEL.WEIGHTS
        == "detectron2://COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x/137849600/model_final_f10217.pkl"
    )
    assert weights_url(cfg.MODEL.WEIGHTS) == (
        "https://dl.fbaipublicfiles.com/detectron2/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x/137849600/"
        "model_final_f10217.pkl"
    )
    assert cfg.MODEL.MASK_ON and cfg.SOLVER.MAX_ITER == 270000
    assert model_zoo.get_config(NAME, trained=True).MODEL.WEIGHTS == cfg.MODEL.WEIGHTS
    untrained = model_zoo.get_config(NAME)
    assert untrained.MODEL.WEIGHTS == "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
    assert model_zoo.get_config_file(NAME) == model_zoo.get_config_file(NAME[: -len(".yaml")])


@pytest.mark.parametrize("name", model_zoo.available_configs())
def test_every_zoo_config_parses_to_its_architecture(name):
    cfg = model_zoo.get_config(name)
    for family, keys in _FAMILIES.items():
        if f"_{family}_" in name or name.startswith(f"Base-RCNN-{family}"):
            for dotted, value in keys.items():
                assert _model_key(cfg, dotted) == value, (name, dotted)
    if "_X_1" in name:  # ResNeXt from Caffe2 weights
        assert cfg.MODEL.RESNETS.NUM_GROUPS == 32 and cfg.MODEL.RESNETS.WIDTH_PER_GROUP == 8
        assert not cfg.MODEL.RESNETS.STRIDE_IN_1X1
    if "_X_101_" in name:  # the X-152 file keeps std 1, as detectron2's does
        assert cfg.MODEL.PIXEL_STD == [57.375, 57.120, 58.395]
    if "dconv" in name:
        assert cfg.MODEL.RESNETS.DEFORM_ON_PER_STAGE == [False, True, True, True]
    if name.startswith(("COCO-", "Misc/")) and "torchvision" not in name:
        assert cfg.MODEL.MASK_ON == name.startswith(("COCO-InstanceSegmentation/", "Misc/"))
        zoo_name = name[: -len(".yaml")]
        if zoo_name in model_zoo.ZOO_MODELS:
            assert model_zoo.get_checkpoint_url(name).startswith(f"detectron2://{zoo_name}/")


def test_unknown_names_are_errors_that_suggest_the_closest():
    with pytest.raises(FileNotFoundError, match="mask_rcnn_R_50_FPN_3x.yaml"):
        model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_2x.yaml")
    with pytest.raises(KeyError, match="no trained weights for 'Misc/mask_rcnn_R_50_FPN_1x_cls_agnostic.yaml'"):
        model_zoo.get_checkpoint_url("Misc/mask_rcnn_R_50_FPN_1x_cls_agnostic.yaml")


def test_unsupported_zoo_keys_stay_errors_naming_the_key(tmp_path):
    retinanet = tmp_path / "retinanet.yaml"
    retinanet.write_text(
        f'_BASE_: "{model_zoo.get_config_file("Base-RCNN-FPN.yaml")}"\n'
        'MODEL:\n  META_ARCHITECTURE: "RetinaNet"\n  RETINANET:\n    NUM_CLASSES: 20\n'
    )
    with pytest.raises(ConfigError, match="MODEL.RETINANET.NUM_CLASSES"):
        get_cfg().merge_from_file(str(retinanet))


def test_get_builds_the_model_on_the_requested_device():
    model = model_zoo.get("shapes/mask_rcnn_shapes.yaml", device="cpu")
    assert model.training and model.device == torch.device("cpu")
    assert type(model.roi_heads).__name__.endswith("StandardROIHeads")
    with pytest.raises(KeyError, match="no trained weights"):
        model_zoo.get("shapes/mask_rcnn_shapes.yaml", trained=True)


def test_readme_lists_every_trained_zoo_model():
    text = open(README, encoding="utf-8").read()
    for name, model in model_zoo.ZOO_MODELS.items():
        url = model_zoo.get_checkpoint_url(name + ".yaml")
        assert url in text, name
        row = next(line for line in text.splitlines() if url in line)
        assert f"| {model.box_ap} |" in row, name
        if model.mask_ap is not None:
            assert f"| {model.mask_ap} |" in row, name
