"""Turn a registered dataset (dataset dicts, no json) into a COCO instances json, cached by content.

COCO evaluation needs the ground truth as a COCO json. Datasets registered with
`register_coco_instances` already have one (metadata ``json_file``); any other dataset is
converted here from its dataset dicts. The file name carries a hash of the dicts and the
class metadata, so the conversion runs once per distinct content: a later evaluation of the
same data finds the file and reuses it, while changed data gets a new file.
"""

import datetime
import hashlib
import json
import logging
import os
import tempfile
from typing import Any, Dict, List, Optional

import numpy as np
import pycocotools.mask as mask_util

from mrcnn.data.catalog import DatasetCatalog, MetadataCatalog
from mrcnn.structures import BoxMode
from mrcnn.utils.atomic_save import atomic_write_text

__all__ = ["convert_to_coco_dict", "convert_to_coco_json", "dataset_content_hash", "default_coco_cache_dir"]

logger = logging.getLogger(__name__)

# bump when the output format changes so stale caches are not reused
_FORMAT_VERSION = 1


def default_coco_cache_dir() -> str:
    """Where converted jsons go when no output directory is given ($MRCNN_CACHE or the temp dir)."""
    root = os.environ.get("MRCNN_CACHE") or os.path.join(tempfile.gettempdir(), "mrcnn_cache")
    return os.path.join(root, "coco_format")


def _category_ids(metadata: Any, num_classes: int) -> List[int]:
    """Dataset category id of every contiguous class index 0..K-1."""
    id_map = metadata.get("thing_dataset_id_to_contiguous_id")
    if not id_map:
        return list(range(num_classes))  # no original ids: the contiguous ones are the ids
    reverse = {contiguous: dataset_id for dataset_id, contiguous in id_map.items()}
    missing = [i for i in range(num_classes) if i not in reverse]
    if missing:
        raise ValueError(
            f"Metadata of dataset '{metadata.name}': thing_dataset_id_to_contiguous_id has no entry for "
            f"contiguous class(es) {missing}"
        )
    return [reverse[i] for i in range(num_classes)]


def _segmentation_and_area(segm: Any, height: int, width: int, where: str):
    """COCO segmentation (polygons or compressed RLE with str counts) and its pixel area."""
    if isinstance(segm, list):
        polygons = [[float(v) for v in p] for p in segm if len(p) >= 6 and len(p) % 2 == 0]
        if not polygons:
            return None, None
        rle = mask_util.merge(mask_util.frPyObjects(polygons, height, width))
        return polygons, float(mask_util.area(rle))
    if isinstance(segm, dict):
        if isinstance(segm.get("counts"), list):  # uncompressed RLE
            rle = mask_util.frPyObjects(segm, *segm["size"])
        else:
            rle = dict(segm)
        area = float(mask_util.area(rle))
        if isinstance(rle["counts"], bytes):
            rle["counts"] = rle["counts"].decode("ascii")
        return {"size": list(rle["size"]), "counts": rle["counts"]}, area
    if isinstance(segm, np.ndarray):
        if segm.ndim != 2:
            raise ValueError(f"{where}: a bitmask segmentation must be 2-D, got shape {segm.shape}")
        rle = mask_util.encode(np.asfortranarray(segm.astype(np.uint8)))
        area = float(mask_util.area(rle))
        return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}, area
    raise TypeError(f"{where}: segmentation of type {type(segm).__name__} is not polygons, RLE or a bitmask")


def convert_to_coco_dict(dataset_name: str, dataset_dicts: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """COCO instances dict (images, annotations, categories) of a registered dataset.

    Boxes become XYWH; category ids go back to the dataset's original ids through
    ``thing_dataset_id_to_contiguous_id`` (identity when absent); ``area`` is the mask's
    pixel area when there is a segmentation, else the box area (COCO's area ranges use it).
    """
    if dataset_dicts is None:
        dataset_dicts = DatasetCatalog.get(dataset_name)
    metadata = MetadataCatalog.get(dataset_name)
    thing_classes = metadata.get("thing_classes")
    if thing_classes is None:
        raise ValueError(f"Dataset '{dataset_name}' has no thing_classes in its metadata; COCO conversion needs them.")
    category_ids = _category_ids(metadata, len(thing_classes))
    categories = [{"id": cid, "name": name} for cid, name in zip(category_ids, thing_classes)]

    images, annotations = [], []
    for index, record in enumerate(dataset_dicts):
        if "image_id" not in record:
            raise KeyError(f"Dataset '{dataset_name}': record {index} has no 'image_id', which evaluation matches on")
        height, width = int(record["height"]), int(record["width"])
        images.append(
            {
                "id": record["image_id"],
                "width": width,
                "height": height,
                "file_name": str(record.get("file_name", "")),
            }
        )
        for obj in record.get("annotations", []):
            where = f"Dataset '{dataset_name}', image {record['image_id']}"
            box = BoxMode.convert(
                list(map(float, obj["bbox"])), obj.get("bbox_mode", BoxMode.XYWH_ABS), BoxMode.XYWH_ABS
            )
            category = int(obj["category_id"])
            if not 0 <= category < len(category_ids):
                raise ValueError(f"{where}: category_id {category} is outside 0..{len(category_ids) - 1}")
            ann = {
                "id": len(annotations) + 1,
                "image_id": record["image_id"],
                "bbox": [round(v, 3) for v in box],
                "category_id": category_ids[category],
                "iscrowd": int(obj.get("iscrowd", 0)),
            }
            area = float(box[2] * box[3])
            if obj.get("segmentation") is not None:
                segm, mask_area = _segmentation_and_area(obj["segmentation"], height, width, where)
                if segm is not None:
                    ann["segmentation"] = segm
                    area = mask_area
            ann["area"] = float(obj["area"]) if "area" in obj else area
            annotations.append(ann)

    logger.info(
        f"Converted dataset '{dataset_name}' to COCO format: {len(images)} images, {len(annotations)} annotations"
    )
    return {
        "info": {
            "description": f"{dataset_name}, converted from dataset dicts by mrcnn",
            "date_created": str(datetime.datetime.now()),
        },
        "images": images,
        "annotations": annotations,
        "categories": categories,
        "licenses": [],
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("ascii", errors="replace")
    return str(value)


def dataset_content_hash(dataset_name: str, dataset_dicts: List[Dict[str, Any]]) -> str:
    """Hex digest of the dataset dicts plus the class metadata the conversion reads."""
    metadata = MetadataCatalog.get(dataset_name)
    digest = hashlib.sha256()
    header = {
        "format": _FORMAT_VERSION,
        "thing_classes": metadata.get("thing_classes"),
        "id_map": sorted((metadata.get("thing_dataset_id_to_contiguous_id") or {}).items()),
    }
    digest.update(json.dumps(header, sort_keys=True, default=_json_default).encode())
    for record in dataset_dicts:  # record by record, so no single giant string is built
        digest.update(json.dumps(record, sort_keys=True, default=_json_default).encode())
    return digest.hexdigest()


def convert_to_coco_json(dataset_name: str, cache_dir: Optional[str] = None) -> str:
    """Path of a COCO json of ``dataset_name`` in ``cache_dir``, written only if not cached yet."""
    cache_dir = cache_dir or default_coco_cache_dir()
    dataset_dicts = DatasetCatalog.get(dataset_name)
    content_hash = dataset_content_hash(dataset_name, dataset_dicts)
    safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in dataset_name)
    path = os.path.join(cache_dir, f"{safe_name}_coco_format_{content_hash[:16]}.json")
    if os.path.isfile(path):
        logger.info(f"Reusing the cached COCO json of dataset '{dataset_name}': {path}")
        return path
    coco_dict = convert_to_coco_dict(dataset_name, dataset_dicts)
    os.makedirs(cache_dir, exist_ok=True)
    # write then rename, so a reader never sees a half-written file; readable as any file written
    # with open() (the umask's mode, not the temporary file's owner-only one)
    atomic_write_text(path, json.dumps(coco_dict))
    logger.info(f"Wrote the COCO json of dataset '{dataset_name}' to {path}")
    return path
