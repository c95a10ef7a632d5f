"""Whether a model's detections depend on float32 rounding: one model with random weights that
detect like a trained model's (mrcnn.benchmark.calibrated_model), run three ways on one image:

* ``fast``: float32 with the fast paths (folded norms, fused oneDNN kernels, channels-last);
* ``plain``: float32 with MODEL.FAST_PATHS False, op by op as the model files say;
* ``float64``: the plain model in double precision, the reference both are measured against.

It prints how many detections each float32 run shares with float64 (same class, box within
0.01 px, score within 1e-4), how far the backbone features are from float64, and for every
detection that is not shared why not: a box or score that moved, or another detection that took
its place (near-equal scores deciding NMS or the top 100). Usage:

    python tools/compare_precision.py --config-file COCO-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_3x.yaml
    python tools/compare_precision.py --config-file configs/Misc/mask_rcnn_R_50_FPN_3x_gn.yaml --height 480

--config-file takes a file or a model-zoo name; MODEL.WEIGHTS is ignored (the weights are random).
"""

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from mrcnn.benchmark import natural_image
from mrcnn.benchmark.calibrated_model import calibrated_model
from mrcnn.config import get_cfg
from mrcnn.model_zoo import get_config
from mrcnn.modeling import build_model
from mrcnn.structures import Instances, pairwise_iou


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, help="yaml file, or a model-zoo name such as Misc/...yaml")
    parser.add_argument("--height", type=int, default=512, help="image height (the config's test size applies)")
    parser.add_argument("--width", type=int, default=683, help="image width")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and of the image")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave the default)")
    parser.add_argument("--output", metavar="FILE.json", help="write the figures here too")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser


def load_config(config_file: str, opts: List[str]):
    """A config from a file path or a model-zoo name, on the CPU, without weights to load."""
    if os.path.isfile(config_file):
        cfg = get_cfg()
        cfg.merge_from_file(config_file)
    else:
        cfg = get_config(config_file)
    cfg.merge_from_list(list(opts) + ["MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu"])
    return cfg


def run_model(model: nn.Module, image: torch.Tensor, dtype: torch.dtype):
    """(backbone features, detections at the input size) of ``model`` on one (3, H, W) image."""
    inputs = [{"image": image}]
    with torch.no_grad():
        images = model.preprocess_image(inputs)
        images.tensor = images.tensor.to(dtype)
        features = model.backbone(images.tensor)
        proposals, _ = model.proposal_generator(images, features, None)
        detections, _ = model.roi_heads(images, features, proposals, None)
    return {name: value.double() for name, value in features.items()}, detections[0]


def shared_detections(ours: Instances, reference: Instances, box_tol: float = 0.01, score_tol: float = 1e-4):
    """Indices of ``ours`` that have a partner in ``reference`` (same class, box and score within
    tolerance), the partners' indices, and the largest box and score differences over the pairs."""
    box_diff = (ours.pred_boxes.tensor.double()[:, None] - reference.pred_boxes.tensor.double()[None]).abs().amax(2)
    score_diff = (ours.scores.double()[:, None] - reference.scores.double()[None]).abs()
    same_class = ours.pred_classes[:, None] == reference.pred_classes[None]
    match = same_class & (box_diff <= box_tol) & (score_diff <= score_tol)
    taken, shared, largest = set(), [], {"box": 0.0, "score": 0.0}
    for index in range(len(ours)):
        for partner in match[index].nonzero().flatten().tolist():
            if partner not in taken:
                taken.add(partner)
                shared.append(index)
                largest["box"] = max(largest["box"], float(box_diff[index, partner]))
                largest["score"] = max(largest["score"], float(score_diff[index, partner]))
                break
    return shared, taken, largest


def explain(ours: Instances, reference: Instances, shared: List[int], taken: set) -> List[Dict[str, Any]]:
    """For each detection of either run without a partner: what became of it."""
    reasons = []
    for name, these, others, kept in (("float32", ours, reference, set(shared)), ("float64", reference, ours, taken)):
        for index in range(len(these)):
            if index in kept:
                continue
            box = these.pred_boxes[index : index + 1]
            iou = pairwise_iou(box, others.pred_boxes)[0]
            same = others.pred_classes == these.pred_classes[index]
            best = int(torch.where(same, iou, torch.zeros_like(iou)).argmax()) if bool(same.any()) else -1
            entry = {
                "only_in": name,
                "score": float(these.scores[index]),
                "rank": index,
                "box": [round(float(v), 2) for v in box.tensor[0]],
                "area": float(box.area()[0]),
            }
            if best >= 0 and float(iou[best]) > 0.5:
                entry.update(
                    closest_same_class_iou=round(float(iou[best]), 4),
                    closest_score=float(others.scores[best]),
                    score_gap=float(these.scores[index] - others.scores[best]),
                )
            lowest = float(others.scores.min()) if len(others) else 0.0
            entry["below_other_runs_last_score_by"] = float(these.scores[index] - lowest)
            reasons.append(entry)
    return reasons


def relative_feature_error(features: Dict[str, torch.Tensor], reference: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """max |a - b| / max |b| of each feature map."""
    return {
        name: float((features[name] - reference[name]).abs().max() / reference[name].abs().max().clamp(min=1e-30))
        for name in reference
    }


def main(argv: Optional[List[str]] = None) -> int:
    """Run the comparison named on the command line and print its figures."""
    args = get_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config_file, args.opts)
    image = torch.from_numpy(natural_image(args.height, args.width, seed=args.seed)).permute(2, 0, 1).float()
    if cfg.INPUT.FORMAT == "BGR":
        image = image.flip(0)
    fast = calibrated_model(cfg, image, seed=args.seed)
    plain_cfg = cfg.clone()
    plain_cfg.MODEL.FAST_PATHS = False
    plain = build_model(plain_cfg).eval()
    plain.load_state_dict(fast.state_dict())
    features, detections = {}, {}
    for name, model, dtype in (("fast", fast, torch.float32), ("plain", plain, torch.float32)):
        features[name], detections[name] = run_model(model, image, dtype)
    plain.double()
    features["float64"], detections["float64"] = run_model(plain, image, torch.float64)

    report: Dict[str, Any] = {"config": args.config_file, "image": [args.height, args.width]}
    reference = detections["float64"]
    for name in ("fast", "plain"):
        shared, taken, largest = shared_detections(detections[name], reference)
        report[name] = {
            "detections": len(detections[name]),
            "shared_with_float64": len(shared),
            "largest_shared_box_difference_px": largest["box"],
            "largest_shared_score_difference": largest["score"],
            "feature_error_vs_float64": relative_feature_error(features[name], features["float64"]),
            "not_shared": explain(detections[name], reference, shared, taken),
        }
    shared, _, _ = shared_detections(detections["fast"], detections["plain"])
    report["fast_vs_plain_shared"] = len(shared)
    report["float64_detections"] = len(reference)
    print(json.dumps(report, indent=1))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
