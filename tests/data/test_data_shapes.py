"""The synthetic shapes generator writes genuine COCO json whose masks match what it rendered."""

import json
import multiprocessing
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image
from pycocotools.coco import COCO

from mrcnn.data import DatasetCatalog, MetadataCatalog
from mrcnn.data.datasets.synthetic_shapes import (
    SHAPES_CLASSES,
    ensure_shapes_dataset,
    generate_shapes_dataset,
    register_shapes,
    render_shapes_sample,
    shapes_json_path,
)

SEED, SIZE = 3, 96


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("shapes"))
    generate_shapes_dataset(root, num_train=12, num_val=4, image_size=SIZE, seed=SEED)
    return root


def test_json_loads_with_pycocotools_and_masks_match_rendering(shapes_root):
    for split, num_images in (("train", 12), ("val", 4)):
        coco = COCO(shapes_json_path(shapes_root, split))
        assert len(coco.getImgIds()) == num_images
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(SHAPES_CLASSES)
        for index in range(num_images):
            image_id = index + 1
            image, instances = render_shapes_sample(SEED, split, index, SIZE)
            info = coco.loadImgs(image_id)[0]
            on_disk = np.asarray(Image.open(os.path.join(shapes_root, split, info["file_name"])))
            np.testing.assert_array_equal(on_disk, image)  # PNG is lossless
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
            assert len(anns) == len(instances)
            for ann, instance in zip(anns, instances):
                decoded = coco.annToMask(ann).astype(bool)
                iou = (decoded & instance["mask"]).sum() / (decoded | instance["mask"]).sum()
                assert iou >= 0.99
                ys, xs = np.nonzero(instance["mask"])
                assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
                assert ann["area"] == instance["mask"].sum()
                assert ann["category_id"] == instance["category_id"]


def test_masks_are_the_visible_parts():
    seen_empty = seen_occluded = seen_polygon_only = 0
    areas = []
    for index in range(60):
        image, instances = render_shapes_sample(11, "train", index, 128)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        seen_empty += len(instances) == 0
        union = np.zeros((128, 128), dtype=int)
        for i, instance in enumerate(instances):
            union += instance["mask"]
            later = np.zeros((128, 128), dtype=bool)
            for other in instances[i + 1 :]:
                later |= other["full_mask"]
            np.testing.assert_array_equal(instance["mask"], instance["full_mask"] & ~later)
            assert instance["mask"].sum() >= 0.2 * instance["full_mask"].sum()
            seen_occluded += not np.array_equal(instance["mask"], instance["full_mask"])
            seen_polygon_only += np.array_equal(instance["mask"], instance["full_mask"])
            areas.append(instance["mask"].sum())
        assert union.max() <= 1  # visible parts never overlap
    assert seen_empty >= 1 and seen_occluded >= 3 and seen_polygon_only >= 20
    assert min(areas) < 100 and max(areas) > 1500  # small to large


def test_occluded_instances_are_rle_and_others_polygons(shapes_root):
    data = json.load(open(shapes_json_path(shapes_root, "train")))
    kinds = {type(a["segmentation"]).__name__ for a in data["annotations"]}
    assert kinds == {"dict", "list"}
    for ann in data["annotations"]:
        if isinstance(ann["segmentation"], dict):
            assert isinstance(ann["segmentation"]["counts"], str)
            assert mask_util.area(ann["segmentation"]) == ann["area"]


def test_generation_is_deterministic(tmp_path, shapes_root):
    generate_shapes_dataset(str(tmp_path / "again"), num_train=12, num_val=4, image_size=SIZE, seed=SEED)
    generate_shapes_dataset(str(tmp_path / "other"), num_train=12, num_val=4, image_size=SIZE, seed=SEED + 1)
    original = open(shapes_json_path(shapes_root, "train")).read()
    assert open(shapes_json_path(str(tmp_path / "again"), "train")).read() == original
    assert open(shapes_json_path(str(tmp_path / "other"), "train")).read() != original
    for name in ("000000.png", "000007.png"):
        a = np.asarray(Image.open(os.path.join(shapes_root, "train", name)))
        b = np.asarray(Image.open(tmp_path / "again" / "train" / name))
        np.testing.assert_array_equal(a, b)


def _ensure(root):
    ensure_shapes_dataset(root, num_train=6, num_val=2, image_size=64, seed=0)


def test_concurrent_first_use_writes_one_complete_dataset(tmp_path):
    root = str(tmp_path / "shapes")
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_ensure, args=(root,)) for _ in range(2)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(60)
        assert p.exitcode == 0
    for split, count in (("train", 6), ("val", 2)):
        data = json.load(open(shapes_json_path(root, split)))
        assert len(data["images"]) == count
        assert len(os.listdir(os.path.join(root, split))) == count
    assert not [f for f in os.listdir(os.path.join(root, "annotations")) if ".tmp" in f]


def test_register_shapes_generates_on_first_use(tmp_path):
    root = str(tmp_path / "lazy")
    register_shapes("lazy_shapes_test", root, num_train=5, num_val=3, image_size=64, seed=2)
    try:
        assert not os.path.exists(root)  # registering writes nothing
        metadata = MetadataCatalog.get("lazy_shapes_test_val")
        assert metadata.thing_classes == list(SHAPES_CLASSES)
        assert metadata.thing_dataset_id_to_contiguous_id == {1: 0, 2: 1, 3: 2}
        assert metadata.evaluator_type == "coco" and len(metadata.thing_colors) == 3
        dicts = DatasetCatalog.get("lazy_shapes_test_val")
        assert len(dicts) == 3 and len(DatasetCatalog.get("lazy_shapes_test_train")) == 5
        assert all(os.path.isfile(d["file_name"]) and d["height"] == d["width"] == 64 for d in dicts)
        assert {a["category_id"] for d in dicts for a in d["annotations"]} <= {0, 1, 2}
    finally:
        for split in ("train", "val"):
            DatasetCatalog.remove(f"lazy_shapes_test_{split}")
            MetadataCatalog.remove(f"lazy_shapes_test_{split}")


def test_command_line(tmp_path):
    from mrcnn.data.datasets.shapes import main

    out = tmp_path / "cli"
    main(["--output", str(out), "--num-train", "3", "--num-val", "2", "--image-size", "48", "--seed", "5"])
    assert len(json.load(open(out / "annotations" / "instances_train.json"))["images"]) == 3
    assert sorted(os.listdir(out / "val")) == ["000000.png", "000001.png"]
    assert Image.open(out / "val" / "000001.png").size == (48, 48)
