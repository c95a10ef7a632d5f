"""Load COCO-format instance annotations (json) into dataset dicts, and register such datasets."""
import contextlib
import io
import json
import logging
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
        raise CocoFormatError(f"{json_file}: missing top-level key(s) {missing}; a COCO instances file has "
                              "'images', 'annotations' and 'categories'")
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
    dropped_polygons = dropped_boxes = dropped_instances = 0
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
            x, y, w, h = (float(v) for v in ann["bbox"])
            if w <= 0 or h <= 0:
                dropped_boxes += 1
                continue
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
                    if "counts" not in segm or "size" not in segm:
                        raise CocoFormatError(f"{json_file}: annotation {ann['id']} has an RLE without counts/size")
                    if isinstance(segm["counts"], list):  # uncompressed RLE
                        h_img, w_img = segm["size"]
                        segm = mask_util.frPyObjects(segm, h_img, w_img)
                    elif isinstance(segm["counts"], bytes):
                        segm = {"size": segm["size"], "counts": segm["counts"].decode("ascii")}
                    obj["segmentation"] = segm
                elif isinstance(segm, list):
                    valid = [list(map(float, p)) for p in segm if len(p) % 2 == 0 and len(p) >= 6]
                    dropped_polygons += len(segm) - len(valid)
                    if not valid:
                        dropped_instances += 1
                        continue
                    obj["segmentation"] = valid
                else:
                    raise CocoFormatError(
                        f"{json_file}: annotation {ann['id']} has a segmentation of type "
                        f"{type(segm).__name__}; expected a list of polygons or an RLE dict"
                    )
            objs.append(obj)
        record["annotations"] = objs
        dataset_dicts.append(record)

    if dropped_polygons or dropped_boxes:
        logger.warning(
            f"{json_file}: dropped {dropped_polygons} polygon(s) with fewer than 3 points "
            f"({dropped_instances} annotation(s) left without any polygon, removed) and "
            f"{dropped_boxes} annotation(s) whose box has no area."
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
