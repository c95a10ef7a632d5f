"""The standard way to train: argument parser, config and process set-up, and DefaultTrainer.

Typical script (what tools/train_net.py does)::

    args = default_argument_parser().parse_args()
    launch(main, args.num_gpus, args.num_machines, args.machine_rank, args.dist_url, args=(args,))

    def main(args):
        cfg = config_from_args(args); cfg.freeze(); default_setup(cfg, args)
        trainer = DefaultTrainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        return trainer.train()
"""

import argparse
import inspect
import json
import logging
import os
import sys
import weakref
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import torch
from fvcore.nn.precise_bn import get_bn_modules
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mrcnn.checkpoint import EMA_CHECKPOINT_KEY, DetectionCheckpointer, atomic_write_text
from mrcnn.config import CfgNode, get_cfg
from mrcnn.solver import build_gradient_clipper, build_lr_scheduler, build_optimizer
from mrcnn.utils import comm
from mrcnn.utils.collect_env import collect_env_info
from mrcnn.utils.env import seed_all_rng, seed_from_rng_states
from mrcnn.utils.events import CommonMetricPrinter, EventWriter, JSONWriter, TensorboardXWriter
from mrcnn.utils.logger import setup_logger
from mrcnn.utils.plugins import add_plugin_configs, import_plugins, plugin_names_from_sources

from . import hooks
from .launch import torchrun_restart_count
from .model_ema import ModelEMA, averaged_weights
from .train_loop import AMPTrainer, SimpleTrainer, TrainerBase

__all__ = [
    "create_ddp_model",
    "default_argument_parser",
    "config_from_args",
    "config_from_file",
    "default_setup",
    "default_writers",
    "import_plugins",
    "DefaultTrainer",
]

logger = logging.getLogger(__name__)

_EPILOG = """Examples:

Train on one GPU (or one CPU process):
    $ {script} --config-file configs/shapes/mask_rcnn_shapes.yaml

Train with 8 GPUs on this machine (without CUDA: 8 CPU processes over gloo):
    $ {script} --num-gpus 8 --config-file cfg.yaml

Change config keys:
    $ {script} --config-file cfg.yaml MODEL.WEIGHTS /path/to/weight.pth SOLVER.BASE_LR 0.001

Evaluate a trained model:
    $ {script} --config-file cfg.yaml --eval-only MODEL.WEIGHTS /path/to/model_final.pth

Two machines:
    (machine0)$ {script} --machine-rank 0 --num-machines 2 --dist-url tcp://IP0:PORT [--other-flags]
    (machine1)$ {script} --machine-rank 1 --num-machines 2 --dist-url tcp://IP0:PORT [--other-flags]

Under torchrun (it sets RANK/WORLD_SIZE/LOCAL_RANK; --num-gpus is then ignored):
    $ torchrun --nproc-per-node 2 {script} --config-file cfg.yaml
Workers restarted by torchrun --max-restarts N continue from OUTPUT_DIR's last checkpoint.

SIGTERM or SIGINT: training stops after the iteration in flight, saves its checkpoint and exits
with status 75; --resume continues from it.
"""


def default_argument_parser(epilog: Optional[str] = None) -> argparse.ArgumentParser:
    """The command-line flags shared by training and evaluation scripts (detectron2's flags)."""
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "train_net.py"
    parser = argparse.ArgumentParser(
        epilog=epilog if epilog is not None else _EPILOG.format(script=script),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to the yaml config")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUTPUT_DIR/last_checkpoint if it exists (else start fresh); "
        "without it MODEL.WEIGHTS is loaded and training starts at iteration 0",
    )
    parser.add_argument(
        "--eval-only", action="store_true", help="only evaluate MODEL.WEIGHTS (or the last checkpoint with --resume)"
    )
    parser.add_argument(
        "--num-gpus",
        type=int,
        default=1,
        help="processes per machine: one per GPU; on a machine without CUDA, this many CPU processes over gloo",
    )
    parser.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    parser.add_argument("--machine-rank", type=int, default=0, help="rank of this machine (0 .. num-machines - 1)")
    parser.add_argument(
        "--dist-url",
        default="auto",
        help="rendezvous URL of machine 0, e.g. tcp://10.0.0.1:29500; 'auto' picks a free local port (one machine)",
    )
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="python module to import before building anything (repeatable); added to MODEL.PLUGINS",
    )
    parser.add_argument(
        "opts",
        default=None,
        nargs=argparse.REMAINDER,
        help="config overrides as KEY VALUE pairs, e.g. SOLVER.BASE_LR 0.01 MODEL.DEVICE cpu",
    )
    return parser


def config_from_file(
    config_file: str,
    opts: Sequence[Any] = (),
    *,
    plugins: Iterable[str] = (),
    overrides: Optional[Mapping[str, Any]] = None,
) -> CfgNode:
    """A command-line tool's config: defaults, plugin keys, ``config_file``, ``overrides``, then ``opts``.

    Plugins (MODEL.PLUGINS of the file or of ``opts``, and ``plugins``) are imported first, so a
    plugin's ``add_config(cfg)`` can add the keys its yaml sets; MODEL.PLUGINS ends up naming all
    of them. ``overrides`` ({dotted key: value}) holds what a tool's own flags set, applied before
    the KEY VALUE pairs of ``opts`` so that an explicit pair there wins. The result is not frozen.
    """
    cfg = get_cfg()
    opts = list(opts or [])
    names = plugin_names_from_sources(config_file, opts, plugins)
    add_plugin_configs(cfg, import_plugins(names))
    if config_file:
        cfg.merge_from_file(config_file)
    if overrides:
        cfg.merge_from_list([item for key_value in overrides.items() for item in key_value])
    cfg.merge_from_list(opts)
    cfg.MODEL.PLUGINS = names
    return cfg


def config_from_args(args: argparse.Namespace) -> CfgNode:
    """The config named by `default_argument_parser`'s ``args`` (`config_from_file` of its
    ``--config-file``, ``--plugin`` and KEY VALUE overrides); not frozen."""
    return config_from_file(
        getattr(args, "config_file", ""), getattr(args, "opts", None) or [], plugins=getattr(args, "plugin", None) or []
    )


def _shared_seed() -> int:
    seed = seed_all_rng(None) if comm.is_main_process() else 0
    return comm.all_gather(seed)[0]


def default_setup(cfg: CfgNode, args: Optional[argparse.Namespace] = None) -> None:
    """Per-process set-up: output dir, log file per rank, environment and config logged, the final
    config saved to ``OUTPUT_DIR/config.yaml``, plugins imported, generators seeded (SEED + rank)."""
    output_dir = cfg.OUTPUT_DIR
    rank = comm.get_rank()
    if comm.is_main_process() and output_dir:
        os.makedirs(output_dir, exist_ok=True)
    setup_logger(output_dir or None, distributed_rank=rank, name="fvcore")
    log = setup_logger(output_dir or None, distributed_rank=rank)
    log.info(f"Rank of current process: {rank}. World size: {comm.get_world_size()}")
    log.info("Environment info:\n" + collect_env_info())
    if args is not None:
        log.info(f"Command line arguments: {args}")
        config_file = getattr(args, "config_file", "")
        if config_file:
            with open(config_file, encoding="utf-8") as f:
                log.info(f"Contents of args.config_file={config_file}:\n{f.read()}")
    import_plugins(cfg.MODEL.PLUGINS)
    if comm.is_main_process() and output_dir:
        path = os.path.join(output_dir, "config.yaml")
        atomic_write_text(path, cfg.dump())
        log.info(f"Full config saved to {path}")
    # Seeds differ per rank (different augmentations per rank) and are reproducible from SEED.
    base_seed = cfg.SEED if cfg.SEED >= 0 else _shared_seed()
    seed_all_rng(base_seed + rank)
    log.info(f"Seeded the random generators of rank {rank} with {base_seed + rank}")
    if not (args is not None and getattr(args, "eval_only", False)):
        torch.backends.cudnn.benchmark = cfg.CUDNN_BENCHMARK


def default_writers(output_dir: str, max_iter: Optional[int] = None) -> List[EventWriter]:
    """Console printer, ``output_dir/metrics.json`` and TensorBoard event files in ``output_dir``."""
    os.makedirs(output_dir, exist_ok=True)
    return [
        CommonMetricPrinter(max_iter),
        JSONWriter(os.path.join(output_dir, "metrics.json")),
        TensorboardXWriter(output_dir),
    ]


def create_ddp_model(model: nn.Module, **kwargs: Any) -> nn.Module:
    """Wrap ``model`` in DistributedDataParallel when there are several processes; else return it."""
    if comm.get_world_size() == 1:
        return model
    first = next(model.parameters(), None)
    if first is not None and first.is_cuda and "device_ids" not in kwargs:
        kwargs["device_ids"] = [comm.get_local_rank()]
    return DistributedDataParallel(model, **kwargs)


# Newer torch renamed the flag (and deprecated the old name); both keep the initial broadcast.
_NO_FORWARD_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else {"broadcast_buffers": False}
)


def _amp_dtype(name: str) -> torch.dtype:
    dtypes = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if name not in dtypes:
        raise ValueError(f"SOLVER.AMP.DTYPE must be 'float16' or 'bfloat16'; got '{name}'.")
    return dtypes[name]


class DefaultTrainer(TrainerBase):
    """A trainer built entirely from a config: model, optimizer, lr schedule, data, checkpoints, hooks.

    Override the ``build_*`` classmethods to change a part; `build_hooks` lists the hooks in the
    order they run (see mrcnn.engine.hooks). Use::

        trainer = DefaultTrainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        results = trainer.train()   # the last evaluation results, if any
    """

    def __init__(self, cfg: CfgNode):
        super().__init__()
        if not logging.getLogger("mrcnn").isEnabledFor(logging.INFO):
            setup_logger()
        import_plugins(cfg.MODEL.PLUGINS)
        self.cfg = cfg
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        # Buffers are not synced at every forward: BatchNorm statistics stay per rank, as with SyncBN off.
        model = create_ddp_model(model, **_NO_FORWARD_BUFFER_SYNC)
        trainer_kwargs: Dict[str, Any] = {"grad_clipper": build_gradient_clipper(cfg)}
        if cfg.SOLVER.AMP.ENABLED:
            self._trainer: SimpleTrainer = AMPTrainer(
                model, data_loader, optimizer, precision=_amp_dtype(cfg.SOLVER.AMP.DTYPE), **trainer_kwargs
            )
        else:
            self._trainer = SimpleTrainer(model, data_loader, optimizer, **trainer_kwargs)
        self._trainer.after_backward = self.after_backward  # our hooks see the backward of the inner loop
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        # the average of the weights, evaluated instead of them (MODEL_EMA.ENABLED); None when off
        self.model_ema: Optional[ModelEMA] = ModelEMA(model, cfg.MODEL_EMA.DECAY) if cfg.MODEL_EMA.ENABLED else None
        checkpointables: Dict[str, Any] = {"trainer": weakref.proxy(self), "scheduler": self.scheduler}
        if self.model_ema is not None:
            checkpointables[EMA_CHECKPOINT_KEY] = self.model_ema
        self.checkpointer = DetectionCheckpointer(model, cfg.OUTPUT_DIR, **checkpointables)
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self._last_eval_results: Optional[Dict[str, Any]] = None
        self.register_hooks(self.build_hooks())

    # --- the inner loop ---------------------------------------------------------------------
    @property
    def model(self) -> nn.Module:
        """The model being trained (wrapped in DistributedDataParallel when distributed)."""
        return self._trainer.model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer."""
        return self._trainer.optimizer

    @property
    def data_loader(self) -> Any:
        """The training data loader."""
        return self._trainer.data_loader

    def run_step(self) -> None:
        self._trainer.iter = self.iter
        self._trainer.run_step()

    def _start_data_iterator(self) -> None:
        self._trainer._start_data_iterator()

    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["_trainer"] = self._trainer.state_dict()
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._trainer.load_state_dict(state["_trainer"])

    # --- checkpoints ----------------------------------------------------------------------------
    def resume_or_load(self, resume: bool = True) -> None:
        """With ``resume`` and a checkpoint in OUTPUT_DIR: restore everything and continue after its
        iteration. Otherwise load MODEL.WEIGHTS (model only; mismatched shapes are skipped) and
        start at iteration 0. A worker that torchrun restarted after a failure resumes whatever
        ``resume`` says (TORCHELASTIC_RESTART_COUNT > 0)."""
        restarts = torchrun_restart_count()
        if not resume and restarts > 0:
            logger.info(f"torchrun restarted the workers (TORCHELASTIC_RESTART_COUNT={restarts}): resuming.")
            resume = True
        if resume:
            self.checkpointer.remove_stale_temporaries()
        checkpoint = self.checkpointer.resume_or_load(self.cfg.MODEL.WEIGHTS, resume=resume)
        if resume and self.checkpointer.has_checkpoint():
            self.start_iter = self.iter + 1
            logger.info(f"Resuming from iteration {self.start_iter}")
            self._restore_rng_for_resume(checkpoint.get("rng_states"))
            _skip_consumed_samples(self.data_loader, self.start_iter)
        else:
            self.start_iter = 0

    def _restore_rng_for_resume(self, saved: Optional[List[Dict[str, Any]]]) -> None:
        if not saved:
            logger.info("The checkpoint holds no random generator states; they are not restored.")
            return
        rank = comm.get_rank()
        if rank < len(saved) and comm.get_world_size() == len(saved):
            self.restore_rng_states_at_start(saved[rank])
        else:
            # Another number of processes than when saved: reseed deterministically per rank.
            seed_all_rng(seed_from_rng_states(saved[0], rank))

    # --- the parts, overridable ----------------------------------------------------------------
    @classmethod
    def build_model(cls, cfg: CfgNode) -> nn.Module:
        """``mrcnn.modeling.build_model(cfg)``; logs the architecture."""
        from mrcnn.modeling import build_model

        model = build_model(cfg)
        logger.info(f"Model:\n{model}")
        return model

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
        """`mrcnn.solver.build_optimizer`."""
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg: CfgNode, optimizer: torch.optim.Optimizer) -> Any:
        """`mrcnn.solver.build_lr_scheduler`."""
        return build_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_train_loader(cls, cfg: CfgNode) -> Any:
        """``mrcnn.data.build_detection_train_loader(cfg)``."""
        from mrcnn.data import build_detection_train_loader

        return build_detection_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str) -> Any:
        """``mrcnn.data.build_detection_test_loader(cfg, dataset_name)``."""
        from mrcnn.data import build_detection_test_loader

        return build_detection_test_loader(cfg, dataset_name)

    @classmethod
    def build_validation_loss_loader(cls, cfg: CfgNode) -> Any:
        """Up to TEST.VAL_LOSS_NUM_IMAGES images of DATASETS.TEST[0] with their annotations, resized
        as at test time and without random augmentation, for the `ValidationLoss` hook."""
        from mrcnn.data import DatasetFromList, DatasetMapper, MapDataset, get_detection_dataset_dicts
        from mrcnn.data import transforms as T
        from mrcnn.data.build import trivial_batch_collator
        from mrcnn.data.samplers import InferenceSampler

        dicts = get_detection_dataset_dicts(cfg.DATASETS.TEST[0], filter_empty=True)[: cfg.TEST.VAL_LOSS_NUM_IMAGES]
        resize = T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice")
        # Training mode keeps the annotations the losses need; the only augmentation is the test resize.
        mapper = DatasetMapper(cfg, is_train=True, augmentations=[resize])
        dataset = MapDataset(DatasetFromList(dicts, copy=False), mapper)
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=1,
            sampler=InferenceSampler(len(dataset)),
            num_workers=0,
            collate_fn=trivial_batch_collator,
        )

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: Optional[str] = None) -> Any:
        """``mrcnn.evaluation.build_evaluator``."""
        from mrcnn.evaluation import build_evaluator

        return build_evaluator(cfg, dataset_name, output_folder)

    @classmethod
    def test(
        cls,
        cfg: CfgNode,
        model: nn.Module,
        evaluators: Optional[Union[Any, Sequence[Any]]] = None,
        *,
        task_suffix: str = "",
    ) -> Dict[str, Any]:
        """Run inference on every DATASETS.TEST set and evaluate it.

        Writes ``OUTPUT_DIR/eval_results.json`` as ``{dataset_name: results}`` and returns that dict,
        or, with a single test set, its results alone (so keys read like "bbox/AP"). A dataset
        without an evaluator reports the image count and seconds per image (`inference_speed`).
        With ``task_suffix`` (e.g. "_TTA") the tasks are renamed ("bbox_TTA"), the evaluators write
        under ``OUTPUT_DIR/inference{task_suffix}``, and the results join those in eval_results.json.
        """
        from mrcnn.evaluation import inference_on_dataset, inference_speed, json_safe

        if evaluators is not None and not isinstance(evaluators, (list, tuple)):
            evaluators = [evaluators]
        if evaluators is not None and len(evaluators) != len(cfg.DATASETS.TEST):
            raise ValueError(
                f"Got {len(evaluators)} evaluators for {len(cfg.DATASETS.TEST)} test sets (DATASETS.TEST)."
            )
        results: Dict[str, Any] = OrderedDict()
        for index, dataset_name in enumerate(cfg.DATASETS.TEST):
            data_loader = cls.build_test_loader(cfg, dataset_name)
            if evaluators is not None:
                evaluator = evaluators[index]
            else:
                try:
                    folder = None
                    if task_suffix:
                        folder = os.path.join(cfg.OUTPUT_DIR, f"inference{task_suffix}", dataset_name)
                    evaluator = cls.build_evaluator(cfg, dataset_name, folder)
                except NotImplementedError:
                    logger.warning(f"No evaluator for {dataset_name}; reporting inference speed only.")
                    evaluator = None
            if evaluator is None:
                results[dataset_name] = inference_speed(model, data_loader)
            else:
                results[dataset_name] = inference_on_dataset(model, data_loader, evaluator)
            if task_suffix and isinstance(results[dataset_name], Mapping):
                results[dataset_name] = {f"{task}{task_suffix}": value for task, value in results[dataset_name].items()}
            if comm.is_main_process():
                logger.info(f"Results on {dataset_name}: {json.dumps(json_safe(results[dataset_name]))}")
        if comm.is_main_process() and cfg.OUTPUT_DIR:
            os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
            path = os.path.join(cfg.OUTPUT_DIR, "eval_results.json")
            written: Dict[str, Any] = dict(results)
            if task_suffix and os.path.isfile(path):  # beside the plain results of the same sets
                with open(path, encoding="utf-8") as f:
                    earlier = json.load(f)
                written = {**earlier, **{name: {**earlier.get(name, {}), **value} for name, value in results.items()}}
            atomic_write_text(path, json.dumps(json_safe(written), indent=2))
        if len(results) == 1:
            return list(results.values())[0]
        return results

    @classmethod
    def test_with_TTA(cls, cfg: CfgNode, model: nn.Module) -> Dict[str, Any]:
        """`test` of the model under test-time augmentation (TEST.AUG), tasks named "bbox_TTA", ...."""
        from mrcnn.modeling.test_time_augmentation import GeneralizedRCNNWithTTA

        return cls.test(cfg, GeneralizedRCNNWithTTA(cfg, model), task_suffix="_TTA")

    def build_writers(self) -> List[EventWriter]:
        """Writers fed by the `PeriodicWriter` hook (see `default_writers`)."""
        return default_writers(self.cfg.OUTPUT_DIR, self.max_iter)

    def build_hooks(self) -> List[hooks.HookBase]:
        """The hooks, in the order they run (documented in mrcnn.engine.hooks)."""
        cfg = self.cfg
        has_test_sets = len(cfg.DATASETS.TEST) > 0
        result: List[Optional[hooks.HookBase]] = [hooks.IterationTimer(), hooks.LRScheduler()]
        if self.model_ema is not None:
            result.append(hooks.ModelEMAHook(self.model_ema))
        if cfg.TEST.PRECISE_BN.ENABLED and get_bn_modules(self.model):
            # a training loader of its own: its batches leave the training stream as it is
            loader = self.build_train_loader(cfg)
            result.append(
                hooks.PreciseBN(
                    cfg.TEST.EVAL_PERIOD, self.model, loader, cfg.TEST.PRECISE_BN.NUM_ITER, model_ema=self.model_ema
                )
            )
        if cfg.TEST.VAL_LOSS_PERIOD > 0 and has_test_sets:
            result.append(hooks.ValidationLoss(cfg.TEST.VAL_LOSS_PERIOD, self.build_validation_loss_loader(cfg)))
        result.append(
            hooks.PeriodicCheckpointer(
                self.checkpointer, cfg.SOLVER.CHECKPOINT_PERIOD, max_to_keep=cfg.SOLVER.MAX_CHECKPOINTS_TO_KEEP
            )
        )
        if has_test_sets:

            def test_and_save_results() -> Dict[str, Any]:
                with averaged_weights(self.model_ema):
                    self._last_eval_results = self.test(self.cfg, self.model)
                return self._last_eval_results

            result.append(hooks.EvalHook(cfg.TEST.EVAL_PERIOD, test_and_save_results))
            if cfg.TEST.AUG.ENABLED:

                def test_with_tta() -> Dict[str, Any]:
                    with averaged_weights(self.model_ema):
                        return self.test_with_TTA(self.cfg, self.model)

                result.append(hooks.EvalHook(0, test_with_tta))  # after training only, as detectron2
        best = cfg.SOLVER.BEST_CHECKPOINT
        if best.ENABLED and has_test_sets:
            result.append(hooks.BestCheckpointer(0, self.checkpointer, best.METRIC, best.MODE))
        stop = cfg.SOLVER.EARLY_STOP
        if stop.ENABLED:
            period = cfg.TEST.VAL_LOSS_PERIOD if stop.METRIC.startswith("validation") else cfg.TEST.EVAL_PERIOD
            result.append(hooks.EarlyStopping(stop.METRIC, stop.MODE, stop.PATIENCE, check_period=period))
        if comm.is_main_process():
            result.append(hooks.PeriodicWriter(self.build_writers(), period=20))
        return [hook for hook in result if hook is not None]

    def train(self) -> Optional[Dict[str, Any]]:
        """Train from ``start_iter`` to SOLVER.MAX_ITER; returns the last evaluation results (main process)."""
        super().train(self.start_iter, self.max_iter)
        return self._last_eval_results


def _skip_consumed_samples(data_loader: Any, start_iter: int) -> None:
    """Make the training loader continue where a run stopped at ``start_iter`` instead of from the start.

    Works on loaders from `build_detection_train_loader` (a batching dataset with ``sampler`` and
    ``batch_size``): the sampler's stream skips ``start_iter * batch_size`` indices, which costs no
    image loading. With a single loader process and all images of one orientation (or no aspect
    ratio grouping) the batches are then exactly those an uninterrupted run would have seen.
    """
    batched = getattr(data_loader, "dataset", None)
    sampler = getattr(batched, "sampler", None)
    batch_size = getattr(batched, "batch_size", None)
    if sampler is None or not isinstance(batch_size, int):
        logger.info("The training loader cannot be fast-forwarded; its data order restarts from the beginning.")
        return
    batched.sampler = _SkippingSampler(sampler, start_iter * batch_size)
    logger.info(f"Training data continues after the first {start_iter * batch_size} samples of this rank.")


class _SkippingSampler(torch.utils.data.Sampler):
    """The stream of ``sampler`` without its first ``skip`` indices."""

    def __init__(self, sampler: Any, skip: int):
        self._sampler = sampler
        self._skip = skip

    def __iter__(self):
        import itertools

        return itertools.islice(iter(self._sampler), self._skip, None)
