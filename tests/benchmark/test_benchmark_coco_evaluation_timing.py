"""The COCO evaluation timing runs end to end and both backends agree on its synthetic data."""

import pytest

from mrcnn.benchmark import synthetic_coco_ground_truth, time_coco_evaluation
from mrcnn.data import MetadataCatalog


def test_synthetic_ground_truth_covers_all_size_ranges():
    coco, objects = synthetic_coco_ground_truth(30, gt_per_image=7, seed=1)
    areas = [a["area"] for a in coco["annotations"]]
    assert len(objects) == 30 and len(areas) == sum(len(o) for o in objects)
    assert 4 < len(areas) / 30 < 10
    assert min(areas) < 32**2 and max(areas) > 96**2 and any(32**2 < a < 96**2 for a in areas)
    assert {c["id"] for c in coco["categories"]} == set(range(1, 160, 2))


def test_both_backends_time_the_same_evaluation():
    before = set(MetadataCatalog.list())
    timings = [
        time_coco_evaluation(4, 15, backend, height=60, width=80, num_classes=5)
        for backend in ("pycocotools", "faster_coco_eval")
    ]
    for timing in timings:
        assert timing["process_seconds"] > 0 and timing["evaluate_seconds"] > 0
        assert timing["total_seconds"] == pytest.approx(timing["process_seconds"] + timing["evaluate_seconds"])
        assert 5 < timing["bbox/AP"] < 100 and 5 < timing["segm/AP"] < 100
    assert timings[0]["bbox/AP"] == pytest.approx(timings[1]["bbox/AP"], abs=1e-6)
    assert timings[0]["segm/AP"] == pytest.approx(timings[1]["segm/AP"], abs=1e-6)
    assert set(MetadataCatalog.list()) == before  # the temporary dataset is unregistered
