import math

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator as TorchvisionAnchorGenerator
from torchvision.models.detection.image_list import ImageList as TorchvisionImageList

from mrcnn.config import get_cfg
from mrcnn.layers import ShapeSpec
from mrcnn.modeling.proposal_generator import (
    ANCHOR_GENERATOR_REGISTRY,
    DefaultAnchorGenerator,
    build_anchor_generator,
)
from mrcnn.structures import Boxes

STRIDES = [4, 8, 16, 32, 64]
SIZES = [[32], [64], [128], [256], [512]]
RATIOS = [0.5, 1.0, 2.0]


def _features(height, width, strides=STRIDES):
    return [torch.zeros(1, 2, height // s, width // s) for s in strides]


def test_identical_to_torchvision_with_rounding():
    height, width = 192, 256
    features = _features(height, width)
    ours = DefaultAnchorGenerator(sizes=SIZES, aspect_ratios=RATIOS, strides=STRIDES, round_cell_anchors=True)
    anchors = ours(features)
    assert all(isinstance(a, Boxes) for a in anchors)
    reference = TorchvisionAnchorGenerator(tuple(tuple(s) for s in SIZES), (tuple(RATIOS),) * len(SIZES))
    images = TorchvisionImageList(torch.zeros(1, 3, height, width), [(height, width)])
    expected = reference(images, features)[0]
    assert torch.equal(torch.cat([a.tensor for a in anchors]), expected)


@pytest.mark.parametrize("size", [8, 16, 24, 32, 33, 48, 64, 96, 128, 181, 256, 300, 512, 1024])
def test_rounded_cell_anchors_equal_torchvision_formula(size):
    ratios = [0.25, 0.5, 1.0, 2.0, 4.0]
    ours = DefaultAnchorGenerator(sizes=[[size]], aspect_ratios=ratios, strides=[8], round_cell_anchors=True)
    reference = TorchvisionAnchorGenerator(((size,),), (tuple(ratios),)).cell_anchors[0]
    assert torch.equal(ours.cell_anchors._buffers["0"], reference)


def test_unrounded_anchors_follow_the_formula_and_grid_order():
    sizes, ratios, strides, offset = [[16, 40], [64, 100]], [0.5, 1.0, 2.0], [8, 16], 0.5
    generator = DefaultAnchorGenerator(sizes=sizes, aspect_ratios=ratios, strides=strides, offset=offset)
    assert generator.num_anchors == [6, 6] and generator.num_cell_anchors == [6, 6]
    grid = [(5, 7), (3, 4)]
    features = [torch.zeros(2, 1, h, w) for h, w in grid]
    anchors = generator(features)
    for level, ((height, width), stride) in enumerate(zip(grid, strides)):
        level_anchors = anchors[level].tensor
        assert level_anchors.shape == (height * width * 6, 4)
        for y in range(height):
            for x in range(width):
                a = 0
                for size in sizes[level]:  # sizes outer, ratios inner
                    for ratio in ratios:
                        w = math.sqrt(size * size / ratio)
                        h = ratio * w
                        cx, cy = (x + offset) * stride, (y + offset) * stride
                        expected = torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
                        got = level_anchors[(y * width + x) * 6 + a]
                        torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
                        torch.testing.assert_close((got[3] - got[1]) / (got[2] - got[0]), torch.tensor(ratio))
                        a += 1


def test_from_config_and_registry():
    cfg = get_cfg()
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64]]
    cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[1.0, 2.0]]
    cfg.MODEL.ANCHOR_GENERATOR.OFFSET = 0.5
    shapes = [ShapeSpec(channels=4, stride=4), ShapeSpec(channels=4, stride=8)]
    generator = build_anchor_generator(cfg, shapes)
    assert isinstance(generator, DefaultAnchorGenerator)
    assert ANCHOR_GENERATOR_REGISTRY.get("DefaultAnchorGenerator") is DefaultAnchorGenerator
    assert generator.strides == [4, 8] and generator.num_anchors == [2, 2]
    first = generator(_features(16, 16, [4, 8]))[0].tensor[0]
    torch.testing.assert_close(first, torch.tensor([2.0 - 16, 2.0 - 16, 2.0 + 16, 2.0 + 16]))
    # cell anchors follow the module's device/dtype moves but are not checkpointed
    assert generator.state_dict() == {}


def test_level_mismatch_is_reported():
    with pytest.raises(ValueError, match="SIZES"):
        DefaultAnchorGenerator(sizes=[[32], [64], [128]], aspect_ratios=RATIOS, strides=[4, 8])
    generator = DefaultAnchorGenerator(sizes=[[32], [64]], aspect_ratios=RATIOS, strides=[4, 8])
    with pytest.raises(ValueError, match="2 feature levels"):
        generator(_features(32, 32, [4]))


@pytest.mark.parametrize(
    "height, width",
    [
        (800, 1088),  # landscape: p6 has 13 rows, 800 // 13 = 61
        (416, 288),  # portrait, no side a multiple of 64
        (1088, 800),  # portrait
        (96, 160),  # sides that are multiples of 32 only
    ],
)
def test_strides_from_image_size_equal_torchvision(height, width):
    """Each level's stride is the padded image side // the map side, per side, as torchvision has it."""
    # FPN maps of a padded image: p2..p5 at strides 4..32, p6 pooled from p5 (rounded up)
    grids = [(height // s, width // s) for s in (4, 8, 16, 32)]
    grids.append(((grids[-1][0] + 1) // 2, (grids[-1][1] + 1) // 2))
    features = [torch.zeros(1, 2, h, w) for h, w in grids]
    ours = DefaultAnchorGenerator(
        sizes=SIZES, aspect_ratios=RATIOS, strides=STRIDES, round_cell_anchors=True, strides_from_image_size=True
    )
    anchors = torch.cat([a.tensor for a in ours(features, (height, width))])
    reference = TorchvisionAnchorGenerator(tuple(tuple(s) for s in SIZES), (tuple(RATIOS),) * len(SIZES))
    expected = reference(TorchvisionImageList(torch.zeros(1, 3, height, width), [(height, width)]), features)[0]
    assert torch.equal(anchors, expected)
    p6_height, p6_width = grids[-1]
    assert ours.level_strides(grids, (height, width))[-1] == (height // p6_height, width // p6_width)


def test_nominal_strides_by_default():
    """detectron2's anchors (the default) use the backbone's strides whatever the image size:
    p6 anchors of an 800-px side stay 64 px apart although its 13 rows are 61.5 px of image."""
    generator = DefaultAnchorGenerator(sizes=[[512]], aspect_ratios=[1.0], strides=[64])
    assert not generator.strides_from_image_size
    features = [torch.zeros(1, 2, 13, 17)]
    default = generator(features)[0].tensor
    assert torch.equal(generator(features, (800, 1088))[0].tensor, default)
    centres_y = (default[:, 1] + default[:, 3]) / 2
    assert torch.equal(centres_y.unique(), torch.arange(13, dtype=torch.float32) * 64)
    derived = DefaultAnchorGenerator(sizes=[[512]], aspect_ratios=[1.0], strides=[64], strides_from_image_size=True)
    derived_centres_y = (derived(features, (800, 1088))[0].tensor[:, 1::2].sum(dim=1)) / 2
    assert torch.equal(derived_centres_y.unique(), torch.arange(13, dtype=torch.float32) * 61)


def test_strides_from_image_size_config_and_errors():
    cfg = get_cfg()
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64]]
    shapes = [ShapeSpec(channels=4, stride=4), ShapeSpec(channels=4, stride=8)]
    assert not build_anchor_generator(cfg, shapes).strides_from_image_size
    cfg.MODEL.ANCHOR_GENERATOR.STRIDES_FROM_IMAGE_SIZE = True
    generator = build_anchor_generator(cfg, shapes)
    assert generator.strides_from_image_size
    with pytest.raises(ValueError, match="STRIDES_FROM_IMAGE_SIZE"):
        generator(_features(32, 32, [4, 8]))
