"""Load COCO-format instance annotations (json) into dataset dicts, and register such datasets."""

import contextlib
import io
import json
import logging
import math
import os
from typing import Any, Dict, List, Optional, Sequence

import pycocotools.mask as mask_util
from pycocotools.coco import COCO

from mrcnn.structures import BoxMode

from ..catalog import DatasetCatalog, MetadataCatalog

__all__ = ["load_coco_json", "register_coco_instances", "CocoFormatError"]

logger = logging.getLogger(__name__)


class CocoFormatError(ValueError):
    """A COCO json that cannot be used; the message names the file and the problem."""


def _read_json(json_file: str) -> Dict[str, Any]:
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"COCO annotation file not found: {json_file}")
    try:
        with open(json_file, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise CocoFormatError(f"{json_file}: not valid json ({e})") from None
    if not isinstance(data, dict):
        raise CocoFormatError(f"{json_file}: the top level must be an object, got {type(data).__name__}")
    missing = [key for key in ("images", "annotations", "categories") if key not in data]
    if missing:
        raise CocoFormatError(
            f"{json_file}: missing top-level key(s) {missing}; a COCO instances file has "
            "'images', 'annotations' and 'categories'"
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise CocoFormatError(f"{json_file}: '{key}' must be a list, got {type(data[key]).__name__}")
    return data


def _validate(data: Dict[str, Any], json_file: str) -> None:
    """Check ids and references up front so problems are reported by file and annotation id."""
    for key, fields in (("images", ("id", "file_name", "height", "width")), ("categories", ("id", "name"))):
        for i, entry in enumerate(data[key]):
            lacking = [f for f in fields if f not in entry]
            if lacking:
                raise CocoFormatError(f"{json_file}: {key}[{i}] lacks field(s) {lacking}")
    for img in data["images"]:
        for field in ("height", "width"):
            value = img[field]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
                raise CocoFormatError(
                    f"{json_file}: image {img['id']} ('{img['file_name']}') has {field} {value!r}; "
                    "height and width must be positive whole numbers of pixels"
                )
    image_ids = {img["id"] for img in data["images"]}
    if len(image_ids) != len(data["images"]):
        raise CocoFormatError(f"{json_file}: image ids are not unique")
    category_ids = {cat["id"] for cat in data["categories"]}
    if len(category_ids) != len(data["categories"]):
        raise CocoFormatError(f"{json_file}: category ids are not unique")
    seen_ann_ids = set()
    for i, ann in enumerate(data["annotations"]):
        ann_id = ann.get("id", f"#{i}")
        for field in ("image_id", "category_id", "bbox"):
            if field not in ann:
                raise CocoFormatError(f"{json_file}: annotation {ann_id} lacks field '{field}'")
        if ann["image_id"] not in image_ids:
            raise CocoFormatError(f"{json_file}: annotation {ann_id} refers to unknown image id {ann['image_id']}")
        if ann["category_id"] not in category_ids:
            raise CocoFormatError(
                f"{json_file}: annotation {ann_id} refers to unknown category id {ann['category_id']} "
                f"(known: {sorted(category_ids)})"
            )
        if not isinstance(ann["bbox"], (list, tuple)):
            raise CocoFormatError(f"{json_file}: annotation {ann_id} has a bbox of type {type(ann['bbox']).__name__}")
        if len(ann["bbox"]) != 4:
            raise CocoFormatError(f"{json_file}: annotation {ann_id} has a bbox of {len(ann['bbox'])} numbers, not 4")
        if "id" in ann:
            if ann["id"] in seen_ann_ids:
                raise CocoFormatError(f"{json_file}: annotation id {ann['id']} appears more than once")
            seen_ann_ids.add(ann["id"])
    # pycocotools indexes annotations by id, so give id-less ones unique ids
    next_id = max([a for a in seen_ann_ids if isinstance(a, int)], default=0) + 1
    for ann in data["annotations"]:
        if "id" not in ann:
            ann["id"] = next_id
            next_id += 1


class _AnnotationPlace:
    """Names one annotation in error messages: the json file, the annotation id and its image."""

    def __init__(self, json_file: str, annotation_id: Any, image: Dict[str, Any]):
        self.json_file, self.annotation_id, self.image = json_file, annotation_id, image

    def __str__(self) -> str:
        image = self.image
        return (
            f"{self.json_file}: annotation {self.annotation_id} of image {image['id']} ('{image['file_name']}', "
            f"{image['height']}x{image['width']})"
        )


def _numbers(values: Any, what: str, where: _AnnotationPlace) -> List[float]:
    """``values`` as finite floats; CocoFormatError naming the annotation otherwise."""
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        raise CocoFormatError(f"{where}: its {what} {values!r} holds something that is not a number") from None
    if not math.isfinite(sum(numbers)):  # one sum catches any NaN or infinity cheaply
        raise CocoFormatError(f"{where}: its {what} has a non-finite coordinate (NaN or infinity): {values!r}")
    return numbers


def _rle_segmentation(segm: Dict[str, Any], where: _AnnotationPlace) -> Dict[str, Any]:
    """A compressed RLE dict, checked to be as large as its image."""
    if "counts" not in segm or "size" not in segm:
        raise CocoFormatError(f"{where}: its RLE segmentation lacks 'counts' or 'size'")
    size, counts = segm["size"], segm["counts"]
    expected = [int(where.image["height"]), int(where.image["width"])]
    if not isinstance(size, (list, tuple)) or list(size) != expected:
        raise CocoFormatError(
            f"{where}: its RLE segmentation has size {size} (height, width) but the image is "
            f"{expected[0]}x{expected[1]}; an RLE must cover its whole image"
        )
    if isinstance(counts, list):  # uncompressed RLE
        if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != expected[0] * expected[1]:
            raise CocoFormatError(
                f"{where}: its uncompressed RLE counts are not non-negative whole numbers adding up to "
                f"{expected[0]}x{expected[1]} = {expected[0] * expected[1]} pixels"
            )
        return mask_util.frPyObjects(segm, *expected)
    if not isinstance(counts, (str, bytes)):
        raise CocoFormatError(f"{where}: its RLE counts are a {type(counts).__name__}; expected a string or a list")
    if isinstance(counts, bytes):
        return {"size": size, "counts": counts.decode("ascii")}
    return segm


def _valid_polygons(segm: List[Any], where: _AnnotationPlace, dropped: Dict[str, List[Any]]) -> List[List[float]]:
    """The usable polygons of a polygon segmentation; the others are listed in ``dropped`` by reason."""
    valid = []
    for polygon in segm:
        if not isinstance(polygon, (list, tuple)):
            raise CocoFormatError(f"{where}: its segmentation holds {polygon!r} where a polygon (a list) should be")
        coordinates = _numbers(polygon, "polygon", where)
        if len(coordinates) % 2 != 0:
            dropped["odd"].append(where.annotation_id)
        elif len(coordinates) < 6:
            dropped["short"].append(where.annotation_id)
        else:
            valid.append(coordinates)
    return valid


def _example_ids(annotation_ids: List[Any]) -> str:
    if not annotation_ids:
        return ""
    shown = ", ".join(map(str, annotation_ids[:5]))
    return f" (annotation {shown}{', ...' if len(annotation_ids) > 5 else ''})"


def load_coco_json(
    json_file: str,
    image_root: str,
    dataset_name: Optional[str] = None,
    extra_annotation_keys: Optional[Sequence[str]] = None,
) -> List[Dict[str, Any]]:
    """Read a COCO instances json into dataset dicts (one per image, in the json's image order).

    Each dict has file_name (joined with ``image_root``), height, width, image_id and
    annotations; each annotation has bbox (XYWH absolute), bbox_mode, category_id (contiguous
    0..K-1, in increasing COCO id order), iscrowd and, when present, segmentation (a list of
    flat polygons, or a compressed RLE dict; uncompressed RLE is compressed here).
    When ``dataset_name`` is given, its metadata gets thing_classes and
    thing_dataset_id_to_contiguous_id.
    """
    data = _read_json(json_file)
    _validate(data, json_file)
    coco_api = COCO()
    coco_api.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        coco_api.createIndex()

    categories = sorted(coco_api.loadCats(coco_api.getCatIds()), key=lambda c: c["id"])
    id_map = {cat["id"]: i for i, cat in enumerate(categories)}
    if dataset_name is not None:
        MetadataCatalog.get(dataset_name).set(
            thing_classes=[c["name"] for c in categories], thing_dataset_id_to_contiguous_id=id_map
        )

    extra_keys = list(extra_annotation_keys or [])
    dropped = {"short": [], "odd": []}  # ids of annotations with polygons dropped, by reason
    dropped_boxes = dropped_instances = 0
    outside_boxes = []  # ids of annotations whose box lies wholly outside its image
    dataset_dicts = []
    for img in data["images"]:
        record = {
            "file_name": os.path.join(image_root, img["file_name"]),
            "height": int(img["height"]),
            "width": int(img["width"]),
            "image_id": img["id"],
        }
        objs = []
        for ann in coco_api.imgToAnns.get(img["id"], []):
            where = _AnnotationPlace(json_file, ann["id"], img)
            x, y, w, h = _numbers(ann["bbox"], "bbox", where)
            if w <= 0 or h <= 0:
                dropped_boxes += 1
                continue
            if x >= record["width"] or y >= record["height"] or x + w <= 0 or y + h <= 0:
                outside_boxes.append(ann["id"])
            obj = {
                "bbox": [x, y, w, h],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": id_map[ann["category_id"]],
                "iscrowd": int(ann.get("iscrowd", 0)),
            }
            for key in extra_keys:
                if key in ann:
                    obj[key] = ann[key]
            segm = ann.get("segmentation")
            if segm is not None and segm != []:
                if isinstance(segm, dict):
                    obj["segmentation"] = _rle_segmentation(segm, where)
                elif isinstance(segm, list):
                    valid = _valid_polygons(segm, where, dropped)
                    if not valid:
                        dropped_instances += 1
                        continue
                    obj["segmentation"] = valid
                else:
                    raise CocoFormatError(
                        f"{where}: its segmentation is a {type(segm).__name__}; expected a list of polygons or an "
                        "RLE dict"
                    )
            objs.append(obj)
        record["annotations"] = objs
        dataset_dicts.append(record)

    if dropped["short"] or dropped["odd"] or dropped_boxes:
        parts = [f"{len(dropped['short'])} polygon(s) with fewer than 3 points{_example_ids(dropped['short'])}"]
        if dropped["odd"]:
            parts.append(
                f"{len(dropped['odd'])} polygon(s) with an odd number of coordinates{_example_ids(dropped['odd'])}"
            )
        logger.warning(
            f"{json_file}: dropped {', '.join(parts)} ({dropped_instances} annotation(s) left without any "
            f"polygon, removed) and {dropped_boxes} annotation(s) whose box has no area."
        )
    if outside_boxes:
        logger.warning(
            f"{json_file}: {len(outside_boxes)} annotation(s) have a box wholly outside their image"
            f"{_example_ids(outside_boxes)}; training drops them. Do the images' height and width match the files?"
        )
    num_instances = sum(len(d["annotations"]) for d in dataset_dicts)
    logger.info(f"Loaded {len(dataset_dicts)} images and {num_instances} instances from {json_file}")
    return dataset_dicts


def register_coco_instances(name: str, metadata: Dict[str, Any], json_file: str, image_root: str) -> None:
    """Register a COCO-format instance dataset under ``name`` (loaded lazily on first use)."""
    if not isinstance(name, str):
        raise TypeError(f"register_coco_instances: name must be a str, got {type(name).__name__}")
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    DatasetCatalog.register(name, lambda: load_coco_json(json_file, image_root, name))
    MetadataCatalog.get(name).set(json_file=json_file, image_root=image_root, evaluator_type="coco", **metadata)
