import pytest
import torch

from mrcnn.structures import Boxes, Instances, PolygonMasks


def _make(n: int, offset: float = 0.0) -> Instances:
    inst = Instances((30, 40))
    inst.pred_boxes = Boxes(torch.arange(n * 4, dtype=torch.float32).view(n, 4) + offset)
    inst.scores = torch.linspace(0, 1, n) + offset
    inst.names = [f"obj{offset}_{i}" for i in range(n)]
    return inst


def test_fields_set_get_has_remove():
    inst = Instances((30, 40), scores=torch.tensor([0.1, 0.9]))
    assert inst.image_size == (30, 40)
    assert inst.has("scores") and not inst.has("pred_classes")
    inst.set("pred_classes", torch.tensor([3, 1]))
    assert inst.get("pred_classes").tolist() == [3, 1]
    assert inst.pred_classes.tolist() == [3, 1]
    assert list(inst.get_fields()) == ["scores", "pred_classes"]
    inst.remove("pred_classes")
    assert not inst.has("pred_classes")
    del inst.scores
    assert inst.get_fields() == {}
    with pytest.raises(AttributeError, match="no field 'missing'"):
        _ = inst.missing


def test_length_mismatch_error_names_field_and_lengths():
    inst = Instances((10, 10))
    inst.scores = torch.zeros(3)
    with pytest.raises(ValueError) as info:
        inst.pred_classes = torch.zeros(4, dtype=torch.long)
    message = str(info.value)
    assert "pred_classes" in message and "4" in message and "3" in message
    assert not inst.has("pred_classes")
    # replacing the only field may change the length
    inst.scores = torch.zeros(5)
    assert len(inst) == 5


def test_indexing_with_int_slice_mask_and_indices():
    inst = _make(4)
    one = inst[2]
    assert len(one) == 1 and one.scores.tolist() == pytest.approx([2 / 3])
    assert one.names == ["obj0.0_2"]
    assert one.pred_boxes.tensor.tolist() == [[8.0, 9.0, 10.0, 11.0]]
    assert inst[-1].names == ["obj0.0_3"]
    assert inst[1:3].names == ["obj0.0_1", "obj0.0_2"]
    picked = inst[torch.tensor([True, False, False, True])]
    assert len(picked) == 2 and picked.names == ["obj0.0_0", "obj0.0_3"]
    torch.testing.assert_close(picked.scores, torch.tensor([0.0, 1.0]))
    reordered = inst[torch.tensor([3, 0])]
    assert reordered.names == ["obj0.0_3", "obj0.0_0"]
    assert reordered.image_size == (30, 40)
    with pytest.raises(IndexError):
        inst[4]


def test_cat_tensors_lists_and_structures():
    a, b = _make(2), _make(3, offset=100.0)
    a.gt_masks = PolygonMasks([[[0, 0, 1, 0, 1, 1]]] * 2)
    b.gt_masks = PolygonMasks([[[0, 0, 2, 0, 2, 2]]] * 3)
    joined = Instances.cat([a, b])
    assert len(joined) == 5
    assert joined.names[1] == "obj0.0_1" and joined.names[2] == "obj100.0_0"
    torch.testing.assert_close(joined.scores[2:], torch.linspace(0, 1, 3) + 100.0)
    assert joined.pred_boxes.tensor[4].tolist() == [108.0, 109.0, 110.0, 111.0]
    assert len(joined.gt_masks) == 5 and joined.gt_masks.polygons[4][0][2] == 2.0
    with pytest.raises(ValueError, match="image sizes"):
        Instances.cat([a, Instances((1, 1), scores=torch.zeros(1))])


def test_to_and_repr():
    inst = _make(2)
    moved = inst.to("cpu")
    assert moved.pred_boxes.device == torch.device("cpu") and moved.names == inst.names
    text = repr(inst)
    assert "num_instances=2" in text and "pred_boxes" in text and "scores" in text and "image_width=40" in text


def test_pickle_round_trip_for_data_loader_workers():
    import pickle

    inst = _make(3)
    restored = pickle.loads(pickle.dumps(inst))
    assert restored.image_size == (30, 40) and restored.names == inst.names
    torch.testing.assert_close(restored.pred_boxes.tensor, inst.pred_boxes.tensor)
