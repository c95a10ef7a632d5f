"""Visualizer: masks change the pixels they cover and nothing far away; every mask format draws alike."""

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from PIL import Image, ImageDraw

from mrcnn.data.catalog import Metadata
from mrcnn.structures import BitMasks, Boxes, BoxMode, Instances, PolygonMasks, polygons_to_bitmask
from mrcnn.utils.colormap import distinct_colors
from mrcnn.utils.visualizer import ColorMode, Visualizer, _erode, _font

HEIGHT, WIDTH = 120, 200
GREY = 128
# two instances in the right half, with room above them for their labels; the left half stays far away
SQUARE = (80, 45, 110, 75)  # x0, y0, x1, y1
TRIANGLE = [125.0, 110.0, 175.0, 110.0, 150.0, 60.0]


def _grey_image() -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), GREY, dtype=np.uint8)


def _known_masks() -> torch.Tensor:
    masks = torch.zeros(2, HEIGHT, WIDTH, dtype=torch.bool)
    x0, y0, x1, y1 = SQUARE
    masks[0, y0:y1, x0:x1] = True
    masks[1] = torch.from_numpy(polygons_to_bitmask([np.array(TRIANGLE)], HEIGHT, WIDTH))
    return masks


def _predictions(masks: torch.Tensor) -> Instances:
    boxes = BitMasks(masks).get_bounding_boxes()
    return Instances(
        (HEIGHT, WIDTH),
        pred_boxes=boxes,
        scores=torch.tensor([0.9, 0.75]),
        pred_classes=torch.tensor([0, 2]),
        pred_masks=masks,
    )


def test_mask_pixels_change_and_far_pixels_do_not():
    masks = _known_masks()
    visualizer = Visualizer(_grey_image())
    picture = visualizer.draw_instance_predictions(_predictions(masks), alpha=0.5).get_image()
    assert picture.shape == (HEIGHT, WIDTH, 3) and picture.dtype == np.uint8
    colors = visualizer._instance_colors([0, 2], 2)
    assert colors[0] != colors[1]  # a distinct colour per instance
    for mask, color in zip(masks.numpy(), colors):
        # inside the outline band the fill is exactly the 50/50 blend of grey and the instance colour
        interior = _erode(mask, visualizer._line_width + 1)
        assert interior.sum() > 100
        expected = np.round(0.5 * GREY + 0.5 * np.array(color, dtype=np.float32))
        np.testing.assert_array_equal(picture[interior], np.broadcast_to(expected, (interior.sum(), 3)))
        # every mask pixel changed colour (fill or outline)
        assert np.all(np.any(picture[mask] != GREY, axis=1))
    # nothing was drawn in the left half: no mask, box or label comes within 20 px of it
    assert np.all(picture[:, :70] == GREY)
    # and the rows above the labels are untouched too
    assert np.all(picture[:25] == GREY)


def test_zero_instances_leave_the_image_unchanged():
    image = np.random.default_rng(0).integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    empty = Instances(
        (HEIGHT, WIDTH),
        pred_boxes=Boxes(torch.zeros(0, 4)),
        scores=torch.zeros(0),
        pred_classes=torch.zeros(0, dtype=torch.long),
        pred_masks=torch.zeros(0, HEIGHT, WIDTH, dtype=torch.bool),
    )
    picture = Visualizer(image).draw_instance_predictions(empty).get_image()
    np.testing.assert_array_equal(picture, image)
    np.testing.assert_array_equal(Visualizer(image).draw_dataset_dict({"annotations": []}).get_image(), image)


def test_every_mask_format_draws_the_same_picture():
    polygons = [[np.array([20.0, 20.0, 70.0, 25.0, 60.0, 90.0, 15.0, 70.0])], [np.array(TRIANGLE)]]
    bitmaps = np.stack([polygons_to_bitmask(p, HEIGHT, WIDTH) for p in polygons])
    rles = [mask_util.encode(np.asfortranarray(m.astype(np.uint8))) for m in bitmaps]
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    uncompressed = []
    for m in bitmaps:  # column-major run lengths starting with zeros, as COCO stores crowd regions
        flat = m.T.reshape(-1).astype(np.int8)
        changes = np.flatnonzero(np.diff(flat)) + 1
        bounds = np.concatenate([[0], changes, [flat.size]])
        counts = np.diff(bounds).tolist()
        if flat[0] == 1:
            counts = [0] + counts
        uncompressed.append({"size": [HEIGHT, WIDTH], "counts": counts})
    formats = {
        "bool tensor": torch.from_numpy(bitmaps),
        "float array": bitmaps.astype(np.float32),
        "BitMasks": BitMasks(torch.from_numpy(bitmaps)),
        "PolygonMasks": PolygonMasks(polygons),
        "polygon lists": [[p.tolist() for p in instance] for instance in polygons],
        "RLE": rles,
        "uncompressed RLE": uncompressed,
        "list of arrays": list(bitmaps),
    }
    colors = [(255, 0, 0), (0, 0, 255)]
    pictures = {
        name: Visualizer(_grey_image()).overlay_instances(masks=masks, assigned_colors=colors).get_image()
        for name, masks in formats.items()
    }
    reference = pictures["bool tensor"]
    assert np.any(reference[bitmaps[0]] != GREY)
    for name, picture in pictures.items():
        np.testing.assert_array_equal(picture, reference, err_msg=name)


def test_class_colours_from_metadata_are_used_per_instance():
    metadata = Metadata(
        name="vis_test", thing_classes=["a", "b", "c"], thing_colors=[[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    )
    visualizer = Visualizer(_grey_image(), metadata)
    colors = visualizer._instance_colors([0, 0, 2], 3)
    assert colors[0] != colors[1]  # two instances of one class still differ
    for color, class_id in zip(colors, [0, 0, 2]):
        assert np.abs(np.array(color) - np.array(metadata.thing_colors[class_id])).max() <= 0.15 * 255 + 1
    seg = Visualizer(_grey_image(), metadata, instance_mode=ColorMode.SEGMENTATION)._instance_colors([0, 0, 2], 3)
    assert seg == [(255, 0, 0), (255, 0, 0), (0, 0, 255)]
    assert visualizer._text_labels([0, 2], [0.874, 0.5], 2) == ["a 87%", "c 50%"]
    assert Visualizer(_grey_image())._text_labels([4], None, 1) == ["class 4"]


def test_dataset_dict_ground_truth():
    x0, y0, x1, y1 = SQUARE
    metadata = Metadata(name="vis_test_gt", thing_classes=["square", "triangle"])
    triangle_rle = mask_util.encode(
        np.asfortranarray(polygons_to_bitmask([np.array(TRIANGLE)], HEIGHT, WIDTH).astype(np.uint8))
    )
    dataset_dict = {
        "file_name": "unused.png",
        "height": HEIGHT,
        "width": WIDTH,
        "annotations": [
            {
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 0,
                "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
            },
            {
                "bbox": [125, 60, 175, 110],
                "bbox_mode": BoxMode.XYXY_ABS,
                "category_id": 1,
                "segmentation": triangle_rle,
                "iscrowd": 1,
            },
        ],
    }
    visualizer = Visualizer(_grey_image(), metadata)
    picture = visualizer.draw_dataset_dict(dataset_dict).get_image()
    square = np.zeros((HEIGHT, WIDTH), dtype=bool)
    square[y0 + 3 : y1 - 3, x0 + 3 : x1 - 3] = True
    assert np.all(np.any(picture[square] != GREY, axis=1))
    triangle = _erode(polygons_to_bitmask([np.array(TRIANGLE)], HEIGHT, WIDTH), 3)
    assert np.all(np.any(picture[triangle] != GREY, axis=1))
    assert np.all(picture[:, :70] == GREY)
    assert visualizer._text_labels([0, 1], None, 2) == ["square", "triangle"]


def test_label_of_a_box_at_the_corner_stays_inside():
    text = "a long label 99%"
    color = (250, 200, 0)
    visualizer = Visualizer(_grey_image())
    picture = visualizer.overlay_instances(
        boxes=np.array([[WIDTH - 12.0, 0.0, WIDTH, 8.0]]), labels=[text], assigned_colors=[color]
    ).get_image()
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox(
        (0, 0), text, font=_font(visualizer._font_size)
    )
    tag_pixels = np.all(picture == color, axis=2)
    # the whole tag (text box plus padding, minus the glyphs) is visible, so it was moved inside
    assert tag_pixels.sum() >= 0.6 * (right - left) * (bottom - top)
    columns = np.flatnonzero(tag_pixels.any(axis=0))
    assert columns[-1] == WIDTH - 1 and columns[0] < WIDTH - (right - left)


def test_scale_and_black_and_white_mode():
    masks = _known_masks()
    picture = Visualizer(_grey_image(), scale=2.0).draw_instance_predictions(_predictions(masks)).get_image()
    assert picture.shape == (2 * HEIGHT, 2 * WIDTH, 3)
    x0, y0, x1, y1 = SQUARE
    assert np.all(np.any(picture[2 * y0 + 8 : 2 * y1 - 8, 2 * x0 + 8 : 2 * x1 - 8] != GREY, axis=2))
    assert np.all(picture[:, :140] == GREY)

    colourful = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    colourful[..., 0] = 200
    bw = Visualizer(colourful, instance_mode=ColorMode.IMAGE_BW).draw_instance_predictions(_predictions(masks))
    image = bw.get_image()
    far = image[:, :70]
    assert np.all(far[..., 0] == far[..., 1]) and np.all(far[..., 1] == far[..., 2])  # grey outside masks
    assert np.all(image[55:65, 85:100, 0] > image[55:65, 85:100, 1])  # red kept (and tinted) inside


def test_save_png_and_jpeg(tmp_path):
    output = Visualizer(_grey_image()).draw_instance_predictions(_predictions(_known_masks()))
    output.save(str(tmp_path / "sub" / "picture.png"))
    output.save(str(tmp_path / "picture.jpg"))
    png = np.asarray(Image.open(tmp_path / "sub" / "picture.png"))
    np.testing.assert_array_equal(png, output.get_image())
    with Image.open(tmp_path / "picture.jpg") as jpeg:
        assert jpeg.format == "JPEG"
        assert np.abs(np.asarray(jpeg).astype(int) - output.get_image().astype(int)).mean() < 3
    with pytest.raises(ValueError, match="picture.gifx"):
        output.save(str(tmp_path / "picture.gifx"))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="RGB image"):
        Visualizer(np.zeros((4, 4, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match="disagree"):
        Visualizer(_grey_image()).overlay_instances(boxes=np.zeros((2, 4)), labels=["one"])
    with pytest.raises(ValueError, match="shape"):
        Visualizer(_grey_image()).draw_binary_mask(np.zeros((10, 10), dtype=bool), (255, 0, 0))


def test_distinct_colors_are_far_apart():
    colors = np.array(distinct_colors(12), dtype=float)
    distances = np.linalg.norm(colors[:, None] - colors[None], axis=2) + np.eye(12) * 1e9
    assert distances.min() > 40
    assert distinct_colors(3) == distinct_colors(3)


def test_the_callers_image_is_not_modified():
    image = _grey_image()
    image.setflags(write=False)  # as numpy views of Pillow images are
    picture = Visualizer(image).draw_instance_predictions(_predictions(_known_masks())).get_image()
    assert np.all(image == GREY) and np.any(picture != GREY)
