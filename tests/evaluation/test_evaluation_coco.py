"""COCOEvaluator: AP of perfect and perturbed predictions, backends, ranks, empty input, json-less datasets."""

import contextlib
import io
import json
import logging
import math
import os
import socket
import uuid

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mrcnn.config import get_cfg
from mrcnn.data import DatasetCatalog, MetadataCatalog
from mrcnn.data.datasets import register_coco_instances
from mrcnn.evaluation import (
    EVALUATOR_REGISTRY,
    COCOEvaluator,
    DatasetEvaluator,
    build_evaluator,
    convert_to_coco_json,
    json_safe,
)
from mrcnn.evaluation.coco_evaluation import encode_masks_as_rle
from mrcnn.structures import Boxes, Instances

# pycocotools' decode trips a numpy 2 deprecation warning that is not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

HEIGHT, WIDTH = 96, 128
# non-contiguous ids, and one category ("unused") without any annotation
CATEGORIES = [
    {"id": 1, "name": "disk"},
    {"id": 3, "name": "box"},
    {"id": 7, "name": "wedge"},
    {"id": 9, "name": "unused"},
]
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


# --------------------------------------------------------------------------------------------
# a tiny COCO json: polygons, compressed RLEs and a crowd region; small, medium and large objects
def _ellipse_mask(cx, cy, rx, ry):
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    return ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1


def _rle_of(mask):
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _annotation(image_id, category_id, segmentation, iscrowd=0):
    rle = (
        segmentation
        if isinstance(segmentation, dict)
        else mask_util.merge(mask_util.frPyObjects(segmentation, HEIGHT, WIDTH))
    )
    return {
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": segmentation,
        "bbox": [float(v) for v in mask_util.toBbox(rle)],
        "area": float(mask_util.area(rle)),
        "iscrowd": iscrowd,
    }


def _tiny_coco():
    anns = [
        # image 1: a large box polygon, a small disk (RLE), a medium wedge (polygon)
        _annotation(1, 3, [[5, 3, 118, 3, 118, 93, 5, 93]]),  # 113 x 90: large
        _annotation(1, 1, _rle_of(_ellipse_mask(20, 20, 8, 7))),  # small
        _annotation(1, 7, [[60, 30, 100, 30, 80, 75]]),  # medium triangle
        # image 2: two medium disks (polygon with a hole-free ring + RLE), a small box, a crowd region
        _annotation(2, 1, [[30, 20, 50, 25, 55, 45, 35, 55, 20, 40]]),
        _annotation(2, 1, _rle_of(_ellipse_mask(90, 60, 20, 15))),
        _annotation(2, 3, [[100, 5, 120, 5, 120, 22, 100, 22]]),
        _annotation(2, 3, _rle_of(_ellipse_mask(15, 80, 12, 10)), iscrowd=1),
        # image 3: a wedge made of two polygons, a medium box
        _annotation(3, 7, [[10, 10, 40, 10, 25, 40], [45, 10, 70, 10, 57, 35]]),
        _annotation(3, 3, [[70, 50, 120, 50, 120, 90, 70, 90]]),
        # image 4: no annotation at all (a pure background image)
    ]
    for i, ann in enumerate(anns):
        ann["id"] = i + 1
    images = [{"id": i, "file_name": f"{i}.jpg", "height": HEIGHT, "width": WIDTH} for i in (1, 2, 3, 4)]
    return {"images": images, "annotations": anns, "categories": CATEGORIES}


@pytest.fixture(scope="module")
def tiny_coco(tmp_path_factory):
    """(dataset name, json path, coco dict) of a registered tiny COCO dataset."""
    root = tmp_path_factory.mktemp("tiny_coco")
    coco = _tiny_coco()
    json_path = str(root / "instances.json")
    with open(json_path, "w") as f:
        json.dump(coco, f)
    name = f"tiny_coco_{uuid.uuid4().hex[:6]}"
    register_coco_instances(name, {}, json_path, str(root))
    return name, json_path, coco


def _gt_masks(coco, image_id):
    anns = [a for a in coco["annotations"] if a["image_id"] == image_id and not a["iscrowd"]]
    masks = []
    for ann in anns:
        segm = ann["segmentation"]
        rle = segm if isinstance(segm, dict) else mask_util.merge(mask_util.frPyObjects(segm, HEIGHT, WIDTH))
        masks.append(mask_util.decode(rle).astype(bool))
    return anns, masks


def _instances(boxes_xyxy, scores, classes, masks=None):
    instances = Instances((HEIGHT, WIDTH))
    instances.pred_boxes = Boxes(torch.tensor(np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)))
    instances.scores = torch.tensor(scores, dtype=torch.float32)
    instances.pred_classes = torch.tensor(classes, dtype=torch.int64)
    if masks is not None:
        instances.pred_masks = torch.from_numpy(np.asarray(masks, dtype=bool).reshape(-1, HEIGHT, WIDTH))
    return instances


def _contiguous(category_id):
    return [c["id"] for c in CATEGORIES].index(category_id)


def _ground_truth_predictions(coco, image_id, with_masks=True):
    anns, masks = _gt_masks(coco, image_id)
    boxes = [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns]
    classes = [_contiguous(a["category_id"]) for a in anns]
    return _instances(boxes, [1.0] * len(anns), classes, masks if with_masks else None)


def _perturbed_predictions(coco, image_id, seed=0):
    """Shifted, resized, misclassified and missed copies of the ground truth plus false positives."""
    rng = np.random.default_rng(seed * 1000 + image_id)
    anns, gt_masks = _gt_masks(coco, image_id)
    boxes, scores, classes, masks = [], [], [], []
    for ann, mask in zip(anns, gt_masks):
        if rng.uniform() < 0.15:
            continue  # missed
        x, y, w, h = ann["bbox"]
        dx, dy = rng.integers(-4, 5, size=2)
        grow = rng.uniform(-0.15, 0.15, size=2)
        boxes.append([x + dx - grow[0] * w, y + dy - grow[1] * h, x + w + dx + grow[0] * w, y + h + dy + grow[1] * h])
        masks.append(np.roll(mask, (int(dy), int(dx)), axis=(0, 1)))
        classes.append(_contiguous(ann["category_id"]) if rng.uniform() < 0.8 else int(rng.integers(4)))
        scores.append(float(rng.uniform(0.3, 1.0)))
    for _ in range(3):  # false positives
        x0, y0 = rng.uniform(0, WIDTH - 30), rng.uniform(0, HEIGHT - 30)
        w, h = rng.uniform(5, 30, size=2)
        mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
        mask[int(y0) : int(y0 + h), int(x0) : int(x0 + w)] = True
        boxes.append([x0, y0, x0 + w, y0 + h])
        masks.append(mask)
        classes.append(int(rng.integers(3)))
        scores.append(float(rng.uniform(0.05, 0.6)))
    return _instances(boxes, scores, classes, masks)


def _run(evaluator, coco, make_predictions, image_ids=None):
    evaluator.reset()
    for image in coco["images"]:
        if image_ids is None or image["id"] in image_ids:
            inputs = [{"image_id": image["id"], "height": HEIGHT, "width": WIDTH}]
            evaluator.process(inputs, [{"instances": make_predictions(coco, image["id"])}])
    return evaluator.evaluate()


def _assert_same(a, b, tol):
    assert a.keys() == b.keys()
    for task in a:
        assert a[task].keys() == b[task].keys(), task
        for key in a[task]:
            x, y = a[task][key], b[task][key]
            assert (math.isnan(x) and math.isnan(y)) or abs(x - y) <= tol, (task, key, x, y)


# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["pycocotools", "faster_coco_eval"])
def test_ground_truth_as_predictions_gives_ap_100(tiny_coco, tmp_path, backend, caplog):
    name, _, coco = tiny_coco
    evaluator = COCOEvaluator(name, distributed=False, output_dir=str(tmp_path), backend=backend)
    with caplog.at_level(logging.INFO, logger="mrcnn.evaluation"):
        results = _run(evaluator, coco, _ground_truth_predictions)

    assert list(results) == ["bbox", "segm"]  # inferred: the predictions have masks
    for task in ("bbox", "segm"):
        for metric in METRICS + ("AP-disk", "AP-box", "AP-wedge"):
            assert results[task][metric] == pytest.approx(100.0), (task, metric)
        assert math.isnan(results[task]["AP-unused"])  # no ground truth for it
    # the summary and per-category tables are logged
    summary = caplog.text.split("for segm")[1]
    assert "| AP " in summary and "| AP50 " in summary and "| 100.000 |" in summary
    assert "Per-category segm AP" in summary and "| disk " in summary and "| unused " in summary

    written = json.load(open(tmp_path / "coco_instances_results.json"))
    num_gt = sum(1 for a in coco["annotations"] if not a["iscrowd"])
    assert len(written) == num_gt
    assert {r["category_id"] for r in written} == {1, 3, 7}  # mapped back to the dataset's ids
    assert all(isinstance(r["segmentation"]["counts"], str) and len(r["bbox"]) == 4 for r in written)


def test_numbers_equal_pycocotools_run_directly_on_the_json_files(tiny_coco, tmp_path):
    name, json_path, coco = tiny_coco
    evaluator = COCOEvaluator(name, ("bbox", "segm"), distributed=False, output_dir=str(tmp_path))
    results = _run(evaluator, coco, _perturbed_predictions)
    assert 20 < results["bbox"]["AP"] < 95 and 20 < results["segm"]["AP"] < 95  # a non-trivial case

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(json_path)
        for task in ("bbox", "segm"):
            detections = json.load(open(tmp_path / "coco_instances_results.json"))
            if task == "segm":  # mask AP uses the mask area for the size ranges, as documented
                for d in detections:
                    d.pop("bbox")
            coco_eval = COCOeval(coco_gt, coco_gt.loadRes(detections), task)
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
            for metric, stat in zip(METRICS, coco_eval.stats[:6]):
                expected = float("nan") if stat < 0 else stat * 100
                got = results[task][metric]
                assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected, abs=1e-9), metric
            precision = coco_eval.eval["precision"][:, :, :, 0, -1]
            for k, category in enumerate(CATEGORIES):
                values = precision[:, :, k]
                values = values[values > -1]
                expected = values.mean() * 100 if values.size else float("nan")
                got = results[task][f"AP-{category['name']}"]
                assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected, abs=1e-9)


def test_faster_coco_eval_backend_gives_identical_numbers(tiny_coco):
    name, _, coco = tiny_coco
    by_backend = {}
    for backend in ("pycocotools", "faster_coco_eval"):
        evaluator = COCOEvaluator(name, distributed=False, backend=backend)
        by_backend[backend] = _run(evaluator, coco, lambda c, i: _perturbed_predictions(c, i, seed=3))
    _assert_same(by_backend["pycocotools"], by_backend["faster_coco_eval"], tol=1e-6)


def test_subset_of_images_is_evaluated_on_those_images_only(tiny_coco):
    """Ground truth of images that were not processed must not count as misses."""
    name, _, coco = tiny_coco
    results = _run(COCOEvaluator(name, distributed=False), coco, _ground_truth_predictions, image_ids={1, 3})
    assert results["bbox"]["AP"] == pytest.approx(100.0)
    assert results["segm"]["AP-wedge"] == pytest.approx(100.0)


# --------------------------------------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _distributed_worker(rank, world_size, port, json_path, result_path):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        name = "tiny_coco_distributed"
        register_coco_instances(name, {}, json_path, os.path.dirname(json_path))
        coco = json.load(open(json_path))
        my_images = {img["id"] for img in coco["images"][rank::world_size]}
        results = _run(COCOEvaluator(name), coco, _perturbed_predictions, image_ids=my_images)
        with open(f"{result_path}.rank{rank}", "w") as f:
            json.dump(json_safe(results), f)
        dist.barrier()  # as launch() does: no rank tears the group down while another still uses it
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_give_the_same_results_as_one(tiny_coco, tmp_path):
    name, json_path, coco = tiny_coco
    single = _run(COCOEvaluator(name, distributed=False), coco, _perturbed_predictions)

    result_path = str(tmp_path / "results")
    mp.spawn(_distributed_worker, args=(2, _free_port(), json_path, result_path), nprocs=2, join=True)
    rank0 = json.load(open(result_path + ".rank0"))
    rank1 = json.load(open(result_path + ".rank1"))
    assert rank1 == {}  # only the main process evaluates
    nan_to_none = json_safe(single)
    assert rank0.keys() == nan_to_none.keys()
    for task in rank0:
        for key, value in nan_to_none[task].items():
            assert (value is None and rank0[task][key] is None) or rank0[task][key] == pytest.approx(value, abs=1e-9)


# --------------------------------------------------------------------------------------------
def test_no_detections_warns_and_gives_zeros(tiny_coco, tmp_path, caplog):
    name, _, coco = tiny_coco
    evaluator = COCOEvaluator(name, distributed=False, output_dir=str(tmp_path))
    empty = lambda c, i: _instances(np.zeros((0, 4)), [], [], np.zeros((0, HEIGHT, WIDTH)))  # noqa: E731
    with caplog.at_level(logging.WARNING, logger="mrcnn.evaluation"):
        results = _run(evaluator, coco, empty)
    assert "no detection" in caplog.text
    assert list(results) == ["bbox", "segm"]  # the (empty) predictions still carry pred_masks
    for metrics in results.values():
        assert set(METRICS) <= set(metrics) and "AP-disk" in metrics
        assert all(value == 0.0 for value in metrics.values())
    assert json.load(open(tmp_path / "coco_instances_results.json")) == []


def test_nothing_processed_warns_and_gives_zeros(tiny_coco, caplog):
    name, _, _ = tiny_coco
    evaluator = COCOEvaluator(name, ("bbox",), distributed=False)
    with caplog.at_level(logging.WARNING, logger="mrcnn.evaluation"):
        results = evaluator.evaluate()
    assert "no image was processed" in caplog.text
    assert list(results) == ["bbox"] and all(v == 0.0 for v in results["bbox"].values())


def test_tasks_follow_the_predictions_and_explicit_tasks_win(tiny_coco):
    name, _, coco = tiny_coco
    boxes_only = lambda c, i: _ground_truth_predictions(c, i, with_masks=False)  # noqa: E731
    assert list(_run(COCOEvaluator(name, distributed=False), coco, boxes_only)) == ["bbox"]
    assert list(_run(COCOEvaluator(name, ("bbox",), distributed=False), coco, _ground_truth_predictions)) == ["bbox"]
    assert list(_run(COCOEvaluator(name, ("segm",), distributed=False), coco, _ground_truth_predictions)) == ["segm"]
    with pytest.raises(ValueError, match="tasks must be among"):
        COCOEvaluator(name, ("keypoints",))


def test_bad_input_gives_clear_errors(tiny_coco):
    name, _, _ = tiny_coco
    with pytest.raises(ValueError, match="Unknown COCO evaluation backend 'fast'.*faster_coco_eval"):
        COCOEvaluator(name, backend="fast")
    evaluator = COCOEvaluator(name, distributed=False)
    prediction = _instances([[0, 0, 10, 10]], [0.9], [0], None)
    evaluator.process([{"image_id": 12345, "height": HEIGHT, "width": WIDTH}], [{"instances": prediction}])
    with pytest.raises(ValueError, match="not in the ground truth"):
        evaluator.evaluate()
    evaluator.reset()
    evaluator.process(
        [{"image_id": 1, "height": HEIGHT, "width": WIDTH}],
        [{"instances": _instances([[0, 0, 10, 10]], [0.9], [7], None)}],
    )
    with pytest.raises(ValueError, match="predicted class 7 is outside 0..3"):
        evaluator.evaluate()
    with pytest.raises(KeyError, match="image_id"):
        evaluator.process([{"height": HEIGHT}], [{"instances": prediction}])


# --------------------------------------------------------------------------------------------
def _register_without_json(tiny_coco):
    """The tiny dataset's dicts registered again, this time with no json file."""
    name, _, _ = tiny_coco
    dicts = DatasetCatalog.get(name)
    metadata = MetadataCatalog.get(name)
    new_name = f"{name}_dicts_{uuid.uuid4().hex[:6]}"
    DatasetCatalog.register(new_name, lambda: dicts)
    MetadataCatalog.get(new_name).set(
        thing_classes=metadata.thing_classes,
        thing_dataset_id_to_contiguous_id=metadata.thing_dataset_id_to_contiguous_id,
        evaluator_type="coco",
    )
    return new_name


def test_dataset_without_json_is_converted_once_and_cached(tiny_coco, tmp_path):
    name, _, coco = tiny_coco
    dict_name = _register_without_json(tiny_coco)
    out = str(tmp_path)
    first = _run(COCOEvaluator(dict_name, distributed=False, output_dir=out), coco, _perturbed_predictions)
    converted = [f for f in os.listdir(out) if f.endswith(".json") and "coco_format" in f]
    assert len(converted) == 1
    path = os.path.join(out, converted[0])
    os.utime(path, (1_000_000_000, 1_000_000_000))  # an old mtime: a rewrite would change it

    second = _run(COCOEvaluator(dict_name, distributed=False, output_dir=out), coco, _perturbed_predictions)
    assert os.stat(path).st_mtime == 1_000_000_000
    assert [f for f in os.listdir(out) if "coco_format" in f] == converted
    _assert_same(first, second, tol=0)
    # and the converted json evaluates exactly like the original one
    from_json = _run(COCOEvaluator(name, distributed=False), coco, _perturbed_predictions)
    _assert_same(first, from_json, tol=1e-9)

    converted_coco = json.load(open(path))
    assert [c["id"] for c in converted_coco["categories"]] == [1, 3, 7, 9]
    assert len(converted_coco["annotations"]) == len(coco["annotations"])
    assert convert_to_coco_json(dict_name, out) == path  # same content, same file


def test_build_evaluator_follows_the_config(tiny_coco, tmp_path):
    name, _, coco = tiny_coco
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.MODEL.MASK_ON = False
    cfg.TEST.EVAL_BACKEND = "faster_coco_eval"
    evaluator = build_evaluator(cfg, name)  # evaluator_type "coco" from register_coco_instances
    assert isinstance(evaluator, COCOEvaluator)
    results = _run(evaluator, coco, _ground_truth_predictions)
    assert list(results) == ["bbox"]  # MASK_ON False: boxes only, though the outputs have masks
    assert results["bbox"]["AP"] == pytest.approx(100.0)
    assert os.path.isfile(tmp_path / "inference" / name / "coco_instances_results.json")

    cfg.MODEL.MASK_ON = True
    assert list(_run(build_evaluator(cfg, name, str(tmp_path)), coco, _ground_truth_predictions)) == ["bbox", "segm"]

    class CountingEvaluator(DatasetEvaluator):
        def __init__(self, cfg, dataset_name, output_dir=None):
            self.dataset_name = dataset_name

    if "CountingEvaluator" not in EVALUATOR_REGISTRY.names():
        EVALUATOR_REGISTRY.register()(CountingEvaluator)
    cfg.TEST.EVALUATOR = "CountingEvaluator"
    assert build_evaluator(cfg, name).dataset_name == name
    cfg.TEST.EVALUATOR = ""
    unnamed = f"no_type_{uuid.uuid4().hex[:6]}"
    with pytest.raises(NotImplementedError, match=f"No evaluator for dataset '{unnamed}'.*coco"):
        build_evaluator(cfg, unnamed)


def test_mask_encoding_equals_pycocotools_encode():
    rng = np.random.default_rng(0)
    masks = rng.uniform(size=(6, 23, 17)) < 0.4
    masks[0] = False  # empty
    masks[1] = True  # full
    masks[2, :, :3] = True  # touches the left edge only
    masks[3] = False
    masks[3, 5:9, 14:] = True  # touches the right edge only
    expected = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for given in (torch.from_numpy(masks), masks.astype(np.float32)[:, None], masks.astype(np.uint8)):
        rles = encode_masks_as_rle(given)
        assert [r["counts"] for r in rles] == [e["counts"].decode("ascii") for e in expected]
        assert all(list(r["size"]) == [23, 17] for r in rles)
    assert encode_masks_as_rle(torch.zeros(0, 5, 5, dtype=torch.bool)) == []


def test_json_written_on_first_load_and_missing_json(tmp_path):
    """A dataset may create its json when first loaded (as the shapes dataset does); a missing one is named."""
    from mrcnn.data.datasets import load_coco_json

    coco = _tiny_coco()
    json_path = str(tmp_path / "later.json")
    name = f"lazy_{uuid.uuid4().hex[:6]}"

    def load():
        if not os.path.exists(json_path):
            with open(json_path, "w") as f:
                json.dump(coco, f)
        return load_coco_json(json_path, str(tmp_path), name)

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(json_file=json_path, evaluator_type="coco")
    evaluator = COCOEvaluator(name, distributed=False)  # before the json exists
    assert _run(evaluator, coco, _ground_truth_predictions)["segm"]["AP"] == pytest.approx(100.0)

    missing = f"missing_{uuid.uuid4().hex[:6]}"
    MetadataCatalog.get(missing).set(json_file=str(tmp_path / "nope.json"), thing_classes=["disk"])
    evaluator = COCOEvaluator(missing, distributed=False)
    evaluator.process([{"image_id": 1}], [{"instances": _ground_truth_predictions(coco, 1)}])
    with pytest.raises(FileNotFoundError, match=f"dataset '{missing}' does not exist: .*nope.json"):
        evaluator.evaluate()
