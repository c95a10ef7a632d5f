"""Small models, data and configs shared by the engine tests (imported by them; not a test file)."""

import os
import time
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from mrcnn.config import get_cfg
from mrcnn.engine import DefaultTrainer, HookBase

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTS_ENGINE_DIR = os.path.dirname(os.path.abspath(__file__))
SHAPES_CONFIG = os.path.join(REPO_ROOT, "configs", "shapes", "mask_rcnn_shapes.yaml")
SHAPES_ROOT_ENV = "MRCNN_TEST_TINY_SHAPES"

# Command-line overrides that shrink configs/shapes/mask_rcnn_shapes.yaml to a model and data that
# train at a few iterations per second on one CPU core: 64 px images, 2 per batch, narrow heads.
TINY_SHAPES_OPTS: List[str] = [
    "MODEL.DEVICE",
    "cpu",
    "MODEL.BACKBONE.FREEZE_AT",
    "5",  # frozen ResNet: backward through FPN and heads only (3x faster)
    "MODEL.PLUGINS",
    "['tiny_shapes_plugin']",
    "DATASETS.TRAIN",
    "('tinyshapes_train',)",
    "DATASETS.TEST",
    "()",
    "INPUT.MIN_SIZE_TRAIN",
    "(64,)",
    "INPUT.MAX_SIZE_TRAIN",
    "64",
    "INPUT.MIN_SIZE_TEST",
    "64",
    "INPUT.MAX_SIZE_TEST",
    "64",
    "MODEL.FPN.OUT_CHANNELS",
    "32",
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN",
    "200",
    "MODEL.RPN.POST_NMS_TOPK_TRAIN",
    "64",
    "MODEL.RPN.PRE_NMS_TOPK_TEST",
    "200",
    "MODEL.RPN.POST_NMS_TOPK_TEST",
    "32",
    "MODEL.RPN.BATCH_SIZE_PER_IMAGE",
    "64",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE",
    "32",
    "MODEL.ROI_BOX_HEAD.FC_DIM",
    "64",
    "MODEL.ROI_MASK_HEAD.NUM_CONV",
    "1",
    "MODEL.ROI_MASK_HEAD.CONV_DIM",
    "32",
    "SOLVER.IMS_PER_BATCH",
    "2",
    "SOLVER.BASE_LR",
    "0.01",
    "SOLVER.WARMUP_ITERS",
    "5",
    "SOLVER.STEPS",
    "()",
    "SOLVER.MAX_ITER",
    "20",
    "SOLVER.CHECKPOINT_PERIOD",
    "1000",
    "DATALOADER.NUM_WORKERS",
    "0",
    "TEST.EVAL_PERIOD",
    "0",
    "SEED",
    "0",
]


def tiny_shapes_cfg(output_dir: str, extra: Sequence[str] = ()):
    """The tiny shapes config writing to ``output_dir`` (not frozen)."""
    cfg = get_cfg()
    cfg.merge_from_file(SHAPES_CONFIG)
    cfg.merge_from_list(TINY_SHAPES_OPTS + ["OUTPUT_DIR", str(output_dir)] + list(extra))
    return cfg


def subprocess_env() -> Dict[str, str]:
    """Environment for child python processes: the plugin importable, one thread each."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([TESTS_ENGINE_DIR, REPO_ROOT, env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


# --- a toy detector-shaped model: list of dicts in, dict of losses out ----------------------------
class ToyModel(nn.Module):
    """conv + GroupNorm + linear head; loss is a deterministic function of the batch."""

    def __init__(self, nan_at_call: Optional[int] = None):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.GroupNorm(2, 8)
        self.head = nn.Linear(8, 1)
        self.nan_at_call = nan_at_call
        self.calls = 0

    def forward(self, batch: List[dict]) -> Dict[str, torch.Tensor]:
        images = torch.stack([item["image"] for item in batch]).float()
        targets = torch.tensor([item["target"] for item in batch], dtype=torch.float32)
        features = torch.relu(self.norm(self.conv(images))).mean(dim=(2, 3))
        prediction = self.head(features).squeeze(1)
        self.calls += 1
        losses = {
            "loss_fit": ((prediction - targets) ** 2).mean(),
            "loss_small": 0.01 * prediction.abs().mean(),
        }
        if self.nan_at_call is not None and self.calls == self.nan_at_call:
            losses["loss_fit"] = losses["loss_fit"] * float("nan")
        return losses


def toy_dataset(size: int = 32, seed: int = 0) -> List[dict]:
    """``size`` fixed 3x8x8 images whose target is their mean brightness."""
    generator = torch.Generator().manual_seed(seed)
    items = []
    for index in range(size):
        image = torch.rand(3, 8, 8, generator=generator)
        items.append({"image": image, "target": float(image.mean() * 4 - 2), "height": 8, "width": 8, "index": index})
    return items


def toy_loader(batch_size: int = 4, seed: int = 0, num_workers: int = 0):
    """An endless loader built like the detection train loader (sampler + batching dataset)."""
    from mrcnn.data import build_batch_data_loader
    from mrcnn.data.samplers import TrainingSampler

    dataset = toy_dataset()
    return build_batch_data_loader(
        dataset,
        TrainingSampler(len(dataset), seed=seed),
        batch_size,
        aspect_ratio_grouping=False,
        num_workers=num_workers,
    )


def toy_cfg(output_dir: str, extra: Sequence[str] = ()):
    """Solver/test settings for DefaultTrainer runs with the toy model."""
    cfg = get_cfg()
    cfg.merge_from_list(
        [
            "SOLVER.BASE_LR",
            "0.05",
            "SOLVER.MAX_ITER",
            "20",
            "SOLVER.WARMUP_ITERS",
            "4",
            "SOLVER.STEPS",
            "(8, 15)",
            "SOLVER.IMS_PER_BATCH",
            "4",
            "SOLVER.CHECKPOINT_PERIOD",
            "5",
            "SOLVER.BEST_CHECKPOINT.ENABLED",
            "False",
            "DATASETS.TRAIN",
            "()",
            "DATASETS.TEST",
            "()",
            "SEED",
            "0",
            "OUTPUT_DIR",
            str(output_dir),
        ]
        + list(extra)
    )
    return cfg


class ToyTrainer(DefaultTrainer):
    """DefaultTrainer with the toy model and loader; everything else (hooks, solver) is standard."""

    @classmethod
    def build_model(cls, cfg):
        return ToyModel()

    @classmethod
    def build_train_loader(cls, cfg):
        return toy_loader(batch_size=cfg.SOLVER.IMS_PER_BATCH, seed=cfg.SEED)


# --- distributed workers (module level, so spawned processes can import them) -------------------
class _GradientRecorder(HookBase):
    """Keeps a copy of every gradient right after the backward pass of the first iteration."""

    def __init__(self):
        self.gradients: Dict[str, torch.Tensor] = {}

    def after_backward(self) -> None:
        if self.trainer.iter == 0:
            module = getattr(self.trainer.model, "module", self.trainer.model)
            self.gradients = {name: p.grad.detach().clone() for name, p in module.named_parameters()}


def toy_training_run(batch: List[dict], num_iter: int = 3, lr: float = 0.1):
    """Train a freshly seeded toy model on the same ``batch`` (this rank's) for ``num_iter`` steps.

    Returns (first-iteration gradients, final weights, first-iteration recorded total_loss or None).
    """
    import itertools

    from mrcnn.engine import SimpleTrainer, create_ddp_model
    from mrcnn.engine.defaults import _NO_FORWARD_BUFFER_SYNC

    torch.manual_seed(0)
    model = ToyModel()
    trainer = SimpleTrainer(
        create_ddp_model(model, **_NO_FORWARD_BUFFER_SYNC),
        itertools.repeat(batch),
        torch.optim.SGD(model.parameters(), lr=lr),
    )
    recorder = _GradientRecorder()
    trainer.register_hooks([recorder])
    trainer.train(0, num_iter)
    history = trainer.storage.histories().get("total_loss")
    first_loss = history.values()[0][0] if history is not None else None
    return recorder.gradients, {k: v.clone() for k, v in model.state_dict().items()}, first_loss


def ddp_toy_worker(output_dir: str) -> None:
    """Each of 2 ranks trains on its half of 8 fixed samples; saves its gradients and weights."""
    from mrcnn.utils import comm

    rank, world_size = comm.get_rank(), comm.get_world_size()
    data = toy_dataset(8)
    per_rank = len(data) // world_size
    gradients, weights, first_loss = toy_training_run(data[rank * per_rank : (rank + 1) * per_rank])
    torch.save(
        {
            "gradients": gradients,
            "weights": weights,
            "first_loss": first_loss,
            "world_size": world_size,
            "local_rank": comm.get_local_rank(),
            "threads": torch.get_num_threads(),
        },
        os.path.join(output_dir, f"rank{rank}.pt"),
    )


class SignalAtIteration(HookBase):
    """Sends ``signum`` to this process ``times`` times after the backward pass of ``iteration``."""

    def __init__(self, iteration: int, signum: int, times: int = 1):
        self.iteration, self.signum, self.times = iteration, signum, times

    def after_backward(self) -> None:
        if self.trainer.iter == self.iteration:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)


def ddp_signalled_rank_worker(output_dir: str, signal_rank: int, signal_iteration: int) -> None:
    """ToyTrainer on every rank; rank ``signal_rank`` alone gets SIGTERM in ``signal_iteration``.

    Each rank writes where it stopped to ``rank{r}.pt`` before the interruption ends the process.
    """
    import signal

    from mrcnn.utils import comm

    trainer = ToyTrainer(toy_cfg(output_dir, ["SOLVER.MAX_ITER", "200", "SOLVER.CHECKPOINT_PERIOD", "1000"]))
    trainer.resume_or_load(resume=False)
    if comm.get_rank() == signal_rank:
        trainer.register_hooks([SignalAtIteration(signal_iteration, signal.SIGTERM)])
    try:
        trainer.train()
    finally:
        torch.save(
            {"iter": trainer.iter, "stopped_by": trainer.stopped_by, "checkpoint": trainer.stop_checkpoint},
            os.path.join(output_dir, f"rank{comm.get_rank()}.pt"),
        )


def rank_zero_fails_late_worker(marker_dir: str) -> None:
    """Rank 1 returns at once; rank 0 fails a moment later (after an evaluation, say)."""
    if torch.distributed.get_rank() == 0:
        time.sleep(1.0)
        raise ValueError("rank 0 failed on purpose")
    with open(os.path.join(marker_dir, "rank1_returned"), "w"):
        pass
