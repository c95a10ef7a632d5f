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


def _one_image_json(tmp_path, annotation, height=128, width=128):
    data = {
        "images": [{"id": 41, "file_name": "img/forty_one.png", "height": height, "width": width}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [{"id": 905, "image_id": 41, "category_id": 1, "iscrowd": 0, "bbox": [4, 4, 20, 20]}],
    }
    data["annotations"][0].update(annotation)
    return _write(tmp_path, data, "one_image.json")


def test_rle_of_another_size_is_refused_when_the_json_is_loaded(tmp_path):
    """The issue: a 64x64 RLE on a 128x128 image used to load, then stop training deep in a resize."""
    compressed, _ = _rle_of_square(64, 64, 4, 4, 20)
    json_file = _one_image_json(tmp_path, {"segmentation": compressed})
    with pytest.raises(CocoFormatError) as info:
        load_coco_json(json_file, str(tmp_path))
    message = str(info.value)
    assert message.startswith(f"{json_file}: annotation 905 of image 41 ('img/forty_one.png', 128x128)")
    assert "RLE segmentation has size [64, 64] (height, width) but the image is 128x128" in message
    uncompressed, _ = _rle_of_square(128, 64, 4, 4, 20, compressed=False)
    with pytest.raises(CocoFormatError, match=r"annotation 905 .* has size \[128, 64\] .* the image is 128x128"):
        load_coco_json(_one_image_json(tmp_path, {"segmentation": uncompressed, "iscrowd": 1}), str(tmp_path))
    # counts that do not cover the stated size (a truncated uncompressed RLE)
    uncompressed, _ = _rle_of_square(128, 128, 4, 4, 20, compressed=False)
    uncompressed["counts"] = uncompressed["counts"][:-1]
    with pytest.raises(CocoFormatError, match=r"annotation 905 .* counts are not .* adding up to 128x128 = 16384"):
        load_coco_json(_one_image_json(tmp_path, {"segmentation": uncompressed}), str(tmp_path))
    # the right size loads
    compressed, mask = _rle_of_square(128, 128, 4, 4, 20)
    (record,) = load_coco_json(_one_image_json(tmp_path, {"segmentation": compressed}), str(tmp_path))
    np.testing.assert_array_equal(mask_util.decode(record["annotations"][0]["segmentation"]), mask)


@pytest.mark.parametrize(
    "annotation, message",
    [
        ({"bbox": [4, float("nan"), 20, 20]}, r"its bbox has a non-finite coordinate \(NaN or infinity\)"),
        ({"bbox": [4, 4, float("inf"), 20]}, "its bbox has a non-finite coordinate"),
        ({"bbox": [4, "four", 20, 20]}, "its bbox .* holds something that is not a number"),
        ({"segmentation": [[4, 4, 24, 4, float("nan"), 24]]}, "its polygon has a non-finite coordinate"),
        ({"segmentation": [[4, 4, 24, 4, None, 24]]}, "its polygon .* holds something that is not a number"),
        ({"segmentation": [4, 4, 24, 4, 24, 24]}, r"its segmentation holds 4 where a polygon \(a list\) should be"),
        ({"segmentation": {"size": [128, 128], "counts": 7}}, "its RLE counts are a int"),
    ],
)
def test_non_finite_and_malformed_geometry_names_the_annotation(tmp_path, annotation, message):
    """json.load accepts NaN and Infinity; a NaN box used to pass every `w <= 0` check."""
    json_file = _one_image_json(tmp_path, annotation)
    with pytest.raises(CocoFormatError, match=message) as info:
        load_coco_json(json_file, str(tmp_path))
    assert str(info.value).startswith(f"{json_file}: annotation 905 of image 41 ('img/forty_one.png'")


@pytest.mark.parametrize("height", [0, -5, 12.5, "128", None])
def test_image_sizes_must_be_positive_whole_numbers(tmp_path, height):
    json_file = _one_image_json(tmp_path, {}, height=height)
    with pytest.raises(CocoFormatError, match=r"image 41 \('img/forty_one.png'\) has height .*positive whole numbers"):
        load_coco_json(json_file, str(tmp_path))


def test_odd_polygons_are_told_from_short_ones(tmp_path, caplog):
    """A 5-number polygon is an odd count of coordinates, not "fewer than 3 points"; ids are listed."""
    data = _coco_dict()
    data["annotations"].append(
        {"id": 6, "image_id": 8, "category_id": 1, "bbox": [1, 1, 4, 4], "segmentation": [[1, 1, 5, 1, 5]]}
    )
    json_file = _write(tmp_path, data)
    with caplog.at_level(logging.WARNING, logger="mrcnn.data.datasets.coco"):
        dicts = load_coco_json(json_file, "/images")
    (summary,) = [r.getMessage() for r in caplog.records]
    assert "2 polygon(s) with fewer than 3 points (annotation 3, 5)" in summary
    assert "1 polygon(s) with an odd number of coordinates (annotation 6)" in summary
    assert "(2 annotation(s) left without any polygon, removed)" in summary
    assert len(dicts[1]["annotations"]) == 1


def test_box_wholly_outside_its_image_is_reported(tmp_path, caplog):
    json_file = _one_image_json(tmp_path, {"bbox": [130, 4, 20, 20]})
    with caplog.at_level(logging.WARNING, logger="mrcnn.data.datasets.coco"):
        (record,) = load_coco_json(json_file, str(tmp_path))
    (summary,) = [r.getMessage() for r in caplog.records]
    assert "1 annotation(s) have a box wholly outside their image (annotation 905)" in summary
    assert len(record["annotations"]) == 1  # kept, as detectron2 keeps it; the mapper drops it


def test_evaluation_loader_meets_the_bad_rle_too(tmp_path):
    """The test loader (evaluation) loads the json through the same check, so it no longer accepts it silently."""
    from mrcnn.config import get_cfg
    from mrcnn.data import build_detection_test_loader

    compressed, _ = _rle_of_square(64, 64, 4, 4, 20)
    json_file = _one_image_json(tmp_path, {"segmentation": compressed})
    register_coco_instances("coco_test_bad_rle", {}, json_file, str(tmp_path))
    try:
        with pytest.raises(CocoFormatError, match="annotation 905 of image 41 .* size \\[64, 64\\]"):
            build_detection_test_loader(get_cfg(), "coco_test_bad_rle")
    finally:
        DatasetCatalog.remove("coco_test_bad_rle")
        MetadataCatalog.remove("coco_test_bad_rle")
