#!/usr/bin/env python
"""Train a model from a yaml config, or evaluate one (--eval-only).

    python tools/train_net.py --config-file configs/shapes/mask_rcnn_shapes.yaml
    python tools/train_net.py --config-file F --num-gpus 2            # 2 GPUs, or 2 CPU processes
    python tools/train_net.py --config-file F --resume                # continue from OUTPUT_DIR
    python tools/train_net.py --config-file F --eval-only MODEL.WEIGHTS out/model_final.pth
    torchrun --nproc-per-node 2 tools/train_net.py --config-file F
    torchrun --nnodes 2 --nproc-per-node 8 --max-restarts 3 --rdzv-backend c10d \
        --rdzv-endpoint HOST:29500 --rdzv-id JOB tools/train_net.py --resume --config-file F

Everything lands in OUTPUT_DIR: log.txt, config.yaml, metrics.json, TensorBoard events,
checkpoints (model_XXXXXXX.pth, model_final.pth, model_best.pth, last_checkpoint) and
eval_results.json. Subclass `Trainer` here to change how a part is built.

Exit status: 0 when done; 75 when SIGTERM or SIGINT stopped training after the iteration in
flight, whose checkpoint --resume continues from; 1 on an error. Workers that torchrun restarted
(--max-restarts) resume from OUTPUT_DIR's last checkpoint without --resume.
"""

import logging

from mrcnn.checkpoint import DetectionCheckpointer
from mrcnn.engine import (
    DefaultTrainer,
    config_from_args,
    default_argument_parser,
    default_setup,
    launch,
)

logger = logging.getLogger("mrcnn.tools.train_net")


class Trainer(DefaultTrainer):
    """DefaultTrainer as is; override build_evaluator / build_train_loader / ... here."""


def setup(args):
    """The frozen config of this run, with logging, seeding and OUTPUT_DIR prepared."""
    cfg = config_from_args(args)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args):
    """Evaluate (--eval-only) or train; returns the evaluation results."""
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = Trainer.test(cfg, model)
        if cfg.TEST.AUG.ENABLED:
            tta = Trainer.test_with_TTA(cfg, model)
            if len(cfg.DATASETS.TEST) > 1:  # {dataset: tasks}: each set's TTA tasks beside its plain ones
                tta = {name: {**results[name], **tasks} for name, tasks in tta.items()}
            results.update(tta)
        return results
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def invoke_main() -> None:
    """Parse the command line and launch ``main`` in as many processes as asked."""
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    invoke_main()
