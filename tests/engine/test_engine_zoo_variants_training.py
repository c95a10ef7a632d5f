"""The model-zoo architectures beyond R-FPN train on the shapes data with DefaultTrainer: C4
(Res5ROIHeads), DC5 (dilated res5), deformable and modulated deformable blocks, ResNeXt.

Each is the zoo config with narrow widths, trained a few iterations from random weights; the
checks are finite losses and that the architecture's own parameters learnt."""

import pytest
import torch

from mrcnn.engine import DefaultTrainer
from mrcnn.model_zoo import get_config
from mrcnn.utils.env import seed_all_rng

# Narrow widths (res2 32 channels, bottlenecks 8) and the tiny shapes data; the rest is the zoo file.
_TINY = [
    "MODEL.WEIGHTS",
    "",
    "MODEL.DEVICE",
    "cpu",
    "MODEL.PLUGINS",
    "['tiny_shapes_plugin']",
    "MODEL.BACKBONE.FREEZE_AT",
    "0",
    "MODEL.RESNETS.NORM",
    "BN",
    "MODEL.RESNETS.STEM_OUT_CHANNELS",
    "16",
    "MODEL.RESNETS.RES2_OUT_CHANNELS",
    "32",
    "MODEL.RESNETS.WIDTH_PER_GROUP",
    "8",
    "MODEL.FPN.OUT_CHANNELS",
    "32",
    "MODEL.ROI_HEADS.NUM_CLASSES",
    "3",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE",
    "32",
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN",
    "200",
    "MODEL.RPN.POST_NMS_TOPK_TRAIN",
    "32",
    "MODEL.RPN.BATCH_SIZE_PER_IMAGE",
    "64",
    "MODEL.ROI_BOX_HEAD.FC_DIM",
    "32",
    "MODEL.ROI_MASK_HEAD.CONV_DIM",
    "16",
    "DATASETS.TRAIN",
    "('tinyshapes_train',)",
    "DATASETS.TEST",
    "()",
    "INPUT.MIN_SIZE_TRAIN",
    "(64,)",
    "INPUT.MAX_SIZE_TRAIN",
    "64",
    "SOLVER.IMS_PER_BATCH",
    "2",
    "SOLVER.BASE_LR",
    "0.01",
    "SOLVER.WARMUP_ITERS",
    "0",
    "SOLVER.STEPS",
    "()",
    "SOLVER.MAX_ITER",
    "3",
    "SOLVER.CHECKPOINT_PERIOD",
    "1000",
    "DATALOADER.NUM_WORKERS",
    "0",
    "TEST.EVAL_PERIOD",
    "0",
    "SEED",
    "0",
]

# zoo config, extra overrides, parameters that must change (the architecture's own)
_VARIANTS = {
    "C4": ("COCO-InstanceSegmentation/mask_rcnn_R_50_C4_1x.yaml", [], ["roi_heads.res5.0.conv2.weight"]),
    "DC5": ("COCO-InstanceSegmentation/mask_rcnn_R_50_DC5_1x.yaml", [], ["backbone.res5.2.conv2.weight"]),
    "dconv": (
        "Misc/mask_rcnn_R_50_FPN_1x_dconv_c3-c5.yaml",
        [],
        ["backbone.bottom_up.res4.0.conv2_offset.weight", "backbone.bottom_up.res4.0.conv2.weight"],
    ),
    "modulated dconv": (
        "Misc/mask_rcnn_R_50_FPN_1x_dconv_c3-c5.yaml",
        ["MODEL.RESNETS.DEFORM_MODULATED", "True", "MODEL.RESNETS.DEFORM_NUM_GROUPS", "2"],
        ["backbone.bottom_up.res5.2.conv2_offset.weight", "backbone.bottom_up.res5.2.conv2_offset.bias"],
    ),
    "ResNeXt": (
        "COCO-Detection/faster_rcnn_X_101_32x8d_FPN_3x.yaml",
        ["MODEL.RESNETS.DEPTH", "50", "MODEL.RESNETS.NUM_GROUPS", "4", "MODEL.RESNETS.WIDTH_PER_GROUP", "2"],
        ["backbone.bottom_up.res3.0.conv2.weight"],
    ),
}


@pytest.mark.parametrize("variant", list(_VARIANTS))
def test_zoo_architecture_trains_on_shapes(variant, tiny_shapes, tmp_path):
    config_file, extra, learning = _VARIANTS[variant]
    cfg = get_config(config_file)
    cfg.merge_from_list(_TINY + extra + ["OUTPUT_DIR", str(tmp_path)])
    seed_all_rng(0)
    trainer = DefaultTrainer(cfg)
    before = {name: value.detach().clone() for name, value in trainer.model.named_parameters()}
    trainer.train()
    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    expected_losses = {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg"}
    if cfg.MODEL.MASK_ON:
        expected_losses.add("loss_mask")
    assert expected_losses <= set(trainer.storage.latest())
    parameters = dict(trainer.model.named_parameters())
    for name in learning:
        assert not torch.equal(parameters[name].detach(), before[name]), f"{name} did not train"
