"""DefaultTrainer with the real (tiny) Mask R-CNN on shapes: learning, outputs, fine-tuning, hooks."""

import json
import logging
import os
import sys

import pytest
import torch
from engine_toys import REPO_ROOT, SHAPES_CONFIG, TINY_SHAPES_OPTS, tiny_shapes_cfg

from mrcnn.engine import DefaultTrainer, default_argument_parser
from mrcnn.utils.env import seed_all_rng

LOSS_NAMES = {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask"}


def test_training_lowers_the_loss_and_writes_metrics(tiny_shapes, tmp_path):
    cfg = tiny_shapes_cfg(tmp_path, ["SOLVER.MAX_ITER", "40", "SOLVER.BASE_LR", "0.02"])
    seed_all_rng(0)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    assert len(losses) == 40
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.75 * first, (first, last)
    lines = [json.loads(line) for line in (tmp_path / "metrics.json").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [19, 39]
    assert LOSS_NAMES | {"total_loss", "lr", "time", "data_time"} <= set(lines[-1])
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path))
    assert (tmp_path / "model_final.pth").exists()


def test_fine_tuning_with_another_class_count_skips_predictors(tiny_shapes, tmp_path, log_messages):
    source_cfg = tiny_shapes_cfg(tmp_path / "source", ["SOLVER.MAX_ITER", "2"])
    seed_all_rng(0)
    source = DefaultTrainer(source_cfg)
    source.train()
    weights = str(tmp_path / "source" / "model_final.pth")

    cfg = tiny_shapes_cfg(
        tmp_path / "tuned", ["MODEL.ROI_HEADS.NUM_CLASSES", "5", "MODEL.WEIGHTS", weights, "SOLVER.MAX_ITER", "3"]
    )
    messages = log_messages("mrcnn.checkpoint.detection_checkpoint", logging.INFO)
    tuned = DefaultTrainer(cfg)
    tuned.resume_or_load(resume=False)
    skipped_line = [m for m in messages if m.startswith("Skipped")]
    assert len(skipped_line) == 1
    saved = torch.load(weights, weights_only=True)["model"]
    model_state = tuned.model.state_dict()
    mismatched = sorted(k for k, v in saved.items() if k in model_state and v.shape != model_state[k].shape)
    # The class-dependent layers: box classifier and regressor, mask predictor.
    assert len(mismatched) == 6 and all(("cls_score" in k or "bbox_pred" in k or "predictor" in k) for k in mismatched)
    for key in mismatched:
        assert key in skipped_line[0]
    for key, value in saved.items():
        if key not in mismatched:
            assert torch.equal(model_state[key], value), key
    assert tuned.start_iter == 0
    tuned.train()
    losses = [v for v, _ in tuned.storage.history("total_loss").values()]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))


def test_hooks_with_test_sets_and_every_option(tiny_shapes, tmp_path):
    cfg = tiny_shapes_cfg(
        tmp_path,
        [
            "DATASETS.TEST",
            "('tinyshapes_val',)",
            "TEST.EVAL_PERIOD",
            "4",
            "TEST.VAL_LOSS_PERIOD",
            "2",
            "TEST.VAL_LOSS_NUM_IMAGES",
            "2",
            "SOLVER.EARLY_STOP.ENABLED",
            "True",
            "SOLVER.EARLY_STOP.METRIC",
            "validation_loss",
            "SOLVER.EARLY_STOP.MODE",
            "min",
            "SOLVER.MAX_ITER",
            "4",
        ],
    )
    trainer = DefaultTrainer(cfg)
    assert [type(h).__name__ for h in trainer.hooks] == [
        "IterationTimer",
        "LRScheduler",
        "ValidationLoss",
        "PeriodicCheckpointer",
        "EvalHook",
        "BestCheckpointer",
        "EarlyStopping",
        "PeriodicWriter",
    ]
    results = trainer.train()
    # The final evaluation ran once, its AP is a number, and it was written out.
    assert set(results) == {"bbox", "segm"}
    assert 0.0 <= results["bbox"]["AP"] <= 100.0
    assert trainer.storage.latest()["bbox/AP"][1] == 3
    assert [i for _, i in trainer.storage.history("validation_loss").values()] == [1, 3]
    on_disk = json.loads((tmp_path / "eval_results.json").read_text())
    assert on_disk["tinyshapes_val"]["bbox"]["AP"] == pytest.approx(results["bbox"]["AP"], nan_ok=True)
    assert (tmp_path / "model_best.pth").exists()


def test_test_without_evaluator_reports_count_and_speed(tiny_shapes, tmp_path):
    cfg = tiny_shapes_cfg(tmp_path, ["DATASETS.TEST", "('tinyshapes_val',)"])
    model = DefaultTrainer.build_model(cfg)
    model.train()

    class NoEvaluator(DefaultTrainer):
        @classmethod
        def build_evaluator(cls, cfg, dataset_name, output_folder=None):
            return None

    results = NoEvaluator.test(cfg, model)
    assert results["inference"]["num_images"] == 4
    assert results["inference"]["seconds_per_image"] > 0
    assert json.loads((tmp_path / "eval_results.json").read_text())["tinyshapes_val"]["inference"]["num_images"] == 4
    assert model.training  # put back in the mode it was in


def test_test_time_augmentation_is_evaluated_after_training_beside_the_plain_model(tiny_shapes, tmp_path):
    cfg = tiny_shapes_cfg(
        tmp_path,
        [
            "DATASETS.TEST",
            "('tinyshapes_val',)",
            "SOLVER.MAX_ITER",
            "2",
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
            "0.0",
            "TEST.AUG.ENABLED",
            "True",
            "TEST.AUG.MIN_SIZES",
            "(64, 80)",
            "TEST.AUG.MERGE",
            "average",
        ],
    )
    trainer = DefaultTrainer(cfg)
    assert [type(h).__name__ for h in trainer.hooks][3:6] == ["EvalHook", "EvalHook", "BestCheckpointer"]
    trainer.train()
    on_disk = json.loads((tmp_path / "eval_results.json").read_text())["tinyshapes_val"]
    assert set(on_disk) == {"bbox", "segm", "bbox_TTA", "segm_TTA"}  # the plain results kept
    assert all(0.0 <= on_disk[task]["AP"] <= 100.0 for task in on_disk if on_disk[task]["AP"] is not None)
    assert trainer.storage.latest()["bbox_TTA/AP"][1] == 1
    assert (tmp_path / "inference_TTA" / "tinyshapes_val" / "coco_instances_results.json").exists()
    assert (tmp_path / "inference" / "tinyshapes_val" / "coco_instances_results.json").exists()


def test_eval_only_with_two_test_sets_returns_plain_and_tta_results_of_each(tiny_shapes, tmp_path):
    sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))
    import train_net

    opts = TINY_SHAPES_OPTS + ["OUTPUT_DIR", str(tmp_path), "MODEL.WEIGHTS", ""]
    opts += ["DATASETS.TEST", "('tinyshapes_val', 'tinyshapes_train')", "TEST.AUG.ENABLED", "True"]
    opts += ["TEST.AUG.MIN_SIZES", "(64,)", "TEST.AUG.FLIP", "False", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]
    args = default_argument_parser().parse_args(["--config-file", SHAPES_CONFIG, "--eval-only", *opts])
    results = train_net.main(args)
    assert set(results) == {"tinyshapes_val", "tinyshapes_train"}
    for tasks in results.values():
        assert set(tasks) == {"bbox", "segm", "bbox_TTA", "segm_TTA"}
