"""DatasetCatalog / MetadataCatalog behaviour and the built-in registrations."""

import pytest

from mrcnn.data import DatasetCatalog, Metadata, MetadataCatalog


def test_register_get_and_unknown_name():
    DatasetCatalog.register("catalog_test_set", lambda: [{"file_name": "a.png", "image_id": 1}])
    try:
        assert DatasetCatalog.get("catalog_test_set") == [{"file_name": "a.png", "image_id": 1}]
        assert "catalog_test_set" in DatasetCatalog.list()
        with pytest.raises(ValueError, match="already registered"):
            DatasetCatalog.register("catalog_test_set", lambda: [])
        with pytest.raises(KeyError, match="not registered.*catalog_test_set"):
            DatasetCatalog.get("catalog_test_sett")
    finally:
        DatasetCatalog.remove("catalog_test_set")
    assert "catalog_test_set" not in DatasetCatalog.list()


def test_loader_must_return_a_list():
    DatasetCatalog.register("catalog_test_bad", lambda: {"not": "a list"})
    try:
        with pytest.raises(TypeError, match="catalog_test_bad"):
            DatasetCatalog.get("catalog_test_bad")
    finally:
        DatasetCatalog.remove("catalog_test_bad")


def test_metadata_set_once_and_missing_field():
    metadata = MetadataCatalog.get("catalog_test_meta")
    try:
        assert MetadataCatalog.get("catalog_test_meta") is metadata
        metadata.set(thing_classes=["a", "b"], evaluator_type="coco")
        metadata.thing_classes = ("a", "b")  # the same classes: allowed
        with pytest.raises(ValueError, match="thing_classes.*catalog_test_meta"):
            metadata.thing_classes = ["b", "a"]
        with pytest.raises(AttributeError, match="no field 'json_file'.*evaluator_type"):
            _ = metadata.json_file
        assert metadata.get("json_file", "default") == "default"
        assert metadata.as_dict() == {
            "name": "catalog_test_meta",
            "thing_classes": ["a", "b"],
            "evaluator_type": "coco",
        }
    finally:
        MetadataCatalog.remove("catalog_test_meta")


def test_metadata_pickles():
    import pickle

    metadata = Metadata(name="x", thing_classes=["c"])
    restored = pickle.loads(pickle.dumps(metadata))
    assert restored.name == "x" and restored.thing_classes == ["c"]


def test_builtin_datasets_registered():
    names = DatasetCatalog.list()
    for name in (
        "coco_2017_train",
        "coco_2017_val",
        "coco2017_seed_train",
        "coco2017_seed_val",
        "shapes_train",
        "shapes_val",
    ):
        assert name in names
    val = MetadataCatalog.get("coco_2017_val")
    assert val.json_file.endswith("coco/annotations/instances_val2017.json")
    assert val.image_root.endswith("coco/val2017")
    assert MetadataCatalog.get("coco2017_seed_train").json_file.endswith("coco2017/annotations/train_annotations.json")
    assert len(val.thing_classes) == 80 and len(val.thing_colors) == 80
    id_map = val.thing_dataset_id_to_contiguous_id
    assert id_map[1] == 0 and id_map[90] == 79 and 12 not in id_map
    assert sorted(id_map.values()) == list(range(80))
    assert MetadataCatalog.get("shapes_val").thing_classes == ["circle", "square", "triangle"]
