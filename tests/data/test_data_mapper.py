"""DatasetMapper: image reading, formats, annotations → Instances, crowd handling, bad images."""

import copy
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from mrcnn.config import get_cfg
from mrcnn.data import MAPPER_REGISTRY, DatasetMapper, MapDataset, build_mapper
from mrcnn.data import detection_utils as utils
from mrcnn.data import transforms as T
from mrcnn.data.datasets import generate_shapes_dataset, load_coco_json
from mrcnn.structures import BitMasks, Boxes, PolygonMasks


@pytest.fixture(scope="module")
def shapes_dicts(tmp_path_factory):
    root = tmp_path_factory.mktemp("mapper_shapes")
    generate_shapes_dataset(str(root), num_train=10, num_val=1, image_size=96, seed=4)
    return load_coco_json(str(root / "annotations" / "instances_train.json"), str(root / "train"))


def _mapper(is_train=True, **overrides):
    args = dict(
        augmentations=[T.ResizeShortestEdge(144, 1000, "choice")],
        image_format="RGB",
        use_instance_mask=True,
        instance_mask_format="polygon",
    )
    args.update(overrides)
    return DatasetMapper(is_train, **args)


def test_training_output_fields(shapes_dicts):
    mapper = _mapper()
    kinds = set()
    for record in shapes_dicts:
        original = copy.deepcopy(record)
        out = mapper(record)
        assert record == original  # the dataset dict is not modified
        image = out["image"]
        assert image.dtype == torch.uint8 and image.shape == (3, 144, 144)
        assert (out["height"], out["width"], out["image_id"]) == (96, 96, record["image_id"])
        pixels = np.asarray(Image.open(record["file_name"]).resize((144, 144), Image.BILINEAR))
        np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), pixels)
        instances = out["instances"]
        assert instances.image_size == (144, 144) and "annotations" not in out
        assert isinstance(instances.gt_boxes, Boxes) and instances.gt_classes.dtype == torch.int64
        assert instances.gt_classes.tolist() == [a["category_id"] for a in record["annotations"]]
        expected_boxes = [
            [x * 1.5, y * 1.5, (x + w) * 1.5, (y + h) * 1.5]
            for x, y, w, h in (a["bbox"] for a in record["annotations"])
        ]
        np.testing.assert_allclose(
            instances.gt_boxes.tensor.numpy(), np.array(expected_boxes).reshape(-1, 4), rtol=1e-5
        )
        masks = instances.gt_masks
        kinds.add(type(masks))
        all_polygons = all(isinstance(a["segmentation"], list) for a in record["annotations"])
        assert isinstance(masks, PolygonMasks if all_polygons else BitMasks)
        dense = masks.tensor if isinstance(masks, BitMasks) else BitMasks.from_polygon_masks(masks, 144, 144).tensor
        for box, mask in zip(instances.gt_boxes.tensor, dense):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert xs.min() + 0.5 >= box[0] - 1 and xs.max() + 0.5 <= box[2] + 1
            assert ys.min() + 0.5 >= box[1] - 1 and ys.max() + 0.5 <= box[3] + 1
    assert kinds == {PolygonMasks, BitMasks}


def test_bitmask_format_and_bgr(shapes_dicts):
    record = next(r for r in shapes_dicts if len(r["annotations"]) >= 2)
    rgb = _mapper(instance_mask_format="bitmask")(record)
    bgr = _mapper(instance_mask_format="bitmask", image_format="BGR")(record)
    assert torch.equal(bgr["image"], rgb["image"].flip(0))
    masks = rgb["instances"].gt_masks
    assert isinstance(masks, BitMasks) and masks.tensor.shape == (len(record["annotations"]), 144, 144)
    # the resized masks keep their area up to the scale factor
    areas = masks.tensor.sum(dim=(1, 2)).float()
    original = torch.tensor(
        [
            float(np.asarray(utils.annotations_to_instances([a], (96, 96), "bitmask").gt_masks.tensor.sum()))
            for a in record["annotations"]
        ]
    )
    assert torch.allclose(areas, original * 2.25, rtol=0.08)


def test_no_masks_when_mask_off(shapes_dicts):
    out = _mapper(use_instance_mask=False)(shapes_dicts[0])
    assert not out["instances"].has("gt_masks") and out["instances"].has("gt_boxes")


def test_crowd_dropped_in_training_and_annotations_dropped_in_inference(tmp_path):
    Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(tmp_path / "img.png")
    crowd_mask = np.zeros((40, 60), dtype=np.uint8)
    crowd_mask[5:20, 5:30] = 1
    import pycocotools.mask as mask_util

    rle = mask_util.encode(np.asfortranarray(crowd_mask))
    record = {
        "file_name": str(tmp_path / "img.png"),
        "height": 40,
        "width": 60,
        "image_id": 3,
        "annotations": [
            {"bbox": [5, 5, 25, 15], "bbox_mode": 1, "category_id": 1, "iscrowd": 1, "segmentation": rle},
            {
                "bbox": [30, 10, 10, 10],
                "bbox_mode": 1,
                "category_id": 0,
                "iscrowd": 0,
                "segmentation": [[30, 10, 40, 10, 40, 20, 30, 20]],
            },
        ],
    }
    out = _mapper(augmentations=[])(record)
    assert out["instances"].gt_classes.tolist() == [0]
    assert isinstance(out["instances"].gt_masks, PolygonMasks)
    test = _mapper(is_train=False, augmentations=[T.ResizeShortestEdge(80, 1000, "choice")])(record)
    assert "annotations" not in test and "instances" not in test
    assert test["image"].shape == (3, 80, 120) and (test["height"], test["width"]) == (40, 60)


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :10] = 255  # white left band
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was rotated: display rotated 90° clockwise
    image.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    array = utils.read_image(str(tmp_path / "rotated.jpg"), "RGB")
    assert array.shape == (40, 20, 3)
    assert array[:10].mean() > 200 and array[30:].mean() < 50  # the band is now on top
    gray = utils.read_image(str(tmp_path / "rotated.jpg"), "L")
    assert gray.shape == (40, 20, 1)


def test_missing_corrupt_and_mismatched_images_are_named(tmp_path):
    mapper = _mapper(is_train=False, augmentations=[])
    with pytest.raises(utils.ImageLoadError, match="nothing_here.png"):
        mapper({"file_name": str(tmp_path / "nothing_here.png"), "height": 4, "width": 4, "image_id": 1})
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(utils.ImageLoadError, match="broken.jpg"):
        mapper({"file_name": str(tmp_path / "broken.jpg"), "height": 4, "width": 4, "image_id": 2})
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(utils.SizeMismatchError, match="small.png is 10x12.*20x12"):
        mapper({"file_name": str(tmp_path / "small.png"), "height": 20, "width": 12, "image_id": 3})


def test_training_skips_unreadable_images_with_bounded_retries(shapes_dicts, tmp_path, caplog):
    dicts = copy.deepcopy(shapes_dicts[:3])
    dicts[1]["file_name"] = str(tmp_path / "lost.png")
    dataset = MapDataset(dicts, _mapper(), max_retries=10)
    np.random.seed(0)
    with caplog.at_level(logging.WARNING, logger="mrcnn.data.common"):
        out = dataset[1]
    assert out["file_name"] != dicts[1]["file_name"] and "instances" in out
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) >= 1 and "lost.png" in messages[0] and "skipped so far" in messages[0]
    all_bad = [dict(d, file_name=str(tmp_path / f"gone{i}.png")) for i, d in enumerate(dicts)]
    with pytest.raises(RuntimeError, match=r"MAX_LOAD_RETRIES=2.*gone"):
        MapDataset(all_bad, _mapper(), max_retries=2)[0]
    with pytest.raises(utils.ImageLoadError, match="gone0.png"):  # no retries: evaluation
        MapDataset(all_bad, _mapper(is_train=False))[0]


def test_registry_and_from_config():
    assert MAPPER_REGISTRY.get("DatasetMapper") is DatasetMapper
    cfg = get_cfg()
    cfg.MODEL.MASK_ON = True  # crops recompute boxes from the masks
    cfg.INPUT.MIN_SIZE_TRAIN = (100, 120)
    cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING = "range"
    cfg.INPUT.RANDOM_FLIP = "both"
    cfg.INPUT.CROP.ENABLED = True
    cfg.INPUT.PHOTOMETRIC_DISTORT.ENABLED = True
    train = build_mapper(cfg, True)
    kinds = [type(a) for a in train.augmentations.augmentations]
    assert kinds == [T.RandomCrop, T.RandomPhotometricDistort, T.ResizeShortestEdge, T.RandomFlip, T.RandomFlip]
    assert train.recompute_boxes and train.image_format == cfg.INPUT.FORMAT
    test = build_mapper(cfg, False)
    (resize,) = test.augmentations.augmentations
    assert resize.short_edge_length == (cfg.INPUT.MIN_SIZE_TEST,) and not test.recompute_boxes
    cfg.DATALOADER.MAPPER_NAME = "NoSuchMapper"
    with pytest.raises(KeyError, match="NoSuchMapper.*DatasetMapper"):
        build_mapper(cfg, True)
    cfg.INPUT.RANDOM_FLIP = "diagonal"
    with pytest.raises(ValueError, match="RANDOM_FLIP"):
        utils.build_augmentation(cfg, True)


def test_mask_of_another_size_names_file_and_annotation(tmp_path):
    """Dataset dicts that did not come through the json loader: the mapper checks RLE and bitmask sizes."""
    import pycocotools.mask as mask_util

    Image.fromarray(np.zeros((32, 48, 3), dtype=np.uint8)).save(tmp_path / "wide.png")
    small = np.zeros((16, 16), dtype=np.uint8)
    small[2:6, 2:6] = 1
    rle = mask_util.encode(np.asfortranarray(small))
    record = {
        "file_name": str(tmp_path / "wide.png"),
        "height": 32,
        "width": 48,
        "annotations": [
            {"bbox": [2, 2, 4, 4], "bbox_mode": 1, "category_id": 0, "segmentation": [[2, 2, 6, 2, 6, 6]]},
            {"id": 77, "bbox": [2, 2, 4, 4], "bbox_mode": 1, "category_id": 0, "segmentation": rle},
        ],
    }
    with pytest.raises(utils.SizeMismatchError, match=r"wide.png: annotation id 77 has a mask of size 16x16 .* 32x48"):
        _mapper()(record)
    record["annotations"][1] = {"bbox": [2, 2, 4, 4], "bbox_mode": 1, "category_id": 0, "segmentation": small}
    with pytest.raises(utils.SizeMismatchError, match=r"annotation #1 has a mask of size 16x16"):
        _mapper()(record)


def test_image_whose_size_disagrees_with_its_dict(tmp_path):
    """As detectron2: a SizeMismatchError naming the file, in training and at inference."""
    Image.fromarray(np.zeros((32, 48, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    record = {"file_name": str(tmp_path / "photo.png"), "height": 48, "width": 32, "annotations": []}
    for is_train in (True, False):
        with pytest.raises(utils.SizeMismatchError, match=r"photo.png is 32x48 \(HxW\) but its annotation says 48x32"):
            _mapper(is_train)(record)
