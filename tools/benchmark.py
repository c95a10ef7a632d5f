#!/usr/bin/env python
"""Benchmark inference, training, data loading and evaluation, optionally against torchvision.

    python tools/benchmark.py --task inference --compare torchvision
    python tools/benchmark.py --task train --compare torchvision --iters 10
    python tools/benchmark.py --config-file configs/shapes/mask_rcnn_shapes.yaml --task data
    python tools/benchmark.py --task eval --eval-images 500
    python tools/benchmark.py --task inference --compare onnxruntime --threads 2

--config-file defaults to the config that reproduces torchvision's maskrcnn_resnet50_fpn. Without
MODEL.WEIGHTS that config gets seeded weights calibrated on the benchmark image (realistic
activations, about 100 detections); --compare torchvision loads the same weights into torchvision's
model and times it on the same images in the same process, alternating the two every iteration.

inference: milliseconds per image at --height x --width after warm-up (median and spread), peak
memory, the model's FLOPs (fvcore) and the share of this machine's measured matmul rate they reach;
with --compare, torchvision's figures, the ratio and whether the detections agree.
--compare onnxruntime exports the model to ONNX and times ONNX Runtime (CPU, --threads intra-op
threads, --ort-opt-level) beside the eager model on the same image; --export-check adds agreement
of ONNX Runtime and TorchScript with eager on other sizes, an empty image and a batch of two.
train: seconds per iteration and images per second on synthetic batches (--batch-size images,
about 7 instances each), SGD, peak memory; with --compare, torchvision on the same batches; with
--compare-config FILE, the model of another config on the same batches, alternating (cascade
R50-FPN against the plain one: --config-file configs/Misc/cascade_mask_rcnn_R_50_FPN_1x.yaml
--compare-config configs/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml MODEL.WEIGHTS "",
since the zoo configs name ImageNet weights to download).
data: images per second of the training loader of DATASETS.TRAIN.
eval: COCOEvaluator seconds for --eval-images images of --dets-per-image predictions, per backend.
--count-ops (inference, train): operators one call or SGD step dispatches (called from Python or by
autograd, forward and backward, the optimizer's included) and its host synchronisation points
(.item(), nonzero, unique, ...), per model; on CUDA also kernel launches. The counts do not depend
on the machine's speed: they compare two models' host work without a GPU.

The last line printed is the headline figure; --output FILE.json gets everything.
"""

import argparse
import json
import os
import platform
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import torch
import torchvision
from torch import nn

from mrcnn.benchmark import (
    TORCHVISION_CONFIG,
    calibrated_torchvision_maskrcnn,
    count_dispatches,
    count_gflops,
    detections_agreement,
    full_float32,
    match_torchvision_settings,
    matmul_gflops,
    measure_loader_throughput,
    mrcnn_model_from_torchvision,
    natural_image,
    peak_memory_bytes,
    profile_top_ops,
    summarize,
    synthetic_training_batch,
    time_alternating,
    time_coco_evaluation,
    to_torchvision_training_inputs,
    training_step,
    training_step_agreement,
    write_trace,
)
from mrcnn.checkpoint import DetectionCheckpointer
from mrcnn.checkpoint.convert_torchvision import convert_torchvision_state_dict
from mrcnn.config import get_cfg
from mrcnn.data import build_detection_train_loader
from mrcnn.modeling import build_model

TASKS = ("inference", "train", "data", "eval")
ORT_OPT_LEVELS = ("disable", "basic", "extended", "all")
EVAL_BACKENDS = ("pycocotools", "faster_coco_eval")


def get_parser() -> argparse.ArgumentParser:
    """The command line of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default=TORCHVISION_CONFIG, metavar="FILE", help="yaml config")
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument(
        "--compare-config",
        metavar="FILE",
        help="train: also time the model of this yaml config (same overrides) on the same batches, "
        "alternating with --config-file's every iteration; ratio = --config-file's time / this one's",
    )
    parser.add_argument(
        "--compare",
        choices=["torchvision", "onnxruntime"],
        default=None,
        help="inference: also time torchvision's model, or the model exported to ONNX in ONNX Runtime",
    )
    parser.add_argument(
        "--ort-opt-level",
        choices=sorted(ORT_OPT_LEVELS),
        default="all",
        help="--compare onnxruntime: ONNX Runtime's graph optimisation level (default all)",
    )
    parser.add_argument(
        "--ort-profile", metavar="DIR", help="--compare onnxruntime: write ONNX Runtime's profile of one run to DIR"
    )
    parser.add_argument(
        "--class-logit-scale",
        type=float,
        default=1.0,
        help="--compare onnxruntime: multiply the box predictor's class logits by this before exporting; the "
        "calibrated weights saturate hundreds of scores to exactly 1.0, a tie that makes the top 100 arbitrary",
    )
    parser.add_argument(
        "--export-check",
        action="store_true",
        help="--compare onnxruntime: also check ONNX Runtime and TorchScript against eager on three other "
        "sizes, an image without detections and a batch of two",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations (per model)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first (per model)")
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--width", type=int, default=1067)
    parser.add_argument("--batch-size", type=int, default=2, help="train: images per iteration")
    parser.add_argument("--lr", type=float, default=0.005, help="train: SGD learning rate")
    parser.add_argument("--amp", action="store_true", help="train: mixed precision (CUDA)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave the default)")
    parser.add_argument("--no-flops", action="store_true", help="inference: skip the FLOP count")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument(
        "--count-ops",
        action="store_true",
        help="inference/train: also count the operators one call (one SGD step) dispatches and its host "
        "synchronisation points, per model (and kernel launches on CUDA)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="ROWS",
        help="inference/train: also profile one call per model and print its ROWS costliest operators",
    )
    parser.add_argument(
        "--check-losses",
        action="store_true",
        help="train with --compare torchvision: before timing, one step of both models from the same weights "
        "on the first batch (RPN sampling from one seed, every RoI candidate sampled, IEEE float32): "
        "losses and gradients against torchvision's, with the parity tests' tolerances",
    )
    parser.add_argument(
        "--trace",
        metavar="DIR",
        help="inference/train: also write a timeline of one call per model with Python stacks "
        "(DIR/NAME.json.gz, Chrome trace format; open in ui.perfetto.dev)",
    )
    parser.add_argument("--eval-images", type=int, default=100, help="eval: number of images")
    parser.add_argument("--dets-per-image", type=int, default=100, help="eval: predictions per image")
    parser.add_argument("--eval-backends", nargs="+", choices=EVAL_BACKENDS, default=list(EVAL_BACKENDS))
    parser.add_argument("--output", metavar="FILE.json", help="write every figure here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser


def _mrcnn_tensors(model: nn.Module, image: torch.Tensor) -> tuple:
    instances = model([{"image": image}])[0]["instances"]
    return instances.pred_boxes.tensor, instances.scores, instances.pred_classes, instances.pred_masks


def _torchvision_tensors(model: nn.Module, image: torch.Tensor) -> tuple:
    output = model([image / 255.0])[0]
    return output["boxes"], output["scores"], output["labels"], output["masks"]


# ---------------------------------------------------------------------------------------------
# models


def load_config(args: argparse.Namespace, config_file: Optional[str] = None):
    """The config file (default --config-file) with the command-line overrides and --device applied."""
    cfg = get_cfg()
    cfg.merge_from_file(config_file or args.config_file)
    cfg.merge_from_list(list(args.opts or []))
    cfg.MODEL.DEVICE = args.device
    return cfg


def build_models(cfg, calibration_image: torch.Tensor, compare: bool, spread_scores: bool) -> Dict[str, nn.Module]:
    """{"mrcnn": model[, "torchvision": model]} on cfg.MODEL.DEVICE, both holding the same weights.

    MODEL.WEIGHTS is loaded when set (and then there is nothing to compare against); otherwise the
    weights are seeded torchvision weights calibrated on ``calibration_image``. A config of another
    architecture (cascade heads, C4, ...) gets the calibrated tensors whose names and shapes it
    shares (the backbone, FPN, RPN, ...) and its own random initialisation for the rest, so that
    its activations are as realistic as those of the model it is compared with.
    """
    device = torch.device(cfg.MODEL.DEVICE)
    if cfg.MODEL.WEIGHTS:
        if compare:
            raise SystemExit("error: --compare torchvision makes its own weights; leave MODEL.WEIGHTS empty")
        model = build_model(cfg)
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
        return {"mrcnn": model}
    torchvision_model = calibrated_torchvision_maskrcnn(
        calibration_image, spread_scores=spread_scores, depth=cfg.MODEL.RESNETS.DEPTH
    )
    try:
        model = mrcnn_model_from_torchvision(torchvision_model, cfg)
    except (RuntimeError, KeyError, ValueError) as error:
        if compare:
            raise SystemExit(
                f"error: --compare torchvision needs a config with torchvision's architecture, such as "
                f"{os.path.relpath(TORCHVISION_CONFIG)}; loading its weights failed: {str(error)[:300]}"
            ) from error
        model = build_model(cfg)
        calibrated = convert_torchvision_state_dict(torchvision_model.state_dict())
        own = model.state_dict()
        shared = {k: v.to(device) for k, v in calibrated.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(shared, strict=False)
        print(f"  {len(shared)} of {len(own)} tensors from the calibrated torchvision weights, the others random")
    models = {"mrcnn": model}
    if compare:
        # torchvision resizes inside the model (to 800 px by default); ours expects the data
        # loader to have resized. Pin its sizes to the benchmark image's so both see the same pixels.
        height, width = calibration_image.shape[-2:]
        torchvision_model.transform.min_size = (int(min(height, width)),)
        torchvision_model.transform.max_size = int(max(height, width))
        models["torchvision"] = match_torchvision_settings(torchvision_model, cfg).to(device)
    return models


# ---------------------------------------------------------------------------------------------
# tasks


def benchmark_inference(args: argparse.Namespace, cfg) -> Dict[str, Any]:
    """Per-image inference time, memory, FLOPs (and agreement with torchvision) at height × width."""
    device = torch.device(args.device)
    height, width = args.height, args.width
    image = torch.from_numpy(natural_image(height, width, seed=3)).permute(2, 0, 1).float()
    models = build_models(cfg, image, args.compare is not None, spread_scores=True)
    for model in models.values():
        model.eval()
    image = image.to(device)
    image_01 = image / 255.0
    inputs = [{"image": image, "height": height, "width": width}]
    calls = {"mrcnn": lambda: models["mrcnn"](inputs)[0]["instances"]}
    tensor_calls = {"mrcnn": _mrcnn_tensors}
    if "torchvision" in models:
        calls["torchvision"] = lambda: models["torchvision"]([image_01])[0]
        tensor_calls["torchvision"] = _torchvision_tensors

    with torch.no_grad():
        seconds, outputs = time_alternating(calls, args.iters, args.warmup, device)
        memory = {} if args.no_memory else {name: peak_memory_bytes(call, device) for name, call in calls.items()}
        profiles = (
            {name: profile_top_ops(call, device, args.profile) for name, call in calls.items()} if args.profile else {}
        )
        dispatches = {name: count_dispatches(call, device) for name, call in calls.items()} if args.count_ops else {}
        traces = _write_traces(calls, device, args.trace)
    matmul_rate = matmul_gflops(device)
    results: Dict[str, Any] = {"height": height, "width": width, "matmul_gflops_per_second": matmul_rate}
    for name in calls:
        stats = summarize(seconds[name])
        entry = {
            "ms_per_image": 1000 * stats["median"],
            "ms_per_image_p25": 1000 * stats["p25"],
            "ms_per_image_p75": 1000 * stats["p75"],
            "ms_per_image_min": 1000 * stats["min"],
            "ms_per_image_max": 1000 * stats["max"],
            "iterations": stats["count"],
            "num_detections": len(outputs[name]) if name == "mrcnn" else len(outputs[name]["boxes"]),
        }
        if memory:
            entry["peak_memory_mb"] = memory[name] / 2**20
        if profiles:
            entry["profile"] = profiles[name]
        if name in traces:
            entry["trace_file"] = traces[name]
        if dispatches:
            entry["dispatches"] = dispatches[name]
        if not args.no_flops:
            gflops = count_gflops(models[name], tensor_calls[name], image)
            entry["gflops"] = gflops
            entry["achieved_gflops_per_second"] = gflops / stats["median"]
            entry["fraction_of_matmul_rate"] = gflops / stats["median"] / matmul_rate
        results[name] = entry
    if "torchvision" in models:
        results["ratio"] = results["mrcnn"]["ms_per_image"] / results["torchvision"]["ms_per_image"]
        if device.type == "cuda":
            # the timed calls ran with PyTorch's default TF32 convolutions; compare in float32
            with torch.no_grad(), full_float32(device):
                outputs = {name: call() for name, call in calls.items()}
        results["agreement"] = detections_agreement(outputs["mrcnn"], outputs["torchvision"])
    return results


def benchmark_inference_onnxruntime(args: argparse.Namespace, cfg) -> Dict[str, Any]:
    """Our eager model and its ONNX export in ONNX Runtime on the same image and threads, alternating."""
    import tempfile

    import numpy as np
    import onnxruntime

    from mrcnn.benchmark.export_agreement import export_agreement, split_by_image, worst_agreement
    from mrcnn.export import (
        ExportableMaskRCNN,
        export_onnx,
        export_torchscript,
        pillow_bilinear_resize,
        resized_shortest_edge_size,
    )

    if args.device != "cpu":
        raise SystemExit("error: --compare onnxruntime measures ONNX Runtime's CPU provider; use --device cpu")
    height, width = args.height, args.width
    pixels = natural_image(height, width, seed=3)
    image = torch.from_numpy(pixels).permute(2, 0, 1).float()
    model = build_models(cfg, image, False, spread_scores=True)["mrcnn"].eval()
    if args.class_logit_scale != 1.0:
        with torch.no_grad():
            model.roi_heads.box_predictor.cls_score.weight.mul_(args.class_logit_scale)
            model.roi_heads.box_predictor.cls_score.bias.mul_(args.class_logit_scale)
    adapter = ExportableMaskRCNN.from_config(cfg, model)
    directory = tempfile.mkdtemp(prefix="mrcnn_export_")
    onnx_path = os.path.join(directory, "model.onnx")
    start = time.perf_counter()
    export_onnx(adapter, torch.from_numpy(pixels)[None], onnx_path)
    export_seconds = time.perf_counter() - start

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    # ONNX Runtime's idle threads otherwise spin after each run and slow down the eager call that follows
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = {
        "disable": onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[args.ort_opt_level]
    session = onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    batch = pixels[None]
    # the eager model gets the image resized as the graph resizes it (outside the timed call, as
    # the predictor's resize is outside the model)
    if cfg.INPUT.MIN_SIZE_TEST > 0:
        sizes = resized_shortest_edge_size(
            torch.tensor(height), torch.tensor(width), cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST
        )
    else:
        sizes = (torch.tensor(height), torch.tensor(width))
    resized = pillow_bilinear_resize(torch.from_numpy(batch), *sizes, *sizes)[0].to(torch.uint8).permute(2, 0, 1)
    inputs = [{"image": resized.contiguous(), "height": height, "width": width}]
    calls = {
        "mrcnn": lambda: model(inputs)[0]["instances"],
        "onnxruntime": lambda: session.run(None, {"images": batch}),
    }
    with torch.no_grad():
        seconds, outputs = time_alternating(calls, args.iters, args.warmup, torch.device("cpu"))
    eager = outputs["mrcnn"]
    expected = {
        "boxes": eager.pred_boxes.tensor.numpy(),
        "scores": eager.scores.numpy(),
        "classes": eager.pred_classes.numpy(),
    }
    if eager.has("pred_masks"):
        expected["masks"] = eager.pred_masks.numpy()
    (got,) = split_by_image(outputs["onnxruntime"], adapter.output_names, 1)
    results: Dict[str, Any] = {
        "height": height,
        "width": width,
        "threads": torch.get_num_threads(),
        "ort_opt_level": args.ort_opt_level,
        "class_logit_scale": args.class_logit_scale,
        "eager_score_ties": int(len(expected["scores"]) - len(np.unique(expected["scores"]))),
        "onnx_file_mb": os.path.getsize(onnx_path) / 2**20,
        "export_seconds": export_seconds,
        "agreement": export_agreement(got, expected),
    }
    for name in calls:
        stats = summarize(seconds[name])
        results[name] = {
            "ms_per_image": 1000 * stats["median"],
            "ms_per_image_p25": 1000 * stats["p25"],
            "ms_per_image_p75": 1000 * stats["p75"],
            "iterations": stats["count"],
        }
    results["ratio"] = results["onnxruntime"]["ms_per_image"] / results["mrcnn"]["ms_per_image"]
    if args.ort_profile:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(args.ort_profile, "onnxruntime_profile")
        os.makedirs(args.ort_profile, exist_ok=True)
        profiled = onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        profiled.run(None, {"images": batch})
        results["ort_profile_file"] = profiled.end_profiling()
    if args.export_check:
        ts_path = export_torchscript(adapter, torch.from_numpy(pixels)[None], os.path.join(directory, "model.ts"))
        results["torchscript_file_mb"] = os.path.getsize(ts_path) / 2**20
        scripted = torch.jit.load(ts_path)
        short, long = min(height, width), max(height, width)
        cases = [
            ("tall", natural_image(long, short, seed=11)[None]),
            ("wide", natural_image(short // 2, long, seed=12)[None]),
            ("small", natural_image(short // 2, short // 2 + 40, seed=13)[None]),
            ("flat_grey", np.full((1, short // 2, short // 2, 3), 128, dtype=np.uint8)),
            ("batch_of_two", np.stack([natural_image(short, short, seed=14), natural_image(short, short, seed=15)])),
        ]

        def run_torchscript(images):
            with torch.no_grad():
                return [o.numpy() for o in scripted(torch.from_numpy(images))]

        min_size, max_size = cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST
        results["export_check"] = {
            "onnxruntime": worst_agreement(
                lambda images: session.run(None, {"images": images}),
                adapter.output_names,
                model,
                min_size,
                max_size,
                cases,
            ),
            "torchscript": worst_agreement(run_torchscript, adapter.output_names, model, min_size, max_size, cases),
        }
    return results


def _write_traces(
    calls: Dict[str, Callable[[], Any]], device: torch.device, directory: Optional[str]
) -> Dict[str, str]:
    """--trace: one profiled call per model written to DIRECTORY/NAME.json.gz; {name: path}."""
    if not directory:
        return {}
    return {name: write_trace(call, device, os.path.join(directory, name)) for name, call in calls.items()}


def benchmark_train(args: argparse.Namespace, cfg) -> Dict[str, Any]:
    """Seconds per SGD iteration on synthetic batches (and torchvision's on the same batches)."""
    device = torch.device(args.device)
    batches = [
        synthetic_training_batch(
            args.batch_size, args.height, args.width, num_classes=cfg.MODEL.ROI_HEADS.NUM_CLASSES, seed=index
        )
        for index in range(2)
    ]
    calibration = batches[0][0]["image"].float()
    models = build_models(cfg, calibration, args.compare is not None, spread_scores=False)
    if args.compare_config:
        other = load_config(args, args.compare_config)
        models["compare_config"] = build_models(other, calibration, False, spread_scores=False)["mrcnn"]
    torchvision_batches = [to_torchvision_training_inputs(batch) for batch in batches]
    torchvision_batches = [
        ([i.to(device) for i in images], [{k: v.to(device) for k, v in t.items()} for t in targets])
        for images, targets in torchvision_batches
    ]
    use_amp = bool(args.amp)
    if use_amp and device.type != "cuda":
        raise SystemExit("error: --amp needs --device cuda")
    agreement = None
    if args.check_losses:
        if "torchvision" not in models:
            raise SystemExit("error: --check-losses needs --compare torchvision")
        # before timing: the timed steps train both models apart
        with full_float32(device):
            step = training_step(models["torchvision"], models["mrcnn"], batches[0], fast_paths=True)
        agreement = training_step_agreement(step, loss_tolerance=1e-4)

    def make_step(name: str, model: nn.Module) -> Callable[[], float]:
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        # foreach: one multi-tensor update instead of a loop over parameters, for both models
        optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=1e-4, foreach=True)
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        counter = {"iteration": 0}

        def step() -> float:
            index = counter["iteration"] % len(batches)
            counter["iteration"] += 1
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                if name != "torchvision":
                    losses = model(batches[index])
                else:
                    losses = model(*torchvision_batches[index])
            loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            return float(loss.detach())

        return step

    steps = {name: make_step(name, model) for name, model in models.items()}
    seconds, losses = time_alternating(steps, args.iters, args.warmup, device)
    memory = {} if args.no_memory else {name: peak_memory_bytes(step, device) for name, step in steps.items()}
    profiles = (
        {name: profile_top_ops(step, device, args.profile) for name, step in steps.items()} if args.profile else {}
    )
    dispatches = {name: count_dispatches(step, device) for name, step in steps.items()} if args.count_ops else {}
    traces = _write_traces(steps, device, args.trace)
    results: Dict[str, Any] = {
        "batch_size": args.batch_size,
        "height": args.height,
        "width": args.width,
        "amp": use_amp,
        "instances_per_image": [len(item["instances"]) for batch in batches for item in batch],
    }
    for name in steps:
        stats = summarize(seconds[name])
        entry = {
            "seconds_per_iteration": stats["median"],
            "seconds_per_iteration_p25": stats["p25"],
            "seconds_per_iteration_p75": stats["p75"],
            "seconds_per_iteration_min": stats["min"],
            "seconds_per_iteration_max": stats["max"],
            "images_per_second": args.batch_size / stats["median"],
            "iterations": stats["count"],
            "last_loss": losses[name],
        }
        if memory:
            entry["peak_memory_mb"] = memory[name] / 2**20
        if profiles:
            entry["profile"] = profiles[name]
        if name in traces:
            entry["trace_file"] = traces[name]
        if dispatches:
            entry["dispatches"] = dispatches[name]
        results[name] = entry
    if "torchvision" in steps:
        results["ratio"] = results["mrcnn"]["seconds_per_iteration"] / results["torchvision"]["seconds_per_iteration"]
    if agreement is not None:
        results["loss_agreement"] = agreement
    if "compare_config" in steps:
        results["compare_config_file"] = os.path.relpath(args.compare_config)
        seconds_other = results["compare_config"]["seconds_per_iteration"]
        results["ratio"] = results["mrcnn"]["seconds_per_iteration"] / seconds_other
    return results


def benchmark_data(args: argparse.Namespace, cfg) -> Dict[str, Any]:
    """Images per second of the training loader of DATASETS.TRAIN."""
    try:
        loader = build_detection_train_loader(cfg)
    except (FileNotFoundError, KeyError, OSError) as error:
        raise SystemExit(
            f"error: cannot build the training loader of DATASETS.TRAIN {tuple(cfg.DATASETS.TRAIN)}: {error}\n"
            "(the synthetic dataset works anywhere: DATASETS.TRAIN \"('shapes_train',)\")"
        ) from error
    result = measure_loader_throughput(loader, num_batches=args.iters, warmup_batches=args.warmup)
    return {
        **result,
        "batch_size": cfg.SOLVER.IMS_PER_BATCH,
        "num_workers": cfg.DATALOADER.NUM_WORKERS,
        "datasets": list(cfg.DATASETS.TRAIN),
    }


def benchmark_eval(args: argparse.Namespace) -> Dict[str, Any]:
    """COCOEvaluator seconds per backend on the same synthetic predictions."""
    return {
        backend: time_coco_evaluation(args.eval_images, args.dets_per_image, backend) for backend in args.eval_backends
    }


# ---------------------------------------------------------------------------------------------
# report


def headline(task: str, results: Dict[str, Any]) -> str:
    """The one line a person or a script reads: the task's main figure(s)."""
    if task == "inference" and "onnxruntime" in results:
        agree = "yes" if results["agreement"]["agree"] else "NO"
        return (
            f"inference {results['height']}x{results['width']}, {results['threads']} threads: "
            f"mrcnn {results['mrcnn']['ms_per_image']:.1f} ms/image, onnxruntime "
            f"({results['ort_opt_level']}) {results['onnxruntime']['ms_per_image']:.1f} ms/image, "
            f"ratio {results['ratio']:.3f}, detections agree: {agree}"
        )
    if task == "inference":
        size = f"{results['height']}x{results['width']}"
        line = f"inference {size}: mrcnn {results['mrcnn']['ms_per_image']:.1f} ms/image"
        if "torchvision" in results:
            agree = "yes" if results["agreement"]["agree"] else "NO"
            line += (
                f", torchvision {results['torchvision']['ms_per_image']:.1f} ms/image, "
                f"ratio {results['ratio']:.3f}, detections agree: {agree}"
            )
        return line + dispatch_headline(results)
    if task == "train":
        line = (
            f"train {results['batch_size']}x{results['height']}x{results['width']}"
            f"{' amp' if results['amp'] else ''}: mrcnn {results['mrcnn']['seconds_per_iteration']:.3f} s/iter "
            f"({results['mrcnn']['images_per_second']:.2f} images/s)"
        )
        if "torchvision" in results:
            line += (
                f", torchvision {results['torchvision']['seconds_per_iteration']:.3f} s/iter "
                f"({results['torchvision']['images_per_second']:.2f} images/s), ratio {results['ratio']:.3f}"
            )
        if "loss_agreement" in results:
            agreement = results["loss_agreement"]
            line += (
                f", losses agree: {'yes' if agreement['agree'] else 'NO'} "
                f"(largest relative difference {agreement['max_relative_loss_difference']:.1e})"
            )
        if "compare_config" in results:
            line += (
                f", {results['compare_config_file']} {results['compare_config']['seconds_per_iteration']:.3f} s/iter, "
                f"ratio {results['ratio']:.3f}"
            )
        return line + dispatch_headline(results)
    if task == "data":
        return f"data: {results['images_per_second']:.1f} images/s"
    parts = [f"{backend} {r['total_seconds']:.2f} s" for backend, r in results.items()]
    first = next(iter(results.values()))
    return f"eval {first['num_images']} images x {first['dets_per_image']} detections: " + ", ".join(parts)


def dispatch_headline(results: Dict[str, Any]) -> str:
    """ "; operators (host syncs) per call: mrcnn N (S), torchvision M (T)" when they were counted."""
    counted = [
        (name, results[name]["dispatches"])
        for name in ("mrcnn", "torchvision", "compare_config")
        if isinstance(results.get(name), dict) and "dispatches" in results[name]
    ]
    if not counted:
        return ""
    parts = []
    for name, counts in counted:
        part = f"{name} {counts['operators']}"
        if counts.get("region_calls"):
            part += f" [{counts['operators_regions_as_one']} with each of our kernel regions as one]"
        parts.append(f"{part} ({counts['host_syncs']})")
    return "; operators (host syncs) per call: " + ", ".join(parts)


def details(task: str, results: Dict[str, Any]) -> List[str]:
    """Lines with the secondary figures, printed before the headline."""
    lines = []
    for name in ("mrcnn", "torchvision", "onnxruntime", "compare_config"):
        entry = results.get(name)
        if not isinstance(entry, dict):
            continue
        figures = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in entry.items()
            if k not in ("profile", "dispatches")
        )
        lines.append(f"  {name}: {figures}")
        if "dispatches" in entry:
            lines.extend(dispatch_lines(name, entry["dispatches"]))
        if "profile" in entry:
            lines.extend(profile_lines(name, entry["profile"]))
    if task == "inference" and "onnxruntime" in results:
        lines.append(f"  ONNX file {results['onnx_file_mb']:.1f} MiB, exported in {results['export_seconds']:.1f} s")
        if "torchscript_file_mb" in results:
            lines.append(f"  TorchScript file {results['torchscript_file_mb']:.1f} MiB")
        if "ort_profile_file" in results:
            lines.append(f"  ONNX Runtime profile: {results['ort_profile_file']}")
        for runtime, cases in results.get("export_check", {}).items():
            for case, reports in cases.items():
                for index, report in enumerate(reports):
                    lines.append(
                        f"  {runtime} {case}[{index}]: "
                        + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in report.items())
                    )
    elif task == "inference":
        lines.append(f"  matmul rate: {results['matmul_gflops_per_second']:.1f} GFLOP/s")
        if "agreement" in results:
            lines.append("  agreement: " + ", ".join(f"{k} {v}" for k, v in results["agreement"].items()))
    return lines


def dispatch_lines(name: str, counts: Dict[str, Any]) -> List[str]:
    """A count_dispatches report as indented text."""
    line = f"  {name} dispatches: {counts['operators']} operators, {counts['host_syncs']} host syncs"
    if counts["host_syncs_by_operator"]:
        line += " (" + ", ".join(f"{k} {v}" for k, v in counts["host_syncs_by_operator"].items()) + ")"
    for region, count in counts.get("operators_in_regions", {}).items():
        calls = counts.get("region_calls", {}).get(region, 0)
        line += f"; {count} of the operators inside {region} ({calls} calls)"
    if counts.get("region_calls"):
        line += f"; {counts['operators_regions_as_one']} operators with each region call as one"
    if "kernel_launches" in counts:
        line += f", {counts['kernel_launches']} kernel launches, {counts['cuda_host_waits']} CUDA host waits"
    most = ", ".join(f"{op} {count}" for op, count in counts["most_dispatched"][:10])
    return [line, f"    most dispatched: {most}"]


def profile_lines(name: str, profile: Dict[str, Any]) -> List[str]:
    """A profile_top_ops report as indented text: host operators, then GPU kernels, then host waits."""
    lines = [f"  {name} profile of one call: {profile['wall_seconds'] * 1000:.1f} ms wall"]
    for side in ("host", "device"):
        if side in profile:
            lines.append(f"    self time on the {side}:")
            lines.extend(f"      {op['self_ms']:9.2f} ms {op['calls']:6d}x  {op['name'][:90]}" for op in profile[side])
    if profile.get("host_waits"):
        lines.append("    host waits: " + ", ".join(f"{k} {v}x" for k, v in profile["host_waits"].items()))
    return lines


def environment(args: argparse.Namespace) -> Dict[str, Any]:
    """What the figures were measured on."""
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": args.device,
        "torchvision": torchvision.__version__,
    }
    if args.device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    return info


def main(argv: Optional[List[str]] = None) -> int:
    """Run the task named on the command line, print its figures and return the exit status."""
    args = get_parser().parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        raise SystemExit("error: --iters must be at least 1 and --warmup at least 0")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but CUDA is not available here")
    if not os.path.isfile(args.config_file):
        raise SystemExit(f"error: config file not found: {args.config_file}")
    if args.compare_config and (args.task != "train" or args.compare):
        raise SystemExit("error: --compare-config goes with --task train, without --compare")
    if args.compare_config and not os.path.isfile(args.compare_config):
        raise SystemExit(f"error: config file not found: {args.compare_config}")
    torch.manual_seed(0)
    if args.task == "eval":
        results = benchmark_eval(args)
    else:
        cfg = load_config(args)
        task = {"inference": benchmark_inference, "train": benchmark_train, "data": benchmark_data}[args.task]
        if args.task == "inference" and args.compare == "onnxruntime":
            task = benchmark_inference_onnxruntime
        results = task(args, cfg)
    report = {
        "task": args.task,
        "config_file": os.path.relpath(args.config_file),
        "compare": args.compare,
        "environment": environment(args),
        "results": results,
        "headline": headline(args.task, results),
    }
    for line in details(args.task, results):
        print(line)
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
        print(f"  wrote {args.output}")
    print(report["headline"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
