"""Transforms move images, boxes, polygons and bitmasks consistently."""

import numpy as np
import pytest
from fvcore.transforms import transform as fvcore_transforms

from mrcnn.data import transforms as T
from mrcnn.structures import polygons_to_bitmask


def _regular_polygon(cx, cy, radius, sides, rotation=0.0):
    angles = rotation + np.linspace(0, 2 * np.pi, sides, endpoint=False)
    return np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)


# large shapes: a resampled bitmask is only accurate to about a source pixel along its outline
POLYGONS = [
    _regular_polygon(95.3, 110.2, 62, 48),
    _regular_polygon(220.5, 90.0, 60, 4, 0.3),
    _regular_polygon(180.0, 200.0, 85, 3, 1.0),
]
H, W = 300, 320


def _mask_box(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_flipping_twice_is_identity():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    mask = polygons_to_bitmask([POLYGONS[0].reshape(-1)], H, W)
    boxes = np.array([[3.5, 4.0, 50.0, 90.25]])
    for flip in (T.HFlipTransform(W), T.VFlipTransform(H)):
        twice = T.TransformList([flip, flip])
        np.testing.assert_array_equal(twice.apply_image(image), image)
        np.testing.assert_array_equal(twice.apply_segmentation(mask), mask)
        np.testing.assert_allclose(twice.apply_box(boxes), boxes)
        np.testing.assert_allclose(twice.apply_polygons(POLYGONS)[1], POLYGONS[1])
        once = flip.apply_image(image)
        assert not np.array_equal(once, image)
    np.testing.assert_array_equal(T.HFlipTransform(W).apply_image(image)[:, 0], image[:, -1])
    np.testing.assert_allclose(T.HFlipTransform(W).apply_box(boxes), [[W - 50.0, 4.0, W - 3.5, 90.25]])
    np.testing.assert_allclose(T.VFlipTransform(H).apply_box(boxes), [[3.5, H - 90.25, 50.0, H - 4.0]])


def test_flips_crop_pad_agree_with_fvcore_and_leave_inputs_unchanged():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    mask = rng.random((H, W)) > 0.5
    coords = rng.random((6, 2)) * [W, H]
    boxes = np.array([[3.5, 4.0, 50.0, 90.25], [100.0, 20.0, 300.0, 290.0]])
    pairs = [
        (T.HFlipTransform(W), fvcore_transforms.HFlipTransform(W)),
        (T.VFlipTransform(H), fvcore_transforms.VFlipTransform(H)),
        (T.CropTransform(35, 10, 270, 260, W, H), fvcore_transforms.CropTransform(35, 10, 270, 260, W, H)),
        (T.PadTransform(3, 4, 5, 6, W, H, pad_value=9), fvcore_transforms.PadTransform(3, 4, 5, 6, W, H, pad_value=9)),
        (T.NoOpTransform(), fvcore_transforms.NoOpTransform()),
    ]
    for ours, theirs in pairs:
        assert isinstance(ours, type(theirs)) and isinstance(ours, T.Transform)
        for array in (image, mask):
            out = ours.apply_image(array)
            np.testing.assert_array_equal(out, theirs.apply_image(array.copy()))
            assert out.dtype == array.dtype and out.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(ours.apply_segmentation(mask), theirs.apply_segmentation(mask.copy()))
        before = coords.copy()
        np.testing.assert_array_equal(ours.apply_coords(coords), theirs.apply_coords(coords.copy()))
        np.testing.assert_array_equal(coords, before)  # fvcore's changes its argument; ours does not
        np.testing.assert_array_equal(ours.apply_box(boxes), theirs.apply_box(boxes.copy()))
        if not isinstance(ours, T.NoOpTransform):
            assert type(ours.inverse()).__module__ == T.Transform.__module__  # our classes, not fvcore's
    # integer points come back as float64, not truncated in place
    np.testing.assert_array_equal(T.HFlipTransform(10).apply_coords(np.array([[2, 3]])), [[8.0, 3.0]])

    # a TransformList takes fvcore's transforms too, drops no-ops and stays ours through inverse and +
    chain = T.TransformList([T.HFlipTransform(W), fvcore_transforms.NoOpTransform(), T.NoOpTransform()])
    assert len(chain) == 1 and isinstance(chain, fvcore_transforms.TransformList)
    longer = chain + T.VFlipTransform(H)
    assert type(longer) is T.TransformList and type(longer.inverse()) is T.TransformList
    assert [type(t) for t in longer.inverse()] == [T.VFlipTransform, T.HFlipTransform]
    np.testing.assert_array_equal(longer.apply_image(image), image[::-1, ::-1])


def test_resize_names_the_size_it_expects():
    with pytest.raises(ValueError, match="expects a 50x100 input"):
        T.ResizeTransform(50, 100, 25, 50).apply_image(np.zeros((40, 100, 3), dtype=np.uint8))


CHAINS = {
    "resize_up_flip_crop": lambda: T.TransformList(
        [T.ResizeTransform(H, W, 450, 480), T.HFlipTransform(480), T.CropTransform(60, 40, 400, 380, 480, 450)]
    ),
    "crop_resize_down_vflip": lambda: T.TransformList(
        [T.CropTransform(35, 10, 270, 260, W, H), T.ResizeTransform(260, 270, 210, 218), T.VFlipTransform(210)]
    ),
}


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_polygons_and_bitmasks_agree_and_boxes_bound_masks(chain):
    transforms = CHAINS[chain]()
    out_h, out_w = transforms.apply_image(np.zeros((H, W, 3), dtype=np.uint8)).shape[:2]
    for polygon in POLYGONS:
        mask = polygons_to_bitmask([polygon.reshape(-1)], H, W)
        from_bitmask = transforms.apply_segmentation(mask)
        assert from_bitmask.shape == (out_h, out_w) and from_bitmask.dtype == bool
        new_polygons = transforms.apply_polygons([polygon])
        from_polygon = polygons_to_bitmask([p.reshape(-1) for p in new_polygons], out_h, out_w)
        assert _iou(from_polygon, from_bitmask) >= 0.98

        box = transforms.apply_box(_mask_box(mask)[None])[0]
        box = np.clip(box, 0, [out_w, out_h, out_w, out_h])
        ys, xs = np.nonzero(from_bitmask)
        # every transformed mask pixel's centre lies inside the transformed box
        assert (xs + 0.5 >= box[0]).all() and (xs + 0.5 <= box[2]).all()
        assert (ys + 0.5 >= box[1]).all() and (ys + 0.5 <= box[3]).all()
        # ... and is loose by at most about a pixel (nearest resampling may drop a thin edge row)
        assert np.abs(_mask_box(from_bitmask) - box).max() <= 1.5
        # a polygon's box maps to a box holding the transformed (clipped) polygon
        polygon_box = np.concatenate([polygon.min(axis=0), polygon.max(axis=0)])[None]
        mapped = np.clip(transforms.apply_box(polygon_box)[0], 0, [out_w, out_h, out_w, out_h])
        points = np.concatenate(new_polygons)
        assert (points.min(axis=0) >= mapped[:2] - 1e-6).all() and (points.max(axis=0) <= mapped[2:] + 1e-6).all()


def test_crop_clips_polygons_to_window():
    square = np.array([[10.0, 10.0], [50.0, 10.0], [50.0, 40.0], [10.0, 40.0]])
    crop = T.CropTransform(30, 20, 40, 40)
    (clipped,) = crop.apply_polygons([square])
    assert clipped[:, 0].min() == 0 and clipped[:, 0].max() == 20
    assert clipped[:, 1].min() == 0 and clipped[:, 1].max() == 20
    assert crop.apply_polygons([square + 200]) == []  # entirely outside
    triangle = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    clipped = T.clip_polygon_to_rectangle(triangle, 10, 10, 60, 60)
    area = 0.5 * abs(
        np.dot(clipped[:, 0], np.roll(clipped[:, 1], 1)) - np.dot(clipped[:, 1], np.roll(clipped[:, 0], 1))
    )
    assert area == pytest.approx(50 * 50 - 0.5 * 20 * 20)  # the square minus the corner past the hypotenuse


def test_resize_shortest_edge_shapes():
    get = T.ResizeShortestEdge.get_output_shape
    assert get(480, 640, 800, 1333) == (800, 1067)
    assert get(100, 1000, 800, 1333) == (133, 1333)  # capped by the longer side
    assert get(128, 128, 800, 1333) == (800, 800)
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    np.random.seed(0)
    sizes = set()
    for _ in range(40):
        out = T.ResizeShortestEdge((600, 700), 2000, "range").get_transform(image).apply_image(image)
        assert out.shape[2] == 3 and 600 <= out.shape[0] <= 700
        sizes.add(out.shape[0])
    assert len(sizes) > 5
    choice = {T.ResizeShortestEdge((100, 200), 2000, "choice").get_transform(image).new_h for _ in range(30)}
    assert choice == {100, 200}
    assert isinstance(T.ResizeShortestEdge(0).get_transform(image), T.NoOpTransform)
    with pytest.raises(ValueError, match="sample_style"):
        T.ResizeShortestEdge(800, sample_style="uniform")


def test_resize_image_is_bilinear_and_coords_scale():
    gradient = np.tile(np.arange(0, 200, 2, dtype=np.uint8)[None, :, None], (50, 1, 3))  # 50 x 100
    resize = T.ResizeTransform(50, 100, 100, 200)
    out = resize.apply_image(gradient)
    assert out.shape == (100, 200, 3)
    # interior of a linear ramp stays linear under bilinear upsampling
    np.testing.assert_allclose(out[10, 20:180, 0].astype(float), np.arange(20, 180) - 0.5, atol=1)
    np.testing.assert_allclose(resize.apply_coords(np.array([[10.0, 5.0]])), [[20.0, 10.0]])
    np.testing.assert_allclose(resize.inverse().apply_coords(resize.apply_coords(np.array([[7.0, 3.0]]))), [[7.0, 3.0]])


def test_random_flip_probability_and_crop_sizes():
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    np.random.seed(1)
    flips = [isinstance(T.RandomFlip(0.5).get_transform(image), T.HFlipTransform) for _ in range(400)]
    assert 0.4 < np.mean(flips) < 0.6
    assert all(
        isinstance(T.RandomFlip(1.0, horizontal=False, vertical=True).get_transform(image), T.VFlipTransform)
        for _ in range(5)
    )
    assert isinstance(T.RandomFlip(0.0).get_transform(image), T.NoOpTransform)
    with pytest.raises(ValueError, match="exactly one"):
        T.RandomFlip(0.5, horizontal=True, vertical=True)
    for _ in range(20):
        crop = T.RandomCrop("relative_range", (0.5, 0.7)).get_transform(image)
        assert 30 <= crop.h <= 60 and 56 <= crop.w <= 80
        assert crop.x0 + crop.w <= 80 and crop.y0 + crop.h <= 60
    crop = T.RandomCrop("absolute", (100, 50)).get_transform(image)
    assert (crop.h, crop.w) == (60, 50)
    crop = T.RandomCrop("relative", (0.5, 0.5)).get_transform(image)
    assert (crop.h, crop.w) == (30, 40) and crop.apply_image(image).shape == (30, 40, 3)
    padded = crop.inverse().apply_image(crop.apply_image(image + 1))
    assert padded.shape == image.shape and padded.sum() == 30 * 40 * 3


def test_photometric_distort_values():
    rng = np.random.default_rng(2)
    image = rng.integers(20, 230, size=(20, 30, 3), dtype=np.uint8)
    identity = T.PhotometricDistortTransform()
    np.testing.assert_array_equal(identity.apply_image(image), image)
    brighter = T.PhotometricDistortTransform(brightness=1.1).apply_image(image)
    assert np.abs(brighter.astype(int) - np.clip(image * 1.1, 0, 255)).max() <= 1
    grey = T.PhotometricDistortTransform(saturation=0.0).apply_image(image)
    assert np.abs(grey.astype(int) - grey[..., :1]).max() == 0  # all channels equal
    flat = T.PhotometricDistortTransform(contrast=0.0).apply_image(image)
    assert flat.max() - flat.min() == 0
    expected_mean = (image.astype(float) @ [0.299, 0.587, 0.114]).mean()
    assert abs(float(flat[0, 0, 0]) - expected_mean) <= 1
    # the same change on a BGR image is the RGB result with channels reversed
    params = dict(brightness=1.05, contrast=1.3, saturation=0.7, hue=0.04, contrast_first=False)
    rgb = T.PhotometricDistortTransform(**params, image_format="RGB").apply_image(image)
    bgr = T.PhotometricDistortTransform(**params, image_format="BGR").apply_image(image[..., ::-1].copy())
    assert np.abs(rgb.astype(int) - bgr[..., ::-1]).max() <= 1
    hue_shifted = T.PhotometricDistortTransform(hue=0.5).apply_image(np.full((2, 2, 3), (200, 40, 40), np.uint8))
    red, green, blue = hue_shifted[0, 0].astype(int)
    assert red < 20 and green > 90 and abs(green - blue) <= 1  # red → cyan
    quarter = T.PhotometricDistortTransform(hue=0.25).apply_image(np.full((1, 1, 3), (120, 120, 120), np.uint8))
    assert np.abs(quarter.astype(int) - 120).max() <= 1  # grey has no hue
    never = T.RandomPhotometricDistort(prob=0.0)
    np.testing.assert_array_equal(never.get_transform(image).apply_image(image), image)
    boxes = np.array([[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_array_equal(T.RandomPhotometricDistort(prob=1.0).get_transform(image).apply_box(boxes), boxes)


def test_augmentation_list_records_transforms():
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    aug_input = T.AugInput(image, boxes=np.array([[0.0, 0.0, 30.0, 20.0]]))
    transforms = T.AugmentationList([T.ResizeShortestEdge(80, 1000, "choice"), T.RandomFlip(1.0)])(aug_input)
    assert aug_input.image.shape == (80, 120, 3)
    np.testing.assert_allclose(aug_input.boxes, [[60.0, 0.0, 120.0, 40.0]])
    assert [type(t) for t in transforms] == [T.ResizeTransform, T.HFlipTransform]
    np.testing.assert_allclose(transforms.inverse().apply_box(aug_input.boxes), [[0.0, 0.0, 30.0, 20.0]])
    out, transforms = T.apply_augmentations([T.Resize((10, 20))], image)
    assert out.shape == (10, 20, 3) and len(transforms) == 1


def test_photometric_matches_stepwise_reference():
    rng = np.random.default_rng(5)
    image = rng.integers(80, 170, size=(16, 24, 3), dtype=np.uint8)  # no step saturates
    out = T.PhotometricDistortTransform(brightness=1.05, contrast=1.1, saturation=0.8, contrast_first=True).apply_image(
        image
    )
    reference = image.astype(np.float64) * 1.05
    grey_mean = (reference @ [0.299, 0.587, 0.114]).mean()
    reference = grey_mean + 1.1 * (reference - grey_mean)
    grey = (reference @ [0.299, 0.587, 0.114])[..., None]
    reference = grey + 0.8 * (reference - grey)
    assert np.abs(out.astype(float) - reference).max() <= 1.0
    # hue rotation keeps luminance and is undone by the opposite rotation
    there = T.PhotometricDistortTransform(hue=0.1).apply_image(image)
    back = T.PhotometricDistortTransform(hue=-0.1).apply_image(there)
    lum = np.array([0.213, 0.715, 0.072])
    assert np.abs(there.astype(float) @ lum - image.astype(float) @ lum).max() <= 1.0
    assert np.abs(back.astype(int) - image).max() <= 2 and np.abs(there.astype(int) - image).max() > 10


def test_resize_shortest_edge_keeps_at_least_one_pixel():
    """A thin strip capped at max_size keeps one row instead of rounding to an empty image."""
    assert T.ResizeShortestEdge.get_output_shape(1, 5000, 64, 128) == (1, 128)
    assert T.ResizeShortestEdge.get_output_shape(5000, 2, 64, 128) == (128, 1)
    assert T.ResizeShortestEdge.get_output_shape(480, 640, 800, 1333) == (800, 1067)  # ordinary images unchanged
    with pytest.raises(ValueError, match="the image is 0x7 .* no pixels"):
        T.ResizeShortestEdge.get_output_shape(0, 7, 64, 128)
