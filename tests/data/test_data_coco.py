"""COCO json loading: id mapping with gaps, polygons and RLE, crowd, empty images, and bad input."""

import json
import logging

import numpy as np
import pycocotools.mask as mask_util
import pytest

from mrcnn.data import DatasetCatalog, MetadataCatalog
from mrcnn.data.datasets import CocoFormatError, load_coco_json, register_coco_instances
from mrcnn.structures import BoxMode


def _rle_of_square(height, width, x0, y0, side, compressed=True):
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[y0 : y0 + side, x0 : x0 + side] = 1
    if compressed:
        rle = mask_util.encode(np.asfortranarray(mask))
        return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}, mask
    # uncompressed: run lengths in column-major order, starting with zeros
    flat = mask.flatten(order="F")
    counts, current, run = [], 0, 0
    for value in flat:
        if value == current:
            run += 1
        else:
            counts.append(run)
            current, run = value, 1
    counts.append(run)
    return {"size": [height, width], "counts": counts}, mask


def _coco_dict():
    compressed, _ = _rle_of_square(40, 50, 5, 6, 10)
    uncompressed, _ = _rle_of_square(40, 50, 20, 10, 8, compressed=False)
    return {
        "images": [
            {"id": 7, "file_name": "a.jpg", "height": 40, "width": 50},
            {"id": 8, "file_name": "sub/b.jpg", "height": 30, "width": 20},
            {"id": 9, "file_name": "empty.jpg", "height": 10, "width": 10},
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 1, "name": "person"}, {"id": 17, "name": "zebra"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 17,
                "bbox": [5, 6, 10, 10],
                "iscrowd": 0,
                "segmentation": compressed,
            },
            {
                "id": 2,
                "image_id": 7,
                "category_id": 3,
                "bbox": [20, 10, 8, 8],
                "iscrowd": 1,
                "segmentation": uncompressed,
            },
            {
                "id": 3,
                "image_id": 8,
                "category_id": 1,
                "bbox": [1, 2, 5, 6],
                "iscrowd": 0,
                "segmentation": [[1, 2, 6, 2, 6, 8, 1, 8], [2, 3, 4, 3]],
            },  # second polygon: 2 points
            {
                "id": 4,
                "image_id": 8,
                "category_id": 3,
                "bbox": [0, 0, 0, 4],
                "iscrowd": 0,
                "segmentation": [[0, 0, 1, 0, 1, 4]],
            },  # no box area
            {
                "id": 5,
                "image_id": 8,
                "category_id": 3,
                "bbox": [3, 3, 2, 2],
                "iscrowd": 0,
                "segmentation": [[3, 3, 5, 3]],
            },  # its only polygon is too short
        ],
    }


def _write(tmp_path, data, name="instances.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_load_coco_json(tmp_path, caplog):
    json_file = _write(tmp_path, _coco_dict())
    with caplog.at_level(logging.WARNING, logger="mrcnn.data.datasets.coco"):
        dicts = load_coco_json(json_file, "/images", "coco_test_load")
    try:
        summary = [r.getMessage() for r in caplog.records]
        assert len(summary) == 1
        assert "2 polygon(s) with fewer than 3 points" in summary[0] and "1 annotation(s) whose box" in summary[0]
        assert json_file in summary[0]

        assert [d["image_id"] for d in dicts] == [7, 8, 9]
        assert dicts[1]["file_name"] == "/images/sub/b.jpg"
        assert (dicts[0]["height"], dicts[0]["width"]) == (40, 50)
        assert dicts[2]["annotations"] == []  # an image without annotations is kept

        metadata = MetadataCatalog.get("coco_test_load")
        assert metadata.thing_classes == ["person", "cat", "zebra"]  # sorted by COCO id
        assert metadata.thing_dataset_id_to_contiguous_id == {1: 0, 3: 1, 17: 2}

        first, crowd = dicts[0]["annotations"]
        assert first["category_id"] == 2 and first["bbox"] == [5.0, 6.0, 10.0, 10.0]
        assert first["bbox_mode"] == BoxMode.XYWH_ABS and first["iscrowd"] == 0
        assert mask_util.decode(first["segmentation"]).sum() == 100
        assert crowd["iscrowd"] == 1 and crowd["category_id"] == 1
        assert isinstance(crowd["segmentation"]["counts"], (str, bytes))  # uncompressed RLE was compressed
        decoded = mask_util.decode(crowd["segmentation"])
        np.testing.assert_array_equal(decoded, _rle_of_square(40, 50, 20, 10, 8)[1])

        (polygon_ann,) = dicts[1]["annotations"]
        assert polygon_ann["category_id"] == 0
        assert polygon_ann["segmentation"] == [[1.0, 2.0, 6.0, 2.0, 6.0, 8.0, 1.0, 8.0]]
    finally:
        MetadataCatalog.remove("coco_test_load")


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda d: "{not json", "not valid json"),
        (lambda d: {k: v for k, v in d.items() if k != "categories"}, "missing top-level key.*categories"),
        (lambda d: {k: v for k, v in d.items() if k != "images"}, "missing top-level key.*images"),
        (
            lambda d: {
                **d,
                "annotations": d["annotations"]
                + [{"id": 99, "image_id": 1234, "category_id": 1, "bbox": [0, 0, 1, 1]}],
            },
            "annotation 99 refers to unknown image id 1234",
        ),
        (
            lambda d: {
                **d,
                "annotations": d["annotations"] + [{"id": 98, "image_id": 7, "category_id": 2, "bbox": [0, 0, 1, 1]}],
            },
            "annotation 98 refers to unknown category id 2",
        ),
        (
            lambda d: {**d, "annotations": d["annotations"] + [dict(d["annotations"][0])]},
            "annotation id 1 appears more than once",
        ),
        (lambda d: {**d, "annotations": [{"id": 5, "image_id": 7, "category_id": 1}]}, "annotation 5 lacks.*bbox"),
    ],
)
def test_malformed_json_names_file_and_problem(tmp_path, corrupt, message):
    json_file = _write(tmp_path, corrupt(_coco_dict()), "bad.json")
    with pytest.raises(CocoFormatError, match=message) as info:
        load_coco_json(json_file, str(tmp_path))
    assert json_file in str(info.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        load_coco_json(str(tmp_path / "nowhere.json"), str(tmp_path))


def test_register_coco_instances(tmp_path):
    json_file = _write(tmp_path, _coco_dict())
    register_coco_instances("coco_test_registered", {"extra": 1}, json_file, str(tmp_path))
    try:
        metadata = MetadataCatalog.get("coco_test_registered")
        assert metadata.json_file == json_file and metadata.evaluator_type == "coco" and metadata.extra == 1
        dicts = DatasetCatalog.get("coco_test_registered")
        assert len(dicts) == 3 and metadata.thing_classes == ["person", "cat", "zebra"]
    finally:
        DatasetCatalog.remove("coco_test_registered")
        MetadataCatalog.remove("coco_test_registered")
