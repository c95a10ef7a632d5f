"""Functions the mapper uses: read images, transform annotations, turn them into `Instances`."""

import logging
from typing import Any, Dict, List, Sequence, Union

import numpy as np
import pycocotools.mask as mask_util
import torch
from PIL import Image, ImageOps

from mrcnn.structures import BitMasks, Boxes, BoxMode, Instances, PolygonMasks, polygons_to_bitmask

from . import transforms as T

__all__ = [
    "ImageLoadError",
    "SizeMismatchError",
    "UnsupportedImageError",
    "read_image",
    "convert_PIL_to_numpy",
    "check_image_size",
    "check_mask_sizes",
    "transform_instance_annotations",
    "annotations_to_instances",
    "filter_empty_instances",
    "annotation_is_nonempty",
    "segmentation_bounding_box",
    "build_augmentation",
]

logger = logging.getLogger(__name__)

SUPPORTED_FORMATS = ("RGB", "BGR", "L")


class ImageLoadError(OSError):
    """An image file is missing or cannot be decoded; ``file_name`` says which."""

    def __init__(self, file_name: str, reason: str):
        super().__init__(f"Cannot read image {file_name}: {reason}")
        self.file_name = file_name


class SizeMismatchError(ValueError):
    """The decoded image's size differs from the height/width in its dataset dict."""


class UnsupportedImageError(ValueError):
    """An image whose pixels have no sensible 8-bit reading (e.g. 32-bit floats); the message says why."""


# Pillow's modes for 16-bit grayscale (PNG, TIFF, PGM); "I" (32-bit signed) is how some files and
# older Pillow versions deliver the same data.
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def _sixteen_bit_to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit grayscale image (or mode "I" with values in 0..65535) as mode "L": the high byte of each value."""
    values = np.asarray(image)
    if image.mode == "I" and values.size:
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > 65535:
            raise UnsupportedImageError(
                f"32-bit integer pixels (PIL mode I) range over {low}..{high}, beyond 16 bits; "
                "there is no standard 8-bit reading of them, so convert the image to 8 bits first"
            )
    return Image.fromarray((values.astype(np.uint32) >> 8).astype(np.uint8), mode="L")


def convert_PIL_to_numpy(image: Image.Image, format: str) -> np.ndarray:
    """A PIL image as an HWC uint8 array in ``format`` ("RGB", "BGR" or "L" → (H, W, 1)).

    Every PIL mode an image file can have becomes 8 bits per channel:
    - 16-bit grayscale (modes I;16*, and mode I with values in 0..65535) keeps the high byte of
      each value (value // 256, so 65535 → 255), as Pillow does for 16-bit colour PNGs and OpenCV
      for 16-bit files; an image that only uses the low bits (e.g. 12-bit data) therefore looks dark;
    - 1 (bilevel) gives 0/255, P (palette) its palette colours, CMYK and YCbCr their RGB;
    - alpha (RGBA, LA, PA, P with transparency) is dropped: the stored colour of every pixel is kept,
      as detectron2 and torchvision do, whatever its transparency.
    32-bit floats (mode F), integers beyond 16 bits and modes Pillow cannot convert (LAB, ...)
    raise UnsupportedImageError.
    """
    if format not in SUPPORTED_FORMATS:
        raise ValueError(f"Unsupported image format '{format}'; expected one of {SUPPORTED_FORMATS}")
    target = "L" if format == "L" else "RGB"
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "I":
        image = _sixteen_bit_to_8bit(image)
    elif image.mode == "F":
        raise UnsupportedImageError(
            "32-bit floating-point pixels (PIL mode F) have no standard 8-bit reading; "
            "save the image with 8 (or 16) bits per channel"
        )
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # Pillow warns when a transparent palette image goes straight to RGB
    try:
        image = image.convert(target)
    except ValueError as error:
        raise UnsupportedImageError(f"PIL mode {image.mode} cannot be converted to {target} ({error})") from None
    array = np.asarray(image)
    if format == "L":
        return array[..., None]
    if format == "BGR":
        array = array[..., ::-1]
    return np.ascontiguousarray(array)


def read_image(file_name: str, format: str = "RGB") -> np.ndarray:
    """Read an image file with EXIF orientation applied, as HWC uint8 in ``format``.

    16-bit and other non-8-bit files are brought to 8 bits as `convert_PIL_to_numpy` says.
    Raises ImageLoadError (naming the file) when it is missing, cannot be decoded or has pixels
    without an 8-bit reading (32-bit floats).
    """
    if format not in SUPPORTED_FORMATS:
        raise ValueError(f"Unsupported image format '{format}'; expected one of {SUPPORTED_FORMATS}")
    try:
        with Image.open(file_name) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return convert_PIL_to_numpy(image, format)
    except FileNotFoundError:
        raise ImageLoadError(file_name, "no such file") from None
    except UnsupportedImageError as e:
        raise ImageLoadError(file_name, str(e)) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageLoadError(file_name, f"{type(e).__name__}: {e}") from None


def check_image_size(dataset_dict: Dict[str, Any], image: np.ndarray) -> None:
    """Fill in missing height/width, or raise SizeMismatchError if they disagree with the image."""
    h, w = image.shape[:2]
    expected = (dataset_dict.get("height"), dataset_dict.get("width"))
    if expected[0] is not None and expected[1] is not None and (h, w) != tuple(expected):
        raise SizeMismatchError(
            f"Image {dataset_dict.get('file_name', '<unknown>')} is {h}x{w} (HxW) but its annotation says "
            f"{expected[0]}x{expected[1]}; fix the annotation (EXIF rotation is applied when reading)."
        )
    dataset_dict.setdefault("height", h)
    dataset_dict.setdefault("width", w)


def check_mask_sizes(dataset_dict: Dict[str, Any], image_size: Sequence[int]) -> None:
    """Raise SizeMismatchError, naming the file and annotation, if an RLE or bitmask differs from the image.

    ``image_size`` is the decoded image's (height, width). Polygons have no size of their own.
    """
    for index, annotation in enumerate(dataset_dict.get("annotations", [])):
        segm = annotation.get("segmentation")
        if isinstance(segm, dict):
            size = tuple(int(v) for v in segm.get("size", ()))
        elif isinstance(segm, np.ndarray):
            size = segm.shape
        else:
            continue
        if size != tuple(image_size):
            name = f"id {annotation['id']}" if "id" in annotation else f"#{index}"
            raise SizeMismatchError(
                f"Image {dataset_dict.get('file_name', '<unknown>')}: annotation {name} has a mask of size "
                f"{'x'.join(map(str, size)) or 'unknown'} (HxW) but the image is {image_size[0]}x{image_size[1]}"
            )


def _segmentation_to_mask(segm: Union[dict, np.ndarray], height: int, width: int) -> np.ndarray:
    if isinstance(segm, dict):
        if isinstance(segm["counts"], list):  # uncompressed RLE
            segm = mask_util.frPyObjects(segm, *segm["size"])
        mask = mask_util.decode(segm).astype(bool)
    else:
        mask = np.asarray(segm).astype(bool)
    if mask.shape != (height, width):
        raise ValueError(f"A mask of shape {mask.shape} does not match its image of {height}x{width}")
    return mask


def _to_xyxy(bbox: Sequence[float], mode: BoxMode) -> np.ndarray:
    """One box as a float64 (4,) XYXY_ABS array (numpy: cheaper than BoxMode.convert per box)."""
    box = np.asarray(bbox, dtype=np.float64).reshape(4)
    mode = BoxMode(mode)
    if mode == BoxMode.XYXY_ABS:
        return box.copy()
    if mode == BoxMode.XYWH_ABS:
        return np.array([box[0], box[1], box[0] + box[2], box[1] + box[3]])
    raise ValueError(f"Unsupported bbox_mode {mode!r}; dataset dicts use XYWH_ABS or XYXY_ABS")


def transform_instance_annotations(
    annotation: Dict[str, Any], transforms: T.TransformList, image_size: Sequence[int]
) -> Dict[str, Any]:
    """Apply ``transforms`` to one annotation's box and segmentation; the box becomes XYXY_ABS.

    ``image_size`` is (height, width) after the transforms. Polygons stay flat polygon lists;
    RLE and bitmask segmentations become (H, W) bool arrays.
    """
    bbox = _to_xyxy(annotation["bbox"], annotation.get("bbox_mode", BoxMode.XYWH_ABS))
    bbox = transforms.apply_box(bbox[None])[0].clip(min=0)
    bbox = np.minimum(bbox, np.array([image_size[1], image_size[0]] * 2, dtype=np.float64))
    annotation["bbox"], annotation["bbox_mode"] = bbox, BoxMode.XYXY_ABS

    if "segmentation" in annotation:
        segm = annotation["segmentation"]
        if isinstance(segm, list):
            polygons = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in segm]
            annotation["segmentation"] = [p.reshape(-1) for p in transforms.apply_polygons(polygons)]
        else:
            original_size = segm["size"] if isinstance(segm, dict) else np.asarray(segm).shape
            mask = _segmentation_to_mask(segm, *original_size)
            annotation["segmentation"] = transforms.apply_segmentation(mask).astype(bool)
    return annotation


def annotations_to_instances(
    annotations: List[Dict[str, Any]], image_size: Sequence[int], mask_format: str = "polygon"
) -> Instances:
    """Transformed annotations → Instances with gt_boxes, gt_classes and (if segmented) gt_masks.

    With ``mask_format="polygon"``, an image whose annotations are all polygons gets
    PolygonMasks; if any is an RLE or bitmask (e.g. occluded shapes, crowd regions), that image
    gets BitMasks instead, since such masks have no exact polygon form. "bitmask" always gives
    BitMasks. Boxes are clipped to the image.
    """
    if mask_format not in ("polygon", "bitmask"):
        raise ValueError(f"INPUT.MASK_FORMAT must be 'polygon' or 'bitmask', got '{mask_format}'")
    height, width = int(image_size[0]), int(image_size[1])
    instances = Instances((height, width))
    boxes = np.array(
        [_to_xyxy(a["bbox"], a.get("bbox_mode", BoxMode.XYWH_ABS)) for a in annotations], dtype=np.float32
    ).reshape(-1, 4)
    gt_boxes = Boxes(torch.as_tensor(boxes))
    gt_boxes.clip((height, width))
    instances.gt_boxes = gt_boxes
    instances.gt_classes = torch.tensor([int(a["category_id"]) for a in annotations], dtype=torch.int64)

    if annotations and "segmentation" in annotations[0]:
        segms = [a.get("segmentation") for a in annotations]
        if any(s is None for s in segms):
            raise ValueError("Some annotations of this image have a segmentation and some do not")
        all_polygons = all(isinstance(s, list) for s in segms)
        if mask_format == "polygon" and all_polygons:
            instances.gt_masks = PolygonMasks([[np.asarray(p, dtype=np.float64).reshape(-1) for p in s] for s in segms])
        else:
            masks = [
                polygons_to_bitmask(s, height, width)
                if isinstance(s, list)
                else _segmentation_to_mask(s, height, width)
                for s in segms
            ]
            instances.gt_masks = BitMasks(
                torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, height, width), dtype=torch.bool)
            )
    return instances


def segmentation_bounding_box(segmentation: Union[list, np.ndarray]) -> np.ndarray:
    """Tight XYXY box (4,) of transformed polygons (flat arrays) or an (H, W) mask; zeros if empty."""
    if isinstance(segmentation, list):
        if not segmentation:
            return np.zeros(4)
        points = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in segmentation])
        return np.concatenate([points.min(axis=0), points.max(axis=0)])
    rows, cols = np.any(segmentation, axis=1), np.any(segmentation, axis=0)
    if not rows.any():
        return np.zeros(4)
    y0, y1 = np.nonzero(rows)[0][[0, -1]]
    x0, x1 = np.nonzero(cols)[0][[0, -1]]
    return np.array([x0, y0, x1 + 1, y1 + 1], dtype=np.float64)


def annotation_is_nonempty(annotation: Dict[str, Any], box_threshold: float = 1e-5) -> bool:
    """Whether a transformed annotation (XYXY box) still has a box with area and, if segmented, a mask.

    Checked on numpy data before `Instances` are built: cheaper than `filter_empty_instances`.
    """
    x0, y0, x1, y1 = annotation["bbox"]
    if x1 - x0 <= box_threshold or y1 - y0 <= box_threshold:
        return False
    segmentation = annotation.get("segmentation")
    if segmentation is None:
        return True
    if isinstance(segmentation, list):
        return len(segmentation) > 0
    return bool(np.any(segmentation))


def filter_empty_instances(
    instances: Instances, by_box: bool = True, by_mask: bool = True, box_threshold: float = 1e-5
) -> Instances:
    """Drop instances whose box is (nearly) empty or whose mask has no pixels (e.g. cropped away)."""
    keep = torch.ones(len(instances), dtype=torch.bool)
    if by_box:
        keep &= instances.gt_boxes.nonempty(threshold=box_threshold)
    if by_mask and instances.has("gt_masks"):
        keep &= instances.gt_masks.nonempty()
    return instances if bool(keep.all()) else instances[keep]


def build_augmentation(cfg, is_train: bool) -> List[T.Augmentation]:
    """The augmentation list INPUT.* asks for (train: crop, photometric, resize, flips; test: resize)."""
    if not is_train:
        return [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice")]
    augmentations: List[T.Augmentation] = []
    crop = cfg.INPUT.CROP
    if crop.ENABLED:
        augmentations.append(T.RandomCrop(crop.TYPE, crop.SIZE))
    photometric = cfg.INPUT.PHOTOMETRIC_DISTORT
    if photometric.ENABLED and cfg.INPUT.FORMAT not in ("RGB", "BGR"):
        raise ValueError(f"INPUT.PHOTOMETRIC_DISTORT needs INPUT.FORMAT 'RGB' or 'BGR', got '{cfg.INPUT.FORMAT}'")
    if photometric.ENABLED:
        # before resizing: fewer pixels to change when upscaling, and the result barely differs
        augmentations.append(
            T.RandomPhotometricDistort(
                brightness=photometric.BRIGHTNESS,
                contrast=photometric.CONTRAST,
                saturation=photometric.SATURATION,
                hue=photometric.HUE,
                prob=photometric.PROB,
                image_format=cfg.INPUT.FORMAT,
            )
        )
    augmentations.append(
        T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING)
    )
    flip, prob = cfg.INPUT.RANDOM_FLIP, cfg.INPUT.RANDOM_FLIP_PROB
    if flip not in ("none", "horizontal", "vertical", "both"):
        raise ValueError(f"INPUT.RANDOM_FLIP must be 'none', 'horizontal', 'vertical' or 'both', got '{flip}'")
    if flip in ("horizontal", "both"):
        augmentations.append(T.RandomFlip(prob, horizontal=True, vertical=False))
    if flip in ("vertical", "both"):
        augmentations.append(T.RandomFlip(prob, horizontal=False, vertical=True))
    return augmentations
