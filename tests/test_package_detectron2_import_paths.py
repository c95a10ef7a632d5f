"""The import paths of detectron2's tutorials and common user code resolve in mrcnn, with
``detectron2`` replaced by ``mrcnn``, to the library's own objects (aliases, not copies)."""

import importlib

import pytest

# (module, name) as detectron2 users write them: ``from detectron2.<module> import <name>``. First
# the getting-started tutorial (inference, a dict dataset, training, evaluation), then what custom
# components and scripts usually import.
DETECTRON2_IMPORTS = [
    ("utils.logger", "setup_logger"),
    ("model_zoo", "get_config_file"),
    ("model_zoo", "get_checkpoint_url"),
    ("model_zoo", "get_config"),
    ("model_zoo", "get"),
    ("engine", "DefaultPredictor"),
    ("config", "get_cfg"),
    ("utils.visualizer", "Visualizer"),
    ("utils.visualizer", "ColorMode"),
    ("data", "MetadataCatalog"),
    ("data", "DatasetCatalog"),
    ("structures", "BoxMode"),
    ("engine", "DefaultTrainer"),
    ("evaluation", "COCOEvaluator"),
    ("evaluation", "inference_on_dataset"),
    ("data", "build_detection_test_loader"),
    ("data.datasets", "register_coco_instances"),
    ("checkpoint", "DetectionCheckpointer"),
    ("modeling", "build_model"),
    ("utils.file_io", "PathManager"),
    ("modeling.anchor_generator", "DefaultAnchorGenerator"),
    ("modeling.anchor_generator", "ANCHOR_GENERATOR_REGISTRY"),
    ("modeling", "ANCHOR_GENERATOR_REGISTRY"),
    ("modeling", "BACKBONE_REGISTRY"),
    ("modeling", "Backbone"),
    ("modeling", "ShapeSpec"),
    ("modeling", "META_ARCH_REGISTRY"),
    ("modeling", "ROI_HEADS_REGISTRY"),
    ("modeling", "StandardROIHeads"),
    ("modeling", "detector_postprocess"),
    ("modeling.roi_heads", "CascadeROIHeads"),
    ("modeling.roi_heads.cascade_rcnn", "CascadeROIHeads"),
    ("modeling.roi_heads.fast_rcnn", "FastRCNNOutputLayers"),
    ("modeling.box_regression", "Box2BoxTransform"),
    ("modeling.matcher", "Matcher"),
    ("modeling.poolers", "ROIPooler"),
    ("modeling.backbone", "build_resnet_backbone"),
    ("modeling.backbone.fpn", "build_resnet_fpn_backbone"),
    ("modeling.meta_arch", "GeneralizedRCNN"),
    ("layers", "ShapeSpec"),
    ("layers", "get_norm"),
    ("layers", "FrozenBatchNorm2d"),
    ("layers", "Conv2d"),
    ("layers", "batched_nms"),
    ("data", "build_detection_train_loader"),
    ("data", "DatasetMapper"),
    ("data", "transforms"),
    ("data", "detection_utils"),
    ("data.samplers", "TrainingSampler"),
    ("engine", "HookBase"),
    ("engine", "hooks"),
    ("engine", "launch"),
    ("engine", "default_argument_parser"),
    ("engine", "default_setup"),
    ("engine.hooks", "PreciseBN"),
    ("evaluation", "DatasetEvaluator"),
    ("solver", "build_optimizer"),
    ("solver", "build_lr_scheduler"),
    ("utils", "comm"),
    ("utils.events", "EventStorage"),
    ("utils.events", "get_event_storage"),
    ("utils.registry", "Registry"),
    ("structures", "Boxes"),
    ("structures", "Instances"),
]


@pytest.mark.parametrize("module, name", DETECTRON2_IMPORTS, ids=[f"{m}.{n}" for m, n in DETECTRON2_IMPORTS])
def test_detectron2_import_resolves(module, name):
    imported = importlib.import_module(f"mrcnn.{module}")
    assert getattr(imported, name, None) is not None or importlib.import_module(f"mrcnn.{module}.{name}")


def test_aliases_are_the_library_objects():
    from mrcnn.modeling import anchor_generator, proposal_generator

    assert anchor_generator.DefaultAnchorGenerator is proposal_generator.DefaultAnchorGenerator
    assert anchor_generator.ANCHOR_GENERATOR_REGISTRY is proposal_generator.ANCHOR_GENERATOR_REGISTRY
    assert anchor_generator.build_anchor_generator is proposal_generator.build_anchor_generator


def test_path_manager_opens_local_files_and_knows_the_detectron2_prefix(tmp_path, monkeypatch):
    from iopath.common.file_io import HTTPURLHandler

    from mrcnn.utils.file_io import PathManager

    path = tmp_path / "sub" / "note.txt"
    PathManager.mkdirs(str(path.parent))
    with PathManager.open(str(path), "w") as f:
        f.write("hello")
    assert PathManager.exists(str(path)) and PathManager.get_local_path(str(path)) == str(path)
    with PathManager.open(str(path)) as f:
        assert f.read() == "hello"
    # detectron2:// paths are downloaded from detectron2's model zoo (no network here: the
    # download is replaced by a stand-in that reports its URL)
    monkeypatch.setattr(HTTPURLHandler, "_get_local_path", lambda self, url, **kwargs: f"downloaded {url}")
    assert PathManager.get_local_path("detectron2://ImageNetPretrained/MSRA/R-50.pkl") == (
        "downloaded https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MSRA/R-50.pkl"
    )
