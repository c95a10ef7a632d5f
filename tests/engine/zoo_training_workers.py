"""detectron2 zoo configs (configs/Misc) shrunk to train in seconds on the tiny shapes dataset, and
the distributed worker of the SyncBN tests (imported by spawned processes; not a test file)."""

import os
from typing import List, Sequence

import torch
from engine_toys import REPO_ROOT, TINY_SHAPES_OPTS

from mrcnn.config import get_cfg

# A narrow ResNet-50 (the zoo configs' depth) with the tiny shapes settings, from random weights.
TINY_R50_OPTS: List[str] = TINY_SHAPES_OPTS + [
    "MODEL.WEIGHTS", "",
    "MODEL.RESNETS.STEM_OUT_CHANNELS", "16",
    "MODEL.RESNETS.RES2_OUT_CHANNELS", "32",
    "MODEL.RESNETS.WIDTH_PER_GROUP", "8",
    "MODEL.ROI_HEADS.NUM_CLASSES", "3",
    "MODEL.ANCHOR_GENERATOR.SIZES", "[[8], [16], [32], [64], [128]]",
    "MODEL.ROI_BOX_HEAD.CONV_DIM", "32",
    "MODEL.ROI_MASK_HEAD.NUM_CONV", "2",
]  # fmt: skip


def zoo_cfg(name: str, output_dir: str, extra: Sequence[str] = ()):
    """configs/Misc/``name`` with TINY_R50_OPTS and ``extra``, writing to ``output_dir``."""
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(REPO_ROOT, "configs", "Misc", name))
    cfg.merge_from_list(TINY_R50_OPTS + ["OUTPUT_DIR", str(output_dir)] + list(extra))
    return cfg


def sync_batch_norm_worker(name: str, output_dir: str, extra: Sequence[str]) -> None:
    """On each rank: the toy SyncBatchNorm runs, then DefaultTrainer on the zoo config ``name`` with
    this rank's share of the batches; saves the toy results, every BatchNorm buffer and the losses."""
    from sync_batch_norm_toys import toy_sync_bn_runs

    from mrcnn.engine import DefaultTrainer
    from mrcnn.utils import comm

    toy_runs = toy_sync_bn_runs()
    cfg = zoo_cfg(name, output_dir, extra)
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    model = getattr(trainer.model, "module", trainer.model)
    norms = {
        name: type(module).__name__ for name, module in model.named_modules() if "BatchNorm" in type(module).__name__
    }
    buffers = {
        name: value.clone()
        for name, value in model.state_dict().items()
        if name.rpartition(".")[0] in norms and "running" in name
    }
    torch.save(
        {
            "norm_classes": norms,
            "buffers": buffers,
            # recorded by the main process only
            "total_loss": [value for value, _ in trainer.storage.histories().get("total_loss").values()]
            if comm.is_main_process()
            else None,
            "hooks": [type(hook).__name__ for hook in trainer._hooks],
            "toy_runs": toy_runs,
        },
        os.path.join(output_dir, f"rank{comm.get_rank()}.pt"),
    )
