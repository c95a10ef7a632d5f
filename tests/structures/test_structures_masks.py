import numpy as np
import pytest
import torch

from mrcnn.structures import BitMasks, PolygonMasks, polygons_to_bitmask, polygons_to_bitmask_in_window


def _square(x0, y0, size):
    return np.array([x0, y0, x0 + size, y0, x0 + size, y0 + size, x0, y0 + size], dtype=np.float64)


def test_polygons_to_bitmask_square_area_and_position():
    mask = polygons_to_bitmask([_square(4, 6, 10)], 32, 24)
    assert mask.dtype == np.bool_ and mask.shape == (32, 24)
    assert mask.sum() == 100
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (6, 15, 4, 13)
    assert polygons_to_bitmask([], 5, 7).shape == (5, 7) and not polygons_to_bitmask([], 5, 7).any()


def _random_instance(rng, height, width, rounded):
    """One or two star-shaped polygons of 3 to 29 vertices, centred anywhere within 30 px of the image."""
    polygons = []
    for _ in range(rng.integers(1, 3)):
        count = rng.integers(3, 30)
        centre = rng.uniform(-30, [width + 30, height + 30])
        angles = np.sort(rng.uniform(0, 2 * np.pi, count))
        radii = rng.uniform(1, 60) * rng.uniform(0.3, 1.0, count)
        points = np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], axis=1)
        polygons.append((np.round(points) if rounded else points).reshape(-1))
    return polygons


def test_window_rasterisation_is_the_whole_image_mask_cut_out():
    rng = np.random.default_rng(0)
    for trial in range(400):
        height, width = (int(v) for v in rng.integers(20, 120, 2))
        polygons = _random_instance(rng, height, width, rounded=trial % 4 == 0)
        window, top, left = polygons_to_bitmask_in_window(polygons, height, width)
        rebuilt = np.zeros((height, width), dtype=bool)
        rebuilt[top : top + window.shape[0], left : left + window.shape[1]] = window
        # exactly the same pixels, also for instances that cross the image's edges or lie outside it
        np.testing.assert_array_equal(rebuilt, polygons_to_bitmask(polygons, height, width), err_msg=f"trial {trial}")
        assert window.shape[0] <= height and window.shape[1] <= width
    window, top, left = polygons_to_bitmask_in_window([_square(40, 30, 10)], 200, 300)
    assert (top, left) == (28, 38) and window.shape == (15, 15) and window.sum() == 100  # 2 px margin
    assert polygons_to_bitmask_in_window([], 5, 7)[0].shape == (0, 0)
    with pytest.raises(ValueError, match="polygon 1 has an odd number of coordinates"):
        polygons_to_bitmask_in_window([_square(1, 1, 3), np.arange(7.0)], 20, 20)


def test_polygon_area_counts_overlaps_once():
    masks = PolygonMasks(
        [
            [_square(0, 0, 10)],
            [_square(0, 0, 10), _square(5, 5, 10)],  # union = 100 + 100 - 25
            [_square(-4, -4, 8)],  # negative coordinates must not be clipped away
        ]
    )
    torch.testing.assert_close(masks.area(), torch.tensor([100.0, 175.0, 64.0]))


def test_polygon_boxes_nonempty_indexing_cat():
    masks = PolygonMasks([[_square(1, 2, 5)], [], [[0.5, 0.5, 3, 0.5, 3, 9.5], _square(10, 10, 2)]])
    torch.testing.assert_close(
        masks.get_bounding_boxes().tensor,
        torch.tensor([[1.0, 2.0, 6.0, 7.0], [0, 0, 0, 0], [0.5, 0.5, 12.0, 12.0]]),
    )
    assert masks.nonempty().tolist() == [True, False, True]
    assert len(masks[0]) == 1 and masks[0].polygons[0][0][0] == 1.0
    assert len(masks[1:]) == 2
    assert [len(p) for p in masks[torch.tensor([True, False, True])].polygons] == [1, 2]
    assert [len(p) for p in masks[[2, 0]].polygons] == [2, 1]
    assert [len(p) for p in masks[torch.tensor([2])].polygons] == [2]
    assert len(PolygonMasks.cat([masks, masks[0]])) == 4
    assert masks.polygons[2][0].dtype == np.float64


def test_polygon_validation_names_instance():
    with pytest.raises(ValueError, match="instance 1"):
        PolygonMasks([[_square(0, 0, 1)], [[0, 0, 1, 1]]])
    with pytest.raises(ValueError, match=r"odd number of coordinates \(7\)"):
        PolygonMasks([[[0, 0, 1, 1, 2, 2, 3]]])


def test_polygon_problems_are_told_apart():
    """Five numbers are an odd count (a lost coordinate), not "too few points"; four are 2 points."""
    with pytest.raises(ValueError, match=r"polygon 1 of instance 0 has an odd number of coordinates \(5\)"):
        PolygonMasks([[_square(0, 0, 2), [0, 0, 1, 1, 2]]])
    with pytest.raises(ValueError, match=r"has 2 point\(s\); a polygon needs at least 3"):
        PolygonMasks([[[0, 0, 1, 1]]])
    with pytest.raises(ValueError, match="NaN or infinite"):
        PolygonMasks([[[0, 0, 4, 0, float("nan"), 4]]])
    with pytest.raises(ValueError, match=r"polygon 0 has an odd number of coordinates \(5 numbers\)"):
        polygons_to_bitmask([np.array([0, 0, 4, 0, 4])], 8, 8)
    assert polygons_to_bitmask([np.array([0, 0, 4, 0, 4, 4, 0, 4])], 8, 8).sum() == 16


def test_bitmasks_area_boxes_nonempty():
    tensor = torch.zeros(3, 20, 30, dtype=torch.bool)
    tensor[0, 2:7, 4:12] = True
    tensor[1, 19, 29] = True
    tensor[1, 0, 5] = True
    masks = BitMasks(tensor)
    assert masks.image_size == (20, 30)
    assert masks.area().tolist() == [40, 2, 0]
    assert masks.nonempty().tolist() == [True, True, False]
    torch.testing.assert_close(
        masks.get_bounding_boxes().tensor,
        torch.tensor([[4.0, 2.0, 12.0, 7.0], [5.0, 0.0, 30.0, 20.0], [0.0, 0.0, 0.0, 0.0]]),
    )
    assert len(masks[1]) == 1 and masks[1].area().tolist() == [2]
    assert masks[torch.tensor([True, False, True])].area().tolist() == [40, 0]
    assert len(BitMasks.cat([masks, masks[0:2]])) == 5
    assert BitMasks(torch.zeros(0, 4, 4)).get_bounding_boxes().tensor.shape == (0, 4)


def test_from_polygon_masks_matches_polygons_to_bitmask():
    polygons = PolygonMasks([[_square(2, 3, 6)], [_square(0, 0, 4), _square(10, 10, 3)]])
    masks = BitMasks.from_polygon_masks(polygons, 16, 18)
    assert masks.tensor.shape == (2, 16, 18) and masks.tensor.dtype == torch.bool
    assert masks.area().tolist() == [36, 25]
    torch.testing.assert_close(masks.get_bounding_boxes().tensor[0], torch.tensor([2.0, 3.0, 8.0, 9.0]))


def test_crop_and_resize_of_full_box_square_is_all_true():
    tensor = torch.zeros(1, 40, 40, dtype=torch.bool)
    tensor[0, 10:30, 5:25] = True
    box = torch.tensor([[5.0, 10.0, 25.0, 30.0]])
    out = BitMasks(tensor).crop_and_resize(box, 14)
    assert out.shape == (1, 14, 14) and out.dtype == torch.bool and out.all()
    polygon_out = PolygonMasks([[_square(5, 10, 20)]]).crop_and_resize(box, 14)
    assert polygon_out.shape == (1, 14, 14) and polygon_out.all()
    # left half of the box
    half = BitMasks(tensor).crop_and_resize(torch.tensor([[5.0, 10.0, 45.0, 30.0]]), 14)
    assert half[0, :, :7].all() and not half[0, :, 7:].any()


def test_polygon_and_bitmask_crop_and_resize_agree():
    generator = torch.Generator().manual_seed(0)
    polygons, boxes = [], []
    for _ in range(6):
        center = torch.rand(2, generator=generator) * 40 + 20
        radius = float(torch.rand(1, generator=generator) * 10 + 8)
        angles = np.linspace(0, 2 * np.pi, 9)[:-1]
        points = np.stack([center[0].item() + radius * np.cos(angles), center[1].item() + radius * np.sin(angles)], 1)
        polygons.append([points.reshape(-1)])
        jitter = (torch.rand(4, generator=generator) - 0.5) * 6
        boxes.append(
            torch.tensor([points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()]) + jitter
        )
    boxes = torch.stack(boxes).float()
    polygon_masks = PolygonMasks(polygons)
    bit_masks = BitMasks.from_polygon_masks(polygon_masks, 80, 80)
    from_polygons = polygon_masks.crop_and_resize(boxes, 28)
    from_bits = bit_masks.crop_and_resize(boxes, 28)
    assert from_polygons.shape == from_bits.shape == (6, 28, 28)
    intersection = (from_polygons & from_bits).flatten(1).sum(1).float()
    union = (from_polygons | from_bits).flatten(1).sum(1).float()
    assert (intersection / union).min() >= 0.9


def test_crop_and_resize_empty_and_mismatch():
    assert BitMasks(torch.zeros(0, 5, 5)).crop_and_resize(torch.zeros(0, 4), 7).shape == (0, 7, 7)
    assert PolygonMasks([]).crop_and_resize(torch.zeros(0, 4), 7).shape == (0, 7, 7)
    with pytest.raises(ValueError, match="2 boxes for 1 masks"):
        BitMasks(torch.zeros(1, 5, 5)).crop_and_resize(torch.zeros(2, 4), 7)


def test_polygon_crop_and_resize_equals_rasterizing_each_instance_in_its_box():
    """One pycocotools call for all instances gives exactly the per-instance rasterization, also
    for instances of several polygons, without polygons, and for a zero-width box."""
    polygons = [
        [_square(4, 6, 10)],
        [_square(0, 0, 8), _square(20, 20, 6)],  # two parts
        [],  # no polygon: an empty mask
        [np.array([30.0, 5.0, 45.0, 12.0, 33.0, 25.0])],
    ]
    boxes = torch.tensor(
        [[3.5, 5.0, 15.0, 17.0], [0.0, 0.0, 27.0, 27.0], [1.0, 1.0, 9.0, 9.0], [30.0, 5.0, 30.0, 25.0]]
    )
    masks = PolygonMasks(polygons)
    out = masks.crop_and_resize(boxes, 14)
    assert out.dtype == torch.bool and out.shape == (4, 14, 14)
    for index, (instance, box) in enumerate(zip(polygons, boxes.double().numpy())):
        scale = 14 / np.maximum(box[2:] - box[:2], 0.1)
        in_box = [((p.reshape(-1, 2) - box[:2]) * scale).reshape(-1) for p in instance]
        expected = torch.from_numpy(polygons_to_bitmask(in_box, 14, 14))
        assert torch.equal(out[index], expected), index
    assert out[1].any() and not out[2].any()
    # indexing shares the checked polygons instead of copying and re-checking them
    picked = masks[torch.tensor([3, 1])]
    assert picked.polygons[0][0] is masks.polygons[3][0]
    assert torch.equal(picked.crop_and_resize(boxes[[3, 1]], 14), out[[3, 1]])
