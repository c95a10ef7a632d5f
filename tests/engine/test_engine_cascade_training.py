"""detectron2's Cascade Mask R-CNN zoo config (configs/Misc, shrunk) trains on the shapes data."""

import math

import torch
from zoo_training_workers import zoo_cfg

from mrcnn.engine import DefaultTrainer
from mrcnn.modeling.roi_heads import CascadeROIHeads
from mrcnn.utils.env import seed_all_rng


def test_cascade_zoo_config_trains(tiny_shapes, tmp_path):
    cfg = zoo_cfg("cascade_mask_rcnn_R_50_FPN_1x.yaml", tmp_path, ["SOLVER.MAX_ITER", "3"])
    seed_all_rng(0)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    heads = trainer.model.roi_heads
    assert isinstance(heads, CascadeROIHeads) and heads.num_cascade_stages == 3
    initial = [predictor.bbox_pred.weight.detach().clone() for predictor in heads.box_predictor]
    trainer.train()
    histories = trainer.storage.histories()
    for stage in range(3):
        for name in ("loss_cls", "loss_box_reg"):
            values = [v for v, _ in histories[f"{name}_stage{stage}"].values()]
            assert len(values) == 3 and all(math.isfinite(v) for v in values), (name, stage)
        # every stage learned (its box regressor moved)
        assert not torch.equal(heads.box_predictor[stage].bbox_pred.weight, initial[stage]), stage
    assert "stage2/roi_head/num_fg_samples" in histories
    assert (tmp_path / "model_final.pth").exists()
