"""Every PIL mode an image file can have becomes an 8-bit image in INPUT.FORMAT, or an error naming the file."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from mrcnn.data import DatasetMapper
from mrcnn.data import transforms as T
from mrcnn.data.detection_utils import ImageLoadError, UnsupportedImageError, convert_PIL_to_numpy, read_image


def _gradient16(height: int = 6, width: int = 8) -> np.ndarray:
    """uint16 values over the whole 16-bit range, including 0, 255, 256 and 65535."""
    values = np.linspace(0, 65535, height * width).astype(np.uint16).reshape(height, width)
    values.flat[1:4] = [255, 256, 40000]
    return values


def _png16(path, array: np.ndarray) -> None:
    """Write a 16-bit PNG (gray, gray+alpha, RGB or RGBA by channel count) without Pillow's help."""
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = array.reshape(height, width * channels).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def test_16_bit_png_keeps_the_high_byte(tmp_path):
    """The issue: a 16-bit PNG (mode I;16) used to become 0/255; now value // 256, in every format."""
    values = _gradient16()
    path = tmp_path / "depth16.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as image:
        assert image.mode == "I;16"
    expected = (values >> 8).astype(np.uint8)
    assert len(np.unique(expected)) > 10  # a real gradient, not two levels
    rgb = read_image(str(path), "RGB")
    assert rgb.dtype == np.uint8 and rgb.shape == (6, 8, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], expected)
    np.testing.assert_array_equal(read_image(str(path), "BGR"), rgb)
    np.testing.assert_array_equal(read_image(str(path), "L")[..., 0], expected)
    assert rgb[0, 1, 0] == 0 and rgb[0, 2, 0] == 1 and rgb[-1, -1, 0] == 255  # 255 -> 0, 256 -> 1, 65535 -> 255


def test_16_bit_colour_and_gray_agree(tmp_path):
    """Pillow reads 16-bit colour PNGs by their high byte; gray ones now get the same reading."""
    values = _gradient16()
    _png16(tmp_path / "gray16.png", values)
    _png16(tmp_path / "rgb16.png", np.stack([values, 65535 - values, values], axis=-1))
    _png16(tmp_path / "gray_alpha16.png", np.stack([values, np.full_like(values, 1000)], axis=-1))
    expected = (values >> 8).astype(np.uint8)
    np.testing.assert_array_equal(read_image(str(tmp_path / "gray16.png"), "RGB")[..., 1], expected)
    colour = read_image(str(tmp_path / "rgb16.png"), "RGB")
    np.testing.assert_array_equal(colour[..., 0], expected)
    np.testing.assert_array_equal(colour[..., 1], ((65535 - values) >> 8).astype(np.uint8))
    np.testing.assert_array_equal(read_image(str(tmp_path / "gray_alpha16.png"), "RGB")[..., 2], expected)


def test_32_bit_integer_images(tmp_path):
    values = _gradient16().astype(np.int32)
    Image.fromarray(values).save(tmp_path / "ints.tif")
    with Image.open(tmp_path / "ints.tif") as image:
        assert image.mode == "I"
    np.testing.assert_array_equal(read_image(str(tmp_path / "ints.tif"), "RGB")[..., 0], values >> 8)
    values[0, 0] = 70000  # beyond 16 bits: no standard reading
    Image.fromarray(values).save(tmp_path / "wide.tif")
    with pytest.raises(ImageLoadError, match=r"wide.tif: 32-bit integer pixels \(PIL mode I\) range over 255..70000"):
        read_image(str(tmp_path / "wide.tif"), "RGB")


def test_float_images_are_refused_by_name(tmp_path):
    Image.fromarray(np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)).save(tmp_path / "floats.tif")
    with pytest.raises(
        ImageLoadError, match=r"Cannot read image .*floats.tif: 32-bit floating-point pixels \(PIL mode F\)"
    ):
        read_image(str(tmp_path / "floats.tif"), "BGR")


def _palette_image() -> Image.Image:
    image = Image.new("P", (4, 3))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)  # index 0 red, index 1 blue
    image.putpixel((1, 1), 1)
    return image


@pytest.mark.parametrize(
    "make, file_name, pixel_00, pixel_11",
    [
        # alpha is dropped: every pixel keeps its stored colour, as detectron2 and torchvision read it
        (lambda: Image.merge("LA", [Image.new("L", (4, 3), 90), Image.new("L", (4, 3), 0)]), "la.png", 90, 90),
        (lambda: Image.new("RGBA", (4, 3), (10, 20, 30, 0)), "rgba.png", (10, 20, 30), (10, 20, 30)),
        (_palette_image, "palette.png", (255, 0, 0), (0, 0, 255)),
        (lambda: Image.new("1", (4, 3), 1), "bilevel.png", 255, 255),
        (lambda: Image.new("CMYK", (4, 3), (0, 255, 255, 0)), "cmyk.jpg", (254, 0, 0), (254, 0, 0)),
    ],
)
def test_other_modes_become_three_channels(tmp_path, make, file_name, pixel_00, pixel_11):
    image = make()
    if file_name == "palette.png":
        image.info["transparency"] = 0  # red is transparent
        image.save(tmp_path / file_name, transparency=0)
    else:
        image.save(tmp_path / file_name, quality=100) if file_name.endswith(".jpg") else image.save(
            tmp_path / file_name
        )
    rgb = read_image(str(tmp_path / file_name), "RGB")
    bgr = read_image(str(tmp_path / file_name), "BGR")
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(bgr, rgb[..., ::-1])
    expected_00 = np.broadcast_to(np.asarray(pixel_00), (3,))
    expected_11 = np.broadcast_to(np.asarray(pixel_11), (3,))
    np.testing.assert_allclose(rgb[0, 0], expected_00, atol=2)  # JPEG rounds CMYK by a level
    np.testing.assert_allclose(rgb[1, 1], expected_11, atol=2)
    assert read_image(str(tmp_path / file_name), "L").shape == (3, 4, 1)


def test_unconvertible_mode_is_named():
    """Pillow cannot turn premultiplied gray+alpha (La) into L: a clear error (read_image adds the file)."""
    with pytest.raises(UnsupportedImageError, match="PIL mode La cannot be converted to L"):
        convert_PIL_to_numpy(Image.new("La", (4, 3)), "L")


def test_mapper_reads_16_bit_images_for_training_and_inference(tmp_path):
    values = _gradient16(16, 16)
    Image.fromarray(values).save(tmp_path / "train16.png")
    record = {
        "file_name": str(tmp_path / "train16.png"),
        "height": 16,
        "width": 16,
        "image_id": 1,
        "annotations": [{"bbox": [2, 2, 6, 6], "bbox_mode": 1, "category_id": 0, "iscrowd": 0}],
    }
    expected = np.repeat((values >> 8).astype(np.uint8)[None], 3, axis=0)
    for is_train in (True, False):
        mapper = DatasetMapper(
            is_train,
            augmentations=[T.ResizeShortestEdge(16, 100, "choice")],
            image_format="BGR",
            use_instance_mask=False,
        )
        np.testing.assert_array_equal(mapper(record)["image"].numpy(), expected)
