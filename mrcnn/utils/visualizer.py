"""Pictures of instance predictions and of ground truth: masks, boxes and labels drawn with Pillow.

    vis = Visualizer(image_rgb, MetadataCatalog.get("shapes_val"))
    vis.draw_instance_predictions(outputs["instances"].to("cpu")).save("out.png")

Masks are filled semi-transparently and outlined, each instance in its own colour (the class
colour from ``metadata.thing_colors``, varied slightly per instance, when the metadata has it),
boxes are outlined and every instance gets a "class score%" label kept inside the picture.
Drawing is plain numpy + Pillow, so it is fast enough for 100 full-size masks per image.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from enum import Enum
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pycocotools.mask as mask_util
import torch
from PIL import Image, ImageDraw, ImageFont

from mrcnn.structures import BitMasks, Boxes, BoxMode, Instances, PolygonMasks, polygons_to_bitmask

from .colormap import distinct_colors, jitter_color

__all__ = ["ColorMode", "VisImage", "Visualizer"]

Color = Tuple[int, int, int]

_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP"}


class ColorMode(Enum):
    """How instances are coloured."""

    IMAGE = 0  # a colour per instance (class colour varied per instance when the metadata has one)
    SEGMENTATION = 1  # a colour per class: every instance of a class looks the same
    IMAGE_BW = 2  # like IMAGE, and the image outside all masks is turned grey so masks stand out


class VisImage:
    """The picture being drawn: an (H, W, 3) uint8 RGB array, saved as PNG or JPEG."""

    def __init__(self, image: np.ndarray, scale: float = 1.0):
        self.img = image
        self.scale = scale

    @property
    def height(self) -> int:
        return int(self.img.shape[0])

    @property
    def width(self) -> int:
        return int(self.img.shape[1])

    def get_image(self) -> np.ndarray:
        """The picture as an (H, W, 3) uint8 RGB array (a copy)."""
        return self.img.copy()

    def save(self, path: str) -> None:
        """Write the picture; the extension (.png, .jpg/.jpeg, .bmp, .webp) picks the format."""
        extension = os.path.splitext(path)[1].lower()
        if extension not in _SAVE_FORMATS:
            raise ValueError(
                f"Cannot save picture '{path}': unknown extension '{extension}'; use one of {sorted(_SAVE_FORMATS)}"
            )
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        image_format = _SAVE_FORMATS[extension]
        options = {"quality": 95} if image_format in ("JPEG", "WEBP") else {}
        Image.fromarray(self.img).save(path, format=image_format, **options)


class Visualizer:
    """Draws instances (predicted or ground truth) on an RGB image.

    Args:
        img_rgb: (H, W, 3) image in RGB order, uint8 or float in 0-255 (an (H, W) grey image is
            accepted too). Convert BGR images first (``image[:, :, ::-1]``).
        metadata: dataset metadata; ``thing_classes`` names the classes and ``thing_colors``
            (RGB 0-255 per class) colours them. Optional.
        scale: size of the picture relative to the image.
        instance_mode: a :class:`ColorMode`.
    """

    def __init__(
        self,
        img_rgb: Union[np.ndarray, torch.Tensor],
        metadata: Any = None,
        scale: float = 1.0,
        instance_mode: ColorMode = ColorMode.IMAGE,
    ):
        image = _as_rgb_uint8(img_rgb)
        if scale <= 0:
            raise ValueError(f"Visualizer scale must be positive, got {scale}")
        self.metadata = metadata
        self.instance_mode = instance_mode
        self.input_height, self.input_width = int(image.shape[0]), int(image.shape[1])
        out_width = max(1, int(round(self.input_width * scale)))
        out_height = max(1, int(round(self.input_height * scale)))
        if (out_width, out_height) != (self.input_width, self.input_height):
            image = np.array(Image.fromarray(image).resize((out_width, out_height), Image.BILINEAR))
        # a private copy: drawing must never write into the caller's array
        self.output = VisImage(np.array(image, dtype=np.uint8, order="C", copy=True), scale=scale)
        self.scale = scale
        # sizes follow the picture's diagonal-ish size so small and large pictures both read well
        typical_side = math.sqrt(out_width * out_height)
        self._line_width = max(1, int(round(typical_side / 400)))
        self._font_size = max(10, int(round(typical_side / 60)))

    # --- entry points -------------------------------------------------------------------------
    def draw_instance_predictions(self, predictions: Instances, alpha: float = 0.5) -> VisImage:
        """Draw an Instances with pred_boxes / scores / pred_classes / pred_masks (any may be missing)."""
        boxes = predictions.pred_boxes if predictions.has("pred_boxes") else None
        scores = predictions.scores if predictions.has("scores") else None
        classes = predictions.pred_classes if predictions.has("pred_classes") else None
        masks = predictions.pred_masks if predictions.has("pred_masks") else None
        classes_list = None if classes is None else [int(c) for c in _to_numpy(classes).reshape(-1)]
        scores_list = None if scores is None else [float(s) for s in _to_numpy(scores).reshape(-1)]
        labels = self._text_labels(classes_list, scores_list, len(predictions))
        colors = self._instance_colors(classes_list, len(predictions))
        if self.instance_mode == ColorMode.IMAGE_BW and masks is not None:
            self._grey_out_background(_masks_to_arrays(masks, self.input_height, self.input_width))
        return self.overlay_instances(boxes=boxes, labels=labels, masks=masks, assigned_colors=colors, alpha=alpha)

    def draw_ground_truth_instances(self, instances: Instances, alpha: float = 0.5) -> VisImage:
        """Draw an Instances with gt_boxes / gt_classes / gt_masks, as the data loader yields them."""
        classes = [int(c) for c in _to_numpy(instances.gt_classes).reshape(-1)] if instances.has("gt_classes") else None
        labels = self._text_labels(classes, None, len(instances))
        return self.overlay_instances(
            boxes=instances.gt_boxes if instances.has("gt_boxes") else None,
            labels=labels,
            masks=instances.gt_masks if instances.has("gt_masks") else None,
            assigned_colors=self._instance_colors(classes, len(instances)),
            alpha=alpha,
        )

    def draw_dataset_dict(self, dic: Dict[str, Any], alpha: float = 0.5) -> VisImage:
        """Draw the ground truth of a dataset dict: "annotations" with bbox/bbox_mode, segmentation, category_id."""
        annotations = dic.get("annotations") or []
        if not annotations:
            return self.output
        boxes, masks, classes = [], [], []
        has_masks = any("segmentation" in a for a in annotations)
        for index, annotation in enumerate(annotations):
            if "bbox" in annotation:
                mode = annotation.get("bbox_mode", BoxMode.XYWH_ABS)
                boxes.append(BoxMode.convert(list(annotation["bbox"]), mode, BoxMode.XYXY_ABS))
            else:
                boxes.append(None)
            if has_masks:
                masks.append(annotation.get("segmentation", []))
            if "category_id" not in annotation:
                raise KeyError(f"draw_dataset_dict: annotation {index} has no 'category_id'")
            classes.append(int(annotation["category_id"]))
        labels = self._text_labels(classes, None, len(annotations))
        labels = [
            label + (" crowd" if annotation.get("iscrowd", 0) else "") if label is not None else None
            for label, annotation in zip(labels, annotations)
        ]
        mask_arrays = _masks_to_arrays(masks, self.input_height, self.input_width) if has_masks else None
        if all(box is None for box in boxes):
            box_array = None
        else:
            # an annotation without a box gets its mask's box (or an empty one) so labels still have a place
            box_array = np.zeros((len(boxes), 4), dtype=np.float64)
            for index, box in enumerate(boxes):
                if box is not None:
                    box_array[index] = box
                elif mask_arrays is not None:
                    box_array[index] = _mask_box(mask_arrays[index])
        colors = self._instance_colors(classes, len(annotations))
        if self.instance_mode == ColorMode.IMAGE_BW and mask_arrays is not None:
            self._grey_out_background(mask_arrays)
        return self.overlay_instances(
            boxes=box_array, labels=labels, masks=mask_arrays, assigned_colors=colors, alpha=alpha
        )

    def overlay_instances(
        self,
        boxes: Any = None,
        labels: Optional[Sequence[Optional[str]]] = None,
        masks: Any = None,
        assigned_colors: Optional[Sequence[Color]] = None,
        alpha: float = 0.5,
    ) -> VisImage:
        """Draw N instances: masks first (largest first, so small ones stay visible), then boxes and labels.

        Args:
            boxes: (N, 4) XYXY in image pixels: Boxes, tensor, array or list; or None.
            labels: N strings (None entries are skipped), or None.
            masks: N masks: (N, H, W) bool tensor/array, BitMasks, PolygonMasks, or a list with one
                entry per instance of polygons (list of flat [x0, y0, ...] lists), COCO RLE dict
                or (H, W) array; or None.
            assigned_colors: N RGB colours (0-255); default distinct colours.
            alpha: opacity of the mask fill.
        """
        box_array = None if boxes is None else _boxes_to_numpy(boxes)
        mask_arrays = None if masks is None else _masks_to_arrays(masks, self.input_height, self.input_width)
        count = _common_length(box_array, labels, mask_arrays)
        if count == 0:
            return self.output
        if assigned_colors is None:
            assigned_colors = distinct_colors(count)
        if len(assigned_colors) != count:
            raise ValueError(f"overlay_instances: {len(assigned_colors)} colours for {count} instances")

        if box_array is not None:
            areas = (box_array[:, 2] - box_array[:, 0]) * (box_array[:, 3] - box_array[:, 1])
        elif mask_arrays is not None:
            areas = np.array([float(m.sum()) for m in mask_arrays])
        else:
            areas = np.zeros(count)
        order = np.argsort(-areas, kind="stable")

        if mask_arrays is not None:
            for index in order:
                self.draw_binary_mask(mask_arrays[index], assigned_colors[index], alpha=alpha)

        canvas = Image.fromarray(self.output.img)
        draw = ImageDraw.Draw(canvas)
        for index in order:
            box = box_array[index] if box_array is not None else None
            if box is None and mask_arrays is not None:
                box = _mask_box(mask_arrays[index])
            if box is not None and box_array is not None:
                self._draw_box_on(draw, box, assigned_colors[index])
            if labels is not None and labels[index] and box is not None and box[2] >= box[0]:
                self._draw_label_on(draw, labels[index], box, assigned_colors[index])
        self.output.img = np.asarray(canvas).copy()
        return self.output

    def draw_binary_mask(
        self,
        mask: Union[np.ndarray, torch.Tensor],
        color: Color,
        alpha: float = 0.5,
        edge_color: Optional[Color] = None,
    ) -> VisImage:
        """Fill an (H, W) mask (image size) with `color` at opacity `alpha` and outline it inside its edge."""
        mask = _to_numpy(mask).astype(bool, copy=False)
        if mask.shape != (self.input_height, self.input_width):
            raise ValueError(
                f"draw_binary_mask: mask of shape {mask.shape} for an image of "
                f"{(self.input_height, self.input_width)} (H, W)"
            )
        if (self.output.height, self.output.width) != mask.shape:
            mask = (
                np.asarray(
                    Image.fromarray(mask.astype(np.uint8) * 255).resize(
                        (self.output.width, self.output.height), Image.NEAREST
                    )
                )
                > 127
            )
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return self.output
        cols = np.flatnonzero(mask.any(axis=0))
        # work inside the mask's tight box: 100 full-size masks would otherwise cost seconds
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        crop = mask[y0:y1, x0:x1]
        region = self.output.img[y0:y1, x0:x1].astype(np.float32)
        fill = np.asarray(color, dtype=np.float32)[:3]
        region[crop] = region[crop] * (1.0 - alpha) + fill * alpha
        edge = crop & ~_erode(crop, self._line_width)
        outline = np.asarray(edge_color if edge_color is not None else _darker(color), dtype=np.float32)[:3]
        region[edge] = outline
        self.output.img[y0:y1, x0:x1] = np.round(region).astype(np.uint8)
        return self.output

    def draw_box(self, box_xyxy: Sequence[float], color: Color) -> VisImage:
        """Outline a box given in image pixels (XYXY)."""
        canvas = Image.fromarray(self.output.img)
        self._draw_box_on(ImageDraw.Draw(canvas), np.asarray(box_xyxy, dtype=np.float64), color)
        self.output.img = np.asarray(canvas).copy()
        return self.output

    def draw_text(self, text: str, box_xyxy: Sequence[float], color: Color) -> VisImage:
        """Write `text` on a label tag at the top-left of a box (image pixels), kept inside the picture."""
        canvas = Image.fromarray(self.output.img)
        self._draw_label_on(ImageDraw.Draw(canvas), text, np.asarray(box_xyxy, dtype=np.float64), color)
        self.output.img = np.asarray(canvas).copy()
        return self.output

    def get_output(self) -> VisImage:
        """The picture drawn so far."""
        return self.output

    # --- helpers ------------------------------------------------------------------------------
    def _class_names(self) -> Optional[List[str]]:
        return getattr(self.metadata, "thing_classes", None) if self.metadata is not None else None

    def _class_colors(self) -> Optional[List[Color]]:
        return getattr(self.metadata, "thing_colors", None) if self.metadata is not None else None

    def _text_labels(
        self, classes: Optional[List[int]], scores: Optional[List[float]], count: int
    ) -> Optional[List[str]]:
        """'name 87%' per instance; 'class 3' when the metadata has no names; None without classes or scores."""
        if classes is None and scores is None:
            return None
        names = self._class_names()
        labels = []
        for index in range(count):
            parts = []
            if classes is not None:
                class_id = classes[index]
                parts.append(
                    names[class_id] if names is not None and 0 <= class_id < len(names) else f"class {class_id}"
                )
            if scores is not None:
                parts.append(f"{scores[index] * 100:.0f}%")
            labels.append(" ".join(parts))
        return labels

    def _instance_colors(self, classes: Optional[List[int]], count: int) -> List[Color]:
        class_colors = self._class_colors()
        if self.instance_mode == ColorMode.SEGMENTATION and classes is not None:
            if class_colors is not None:
                return [_class_color(class_colors, c) for c in classes]
            return [distinct_colors(1, start=max(c, 0))[0] for c in classes]
        if class_colors is not None and classes is not None:
            # a fixed seed keeps pictures of the same predictions identical from run to run
            rng = np.random.default_rng(0)
            return [jitter_color(_class_color(class_colors, c), rng) for c in classes]
        return distinct_colors(count)

    def _grey_out_background(self, masks: List[np.ndarray]) -> None:
        image = self.output.img
        grey = np.round(image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
        grey_image = np.repeat(grey[:, :, None], 3, axis=2).astype(np.uint8)
        if masks:
            union = np.zeros((self.input_height, self.input_width), dtype=bool)
            for mask in masks:
                union |= mask
            if union.shape != image.shape[:2]:
                union = (
                    np.asarray(
                        Image.fromarray(union.astype(np.uint8) * 255).resize((self.output.width, self.output.height))
                    )
                    > 127
                )
            grey_image[union] = image[union]
        self.output.img = grey_image

    def _draw_box_on(self, draw: ImageDraw.ImageDraw, box: np.ndarray, color: Color) -> None:
        x0, y0, x1, y1 = (float(v) * self.scale for v in box)
        if x1 < x0 or y1 < y0:
            return
        draw.rectangle([x0, y0, x1, y1], outline=tuple(color), width=self._line_width)

    def _draw_label_on(self, draw: ImageDraw.ImageDraw, text: str, box: np.ndarray, color: Color) -> None:
        font = _font(self._font_size)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        padding = max(1, self._font_size // 6)
        tag_width = right - left + 2 * padding
        tag_height = bottom - top + 2 * padding
        width, height = self.output.width, self.output.height
        x0, y0 = float(box[0]) * self.scale, float(box[1]) * self.scale
        # above the box when there is room, else just inside its top edge; clamped into the picture
        tag_y = y0 - tag_height if y0 - tag_height >= 0 else y0
        tag_y = min(max(tag_y, 0), max(height - tag_height, 0))
        tag_x = min(max(x0, 0), max(width - tag_width, 0))
        draw.rectangle([tag_x, tag_y, tag_x + tag_width - 1, tag_y + tag_height - 1], fill=tuple(color))
        text_color = (0, 0, 0) if _luminance(color) > 140 else (255, 255, 255)
        draw.text((tag_x + padding - left, tag_y + padding - top), text, fill=text_color, font=font)


# --- conversions ---------------------------------------------------------------------------------
def _as_rgb_uint8(image: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    """(H, W, 3) uint8 from an (H, W, 3|4) or (H, W) array/tensor, uint8 or float 0-255."""
    array = _to_numpy(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"Visualizer expects an (H, W, 3) RGB image, got shape {tuple(array.shape)}")
    array = array[:, :, :3]
    if array.dtype != np.uint8:
        array = np.clip(np.round(array.astype(np.float64)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _boxes_to_numpy(boxes: Any) -> np.ndarray:
    if isinstance(boxes, Boxes):
        boxes = boxes.tensor
    array = _to_numpy(boxes).astype(np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
    return array


def _masks_to_arrays(masks: Any, height: int, width: int) -> List[np.ndarray]:
    """One (height, width) bool array per instance, from any of the mask formats the library uses."""
    if isinstance(masks, BitMasks):
        masks = masks.tensor
    if isinstance(masks, PolygonMasks):
        return [polygons_to_bitmask(p, height, width) for p in masks.polygons]
    if isinstance(masks, (torch.Tensor, np.ndarray)):
        array = _to_numpy(masks)
        if array.ndim != 3:
            raise ValueError(f"Masks must be (N, H, W), got shape {tuple(array.shape)}")
        if array.dtype != bool:
            # soft masks (probabilities) are drawn where they pass one half
            array = array > 0.5
        return list(array)
    if isinstance(masks, (list, tuple)):
        return [_one_mask_to_array(m, height, width, i) for i, m in enumerate(masks)]
    raise TypeError(
        f"Unsupported masks of type {type(masks).__name__}: expected a tensor/array (N, H, W), "
        "BitMasks, PolygonMasks, or a list of polygons / RLE dicts / arrays"
    )


def _one_mask_to_array(mask: Any, height: int, width: int, index: int) -> np.ndarray:
    if isinstance(mask, dict):
        if "counts" not in mask or "size" not in mask:
            raise ValueError(f"Mask {index}: an RLE dict needs 'counts' and 'size', got keys {sorted(mask)}")
        rle = mask
        if isinstance(rle["counts"], list):  # uncompressed RLE, as COCO stores crowd regions
            rle = mask_util.frPyObjects(rle, *rle["size"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            decoded = mask_util.decode(rle).astype(bool)
        if decoded.shape != (height, width):
            raise ValueError(f"Mask {index}: RLE of size {decoded.shape} for an image of {(height, width)}")
        return decoded
    if isinstance(mask, (torch.Tensor, np.ndarray)) and _to_numpy(mask).ndim == 2:
        array = _to_numpy(mask)
        return array if array.dtype == bool else array > 0.5
    if isinstance(mask, (list, tuple)):
        return polygons_to_bitmask([np.asarray(p, dtype=np.float64).reshape(-1) for p in mask], height, width)
    raise TypeError(f"Mask {index}: unsupported type {type(mask).__name__} (polygons, RLE dict or (H, W) array)")


def _common_length(boxes: Optional[np.ndarray], labels: Optional[Sequence], masks: Optional[List]) -> int:
    lengths = {name: len(v) for name, v in (("boxes", boxes), ("labels", labels), ("masks", masks)) if v is not None}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"overlay_instances: inputs disagree on the number of instances: {lengths}")
    return next(iter(lengths.values()), 0)


def _mask_box(mask: np.ndarray) -> np.ndarray:
    """XYXY box of a mask's foreground; (0, 0, -1, -1) (never drawn) when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return np.array([0.0, 0.0, -1.0, -1.0])
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)


def _erode(mask: np.ndarray, iterations: int) -> np.ndarray:
    """4-neighbour binary erosion; the outside of the array counts as background."""
    eroded = mask
    for _ in range(iterations):
        padded = np.pad(eroded, 1)
        eroded = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return eroded


def _class_color(class_colors: Sequence[Sequence[float]], class_id: int) -> Color:
    if 0 <= class_id < len(class_colors):
        return tuple(int(c) for c in class_colors[class_id][:3])  # type: ignore[return-value]
    return distinct_colors(1, start=max(class_id, 0))[0]


def _darker(color: Color, factor: float = 0.6) -> Color:
    return tuple(int(c * factor) for c in color[:3])  # type: ignore[return-value]


def _luminance(color: Color) -> float:
    return 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed-size bitmap font
        return ImageFont.load_default()
