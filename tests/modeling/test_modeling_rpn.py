import math
from collections import OrderedDict

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator as TorchvisionAnchorGenerator
from torchvision.models.detection.image_list import ImageList as TorchvisionImageList
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead

from mrcnn.config import get_cfg
from mrcnn.layers import ShapeSpec
from mrcnn.modeling.box_regression import Box2BoxTransform
from mrcnn.modeling.proposal_generator import (
    PROPOSAL_GENERATOR_REGISTRY,
    RPN,
    StandardRPNHead,
    build_proposal_generator,
    find_top_rpn_proposals,
)
from mrcnn.structures import Boxes, ImageList, Instances

CHANNELS = 8
INPUT_SHAPE = {"p2": ShapeSpec(channels=CHANNELS, stride=4), "p3": ShapeSpec(channels=CHANNELS, stride=8)}
IMAGE_SIZES = [(64, 64), (60, 44)]


def _cfg(**rpn_overrides):
    cfg = get_cfg()
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3"]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[16], [32]]
    cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 300
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 100
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 150
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 60
    for key, value in rpn_overrides.items():
        setattr(cfg.MODEL.RPN, key, value)
    return cfg


def _inputs(seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = ImageList(torch.zeros(2, 3, 64, 64), IMAGE_SIZES)
    features = {
        "p2": torch.randn(2, CHANNELS, 16, 16, generator=generator),
        "p3": torch.randn(2, CHANNELS, 8, 8, generator=generator),
    }
    return images, features


def _gt():
    first = Instances(IMAGE_SIZES[0], gt_boxes=Boxes(torch.tensor([[4.0, 6.0, 30.0, 24.0], [20.0, 30.0, 60.0, 62.0]])))
    second = Instances(IMAGE_SIZES[1], gt_boxes=Boxes(torch.tensor([[10.0, 10.0, 26.0, 40.0]])))
    return [first, second]


def _randomize_head(rpn, seed=1, std=0.3):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in rpn.rpn_head.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * std)


def test_build_from_config():
    rpn = build_proposal_generator(_cfg(), INPUT_SHAPE)
    assert isinstance(rpn, RPN) and PROPOSAL_GENERATOR_REGISTRY.get("RPN") is RPN
    assert isinstance(rpn.rpn_head, StandardRPNHead)
    names = {name for name, _ in rpn.named_parameters()}
    assert names == {
        "rpn_head.conv.weight",
        "rpn_head.conv.bias",
        "rpn_head.objectness_logits.weight",
        "rpn_head.objectness_logits.bias",
        "rpn_head.anchor_deltas.weight",
        "rpn_head.anchor_deltas.bias",
    }
    assert rpn.rpn_head.anchor_deltas.weight.shape == (12, CHANNELS, 1, 1)
    assert abs(float(rpn.rpn_head.objectness_logits.weight.detach().std()) - 0.01) < 0.005
    assert float(rpn.rpn_head.conv.bias.detach().abs().sum()) == 0.0


def test_stacked_head_convs_and_bad_feature_names():
    head = StandardRPNHead(_cfg(CONV_DIMS=[16, -1]), list(INPUT_SHAPE.values()))
    assert head.conv.conv0.weight.shape == (16, CHANNELS, 3, 3)
    assert head.conv.conv1.weight.shape == (CHANNELS, 16, 3, 3)
    logits, deltas = head([torch.randn(1, CHANNELS, 5, 6)])
    assert logits[0].shape == (1, 3, 5, 6) and deltas[0].shape == (1, 12, 5, 6)
    with pytest.raises(KeyError, match="IN_FEATURES"):
        build_proposal_generator(_cfg(IN_FEATURES=["p2", "p9"]), INPUT_SHAPE)


def test_training_returns_finite_losses_with_gradients():
    rpn = build_proposal_generator(_cfg(), INPUT_SHAPE)
    rpn.train()
    images, features = _inputs()
    proposals, losses = rpn(images, features, _gt())
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    for name, param in rpn.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert len(proposals) == 2 and all(len(p) <= 100 for p in proposals)
    assert not proposals[0].proposal_boxes.tensor.requires_grad


def test_loss_values_with_zero_head():
    """Zero logits and deltas: cls loss is log(2) per sampled anchor, loc loss the L1 of targets."""
    rpn = build_proposal_generator(_cfg(BATCH_SIZE_PER_IMAGE=64), INPUT_SHAPE)
    rpn.train()
    with torch.no_grad():
        for param in rpn.rpn_head.parameters():
            param.zero_()
    images, features = _inputs()
    gt = _gt()
    anchors = rpn.anchor_generator([features["p2"], features["p3"]])
    torch.manual_seed(3)
    labels, matched = rpn.label_and_sample_anchors(anchors, gt)
    torch.manual_seed(3)
    _, losses = rpn(images, features, gt)

    all_anchors = Boxes.cat(anchors).tensor
    num_sampled = sum(int((label >= 0).sum()) for label in labels)
    assert num_sampled == 2 * 64
    positives = [label == 1 for label in labels]
    assert all(int(p.sum()) > 0 for p in positives)
    transform = Box2BoxTransform((1.0, 1.0, 1.0, 1.0))
    l1 = sum(float(transform.get_deltas(all_anchors[p], m[p]).abs().sum()) for p, m in zip(positives, matched))
    torch.testing.assert_close(losses["loss_rpn_cls"], torch.tensor(num_sampled * math.log(2.0) / 128))
    torch.testing.assert_close(losses["loss_rpn_loc"], torch.tensor(l1 / 128))


def test_image_without_gt_and_boundary_thresh():
    rpn = build_proposal_generator(_cfg(BOUNDARY_THRESH=0), INPUT_SHAPE)
    images, features = _inputs()
    gt = _gt()
    gt[1] = Instances(IMAGE_SIZES[1], gt_boxes=Boxes(torch.zeros(0, 4)))
    anchors = rpn.anchor_generator([features["p2"], features["p3"]])
    labels, matched = rpn.label_and_sample_anchors(anchors, gt)
    assert int((labels[1] == 1).sum()) == 0 and int((labels[1] == 0).sum()) > 0
    all_anchors = Boxes.cat(anchors).tensor
    for image_labels, (height, width) in zip(labels, IMAGE_SIZES):
        sampled = all_anchors[image_labels >= 0]
        assert (sampled[:, :2] >= 0).all() and (sampled[:, 2] < width).all() and (sampled[:, 3] < height).all()
    rpn.train()
    _, losses = rpn(images, features, gt)
    assert all(torch.isfinite(v) for v in losses.values())


def test_eval_proposals_are_bounded_inside_and_sorted():
    rpn = build_proposal_generator(_cfg(), INPUT_SHAPE)
    _randomize_head(rpn)
    rpn.eval()
    images, features = _inputs()
    proposals, losses = rpn(images, features)
    assert losses == {}
    for result, (height, width) in zip(proposals, IMAGE_SIZES):
        boxes = result.proposal_boxes.tensor
        logits = result.objectness_logits
        assert result.image_size == (height, width)
        assert 0 < len(result) <= 60
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
        assert (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
        assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()
        assert (logits[:-1] >= logits[1:]).all()


def _torchvision_rpn(rpn):
    """torchvision's RegionProposalNetwork with the head weights and settings of ``rpn``."""
    tv_head = RPNHead(CHANNELS, 3)
    tv_head.load_state_dict(
        {
            "conv.0.0.weight": rpn.rpn_head.conv.weight,
            "conv.0.0.bias": rpn.rpn_head.conv.bias,
            "cls_logits.weight": rpn.rpn_head.objectness_logits.weight,
            "cls_logits.bias": rpn.rpn_head.objectness_logits.bias,
            "bbox_pred.weight": rpn.rpn_head.anchor_deltas.weight,
            "bbox_pred.bias": rpn.rpn_head.anchor_deltas.bias,
        }
    )
    tv_rpn = RegionProposalNetwork(
        TorchvisionAnchorGenerator(((16,), (32,)), ((0.5, 1.0, 2.0),) * 2),
        tv_head,
        fg_iou_thresh=0.7,
        bg_iou_thresh=0.3,
        batch_size_per_image=256,
        positive_fraction=0.5,
        pre_nms_top_n={"training": 300, "testing": 150},
        post_nms_top_n={"training": 100, "testing": 60},
        nms_thresh=0.7,
        score_thresh=0.0,
    ).eval()
    return tv_rpn


def test_eval_proposals_match_torchvision_rpn():
    cfg = _cfg(MIN_SIZE=1e-3)  # torchvision drops boxes with a side below 1e-3
    cfg.MODEL.ANCHOR_GENERATOR.ROUND_CELL_ANCHORS = True
    rpn = build_proposal_generator(cfg, INPUT_SHAPE)
    _randomize_head(rpn)
    rpn.eval()
    tv_rpn = _torchvision_rpn(rpn)

    images, features = _inputs(seed=5)
    with torch.no_grad():
        ours, _ = rpn(images, features)
        theirs, _ = tv_rpn(TorchvisionImageList(images.tensor, IMAGE_SIZES), OrderedDict(features))
    for result, expected in zip(ours, theirs):
        boxes = result.proposal_boxes.tensor
        assert boxes.shape == expected.shape and len(boxes) > 10
        # same order too, since sigmoid keeps the order of distinct logits
        torch.testing.assert_close(boxes, expected, rtol=0, atol=1e-4)


def _torchvision_like_rpn(**rpn_overrides):
    """An RPN with torchvision's settings (rounded cell anchors, 1e-3 minimum size, strides from
    the image size, probability ranking), its head randomised and its objectness weights scaled
    by 50 so that about half of the logits pass 17 and their float32 probabilities are 1.0."""
    cfg = _cfg(MIN_SIZE=1e-3, PROPOSAL_RANKING="probability", **rpn_overrides)
    cfg.MODEL.ANCHOR_GENERATOR.ROUND_CELL_ANCHORS = True
    cfg.MODEL.ANCHOR_GENERATOR.STRIDES_FROM_IMAGE_SIZE = True
    rpn = build_proposal_generator(cfg, INPUT_SHAPE)
    _randomize_head(rpn)
    with torch.no_grad():
        rpn.rpn_head.objectness_logits.weight.mul_(50.0)
    return rpn.eval()


def _rounded_up_inputs(seed=5):
    """Two images padded to 60x44: p2 is 15x11 (stride 4), p3 8x6 (strides 60 // 8 = 7, 44 // 6 = 7)."""
    generator = torch.Generator().manual_seed(seed)
    images = ImageList(torch.zeros(2, 3, 60, 44), [(60, 44), (52, 37)])
    features = {
        "p2": torch.randn(2, CHANNELS, 15, 11, generator=generator),
        "p3": torch.randn(2, CHANNELS, 8, 6, generator=generator),
    }
    return images, features


def test_saturated_proposals_on_rounded_up_grids_match_torchvision_rpn():
    """Saturated objectness ranked by probability, ties in torchvision's order, and anchor strides
    from the image size: the same proposals in the same order as torchvision's RPN."""
    rpn = _torchvision_like_rpn()
    tv_rpn = _torchvision_rpn(rpn)
    images, features = _rounded_up_inputs()
    with torch.no_grad():
        ours, _ = rpn(images, features)
        theirs, _ = tv_rpn(TorchvisionImageList(images.tensor, images.image_sizes), OrderedDict(features))
        rpn.proposal_ranking = "logit"
        by_logit, _ = rpn(images, features)
    for result, expected, logit_ranked in zip(ours, theirs, by_logit):
        saturated = int((result.objectness_logits.sigmoid() == 1.0).sum())
        assert saturated >= 20, f"only {saturated} saturated proposals"
        torch.testing.assert_close(result.proposal_boxes.tensor, expected, rtol=0, atol=1e-4)
        # ranked by logit the saturated proposals come in another order
        assert not torch.equal(logit_ranked.proposal_boxes.tensor, expected)


def test_probability_ranking_orders_ties_by_level_then_logit():
    """Equal probabilities (1.0) keep the candidate order: level by level, each level by
    descending logit; unsaturated proposals follow by probability."""
    far_apart = [[[i * 20.0, 0.0, i * 20.0 + 10.0, 10.0] for i in range(3)]]
    level0 = torch.tensor(far_apart)
    level1 = torch.tensor(far_apart) + torch.tensor([0.0, 20.0, 0.0, 20.0])
    logits0 = torch.tensor([[20.0, 1.0, 30.0]])  # probabilities 1.0, 0.73, 1.0
    logits1 = torch.tensor([[40.0, 25.0, 2.0]])  # 1.0, 1.0, 0.88
    args = ([level0, level1], [logits0, logits1], [(60, 80)], 0.7, 10, 10, 0.0, False)
    (by_probability,) = find_top_rpn_proposals(*args, ranking="probability")
    assert by_probability.objectness_logits.tolist() == [30.0, 20.0, 40.0, 25.0, 2.0, 1.0]
    (by_logit,) = find_top_rpn_proposals(*args, ranking="logit")
    assert by_logit.objectness_logits.tolist() == [40.0, 30.0, 25.0, 20.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="ranking"):
        find_top_rpn_proposals(*args, ranking="score")


def test_proposal_ranking_from_config():
    assert build_proposal_generator(_cfg(), INPUT_SHAPE).proposal_ranking == "logit"
    assert build_proposal_generator(_cfg(PROPOSAL_RANKING="probability"), INPUT_SHAPE).proposal_ranking == "probability"
    with pytest.raises(ValueError, match="MODEL.RPN.PROPOSAL_RANKING"):
        build_proposal_generator(_cfg(PROPOSAL_RANKING="sigmoid"), INPUT_SHAPE)


def test_non_finite_predictions():
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [float("nan"), 0.0, 5.0, 5.0], [2.0, 2.0, 9.0, 30.0]]])
    logits = torch.tensor([[1.0, 3.0, 2.0]])
    with pytest.raises(FloatingPointError, match="non-finite"):
        find_top_rpn_proposals([boxes], [logits], [(20, 20)], 0.7, 10, 10, 0.0, training=True)
    (result,) = find_top_rpn_proposals([boxes], [logits], [(20, 20)], 0.7, 10, 10, 0.0, training=False)
    # the NaN box is dropped; the tall box is clipped to the image height, then both kept by score
    torch.testing.assert_close(result.objectness_logits, torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(
        result.proposal_boxes.tensor, torch.tensor([[2.0, 2.0, 9.0, 20.0], [0.0, 0.0, 10.0, 10.0]])
    )


def test_per_level_topk_and_min_size():
    # level 0 has 3 boxes, level 1 has 2; pre-NMS top-1 per level, then the 1e-3-wide box is dropped
    level0 = torch.tensor([[[0.0, 0.0, 4.0, 4.0], [10.0, 10.0, 14.0, 14.0], [0.0, 0.0, 1.0, 1.0]]])
    level1 = torch.tensor([[[5.0, 5.0, 5.0005, 9.0], [0.0, 0.0, 2.0, 2.0]]])
    logits0 = torch.tensor([[0.5, 2.0, 0.1]])
    logits1 = torch.tensor([[3.0, 1.0]])
    (result,) = find_top_rpn_proposals([level0, level1], [logits0, logits1], [(20, 20)], 0.7, 1, 10, 1e-3, False)
    torch.testing.assert_close(result.objectness_logits, torch.tensor([2.0]))
    (result,) = find_top_rpn_proposals([level0, level1], [logits0, logits1], [(20, 20)], 0.7, 1, 10, 0.0, False)
    torch.testing.assert_close(result.objectness_logits, torch.tensor([3.0, 2.0]))


@pytest.mark.parametrize("training", [False, True])
def test_decoding_only_the_top_anchors_equals_decoding_all(training):
    """predict_proposals picks each level's top anchors before decoding: the same proposals as
    decoding every anchor and letting find_top_rpn_proposals pick."""
    cfg = _cfg(PRE_NMS_TOPK_TRAIN=100, PRE_NMS_TOPK_TEST=100)  # p2 has 768 anchors, p3 192
    rpn = build_proposal_generator(cfg, INPUT_SHAPE)
    _randomize_head(rpn)
    rpn.train(training)
    images, features = _inputs()
    feature_list = [features[name] for name in ("p2", "p3")]
    anchors = rpn.anchor_generator(feature_list)
    logits, deltas = rpn.rpn_head(feature_list)
    logits = [score.permute(0, 2, 3, 1).flatten(1) for score in logits]
    deltas = [d.view(2, -1, 4, d.shape[-2], d.shape[-1]).permute(0, 3, 4, 1, 2).flatten(1, -2) for d in deltas]
    with torch.no_grad():
        ours = rpn.predict_proposals(anchors, logits, deltas, images.image_sizes)
        decoded_all = [
            rpn.box2box_transform.apply_deltas(d.reshape(-1, 4), a.tensor.repeat(2, 1)).view(2, -1, 4)
            for a, d in zip(anchors, deltas)
        ]
        reference = find_top_rpn_proposals(
            decoded_all,
            logits,
            images.image_sizes,
            rpn.nms_thresh,
            100,
            rpn.post_nms_topk[training],
            rpn.min_box_size,
            training,
        )
    for mine, theirs in zip(ours, reference):
        assert len(mine) == len(theirs) > 0
        torch.testing.assert_close(mine.proposal_boxes.tensor, theirs.proposal_boxes.tensor, rtol=0, atol=1e-5)
        assert torch.equal(mine.objectness_logits, theirs.objectness_logits)


def test_training_losses_equal_the_per_image_labelling_and_losses():
    """The forward's batched matching, sampling and losses give, for one seed, the losses of
    label_and_sample_anchors + losses (lists per image), bit for bit, and the same draws."""
    rpn = build_proposal_generator(_cfg(BATCH_SIZE_PER_IMAGE=64, BBOX_REG_WEIGHTS=(10.0, 10.0, 5.0, 5.0)), INPUT_SHAPE)
    _randomize_head(rpn)
    rpn.train()
    images, features = _inputs()
    gt = _gt()
    gt.append(Instances(IMAGE_SIZES[1], gt_boxes=Boxes(torch.zeros(0, 4))))  # an image without ground truth
    images = ImageList(torch.zeros(3, 3, 64, 64), IMAGE_SIZES + [IMAGE_SIZES[1]])
    features = {name: torch.cat([value, value[:1]]) for name, value in features.items()}
    torch.manual_seed(5)
    _, losses = rpn(images, features, gt)
    after_forward = torch.rand(1)

    feature_list = [features[name] for name in ("p2", "p3")]
    anchors = rpn.anchor_generator(feature_list)
    logits, deltas = rpn.rpn_head(feature_list)
    logits = [score.permute(0, 2, 3, 1).flatten(1) for score in logits]
    deltas = [d.view(3, -1, 4, d.shape[-2], d.shape[-1]).permute(0, 3, 4, 1, 2).flatten(1, -2) for d in deltas]
    torch.manual_seed(5)
    labels, matched = rpn.label_and_sample_anchors(anchors, gt)
    assert torch.equal(torch.rand(1), after_forward)
    expected = rpn.losses(anchors, logits, labels, deltas, matched)
    assert int((labels[2] == 1).sum()) == 0 and int((labels[2] == 0).sum()) == 64
    for name in ("loss_rpn_cls", "loss_rpn_loc"):
        assert torch.equal(losses[name], expected[name]), name


def _reference_selection(boxes, logits, level_sizes, image_sizes, nms_thresh, post_nms_topk, min_size, ranking):
    """Proposal selection one image at a time: drop non-finite, clip, drop small, torchvision's batched_nms."""
    from torchvision.ops import batched_nms

    levels = torch.cat([torch.full((size,), level) for level, size in enumerate(level_sizes)])
    results = []
    for image_boxes, image_logits, (height, width) in zip(boxes, logits, image_sizes):
        keep = torch.isfinite(image_boxes).all(dim=1) & torch.isfinite(image_logits)
        image_boxes, image_logits, image_levels = image_boxes[keep], image_logits[keep], levels[keep]
        x = image_boxes[:, 0::2].clamp(min=0, max=width)
        y = image_boxes[:, 1::2].clamp(min=0, max=height)
        image_boxes = torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=1)
        sizes = image_boxes[:, 2:] - image_boxes[:, :2]
        keep = (sizes >= min_size).all(dim=1) if min_size > 0 else (sizes > 0).all(dim=1)
        image_boxes, image_logits, image_levels = image_boxes[keep], image_logits[keep], image_levels[keep]
        scores = image_logits.sigmoid() if ranking == "probability" else image_logits
        keep = batched_nms(image_boxes, scores, image_levels, nms_thresh)[:post_nms_topk]
        results.append((image_boxes[keep], image_logits[keep]))
    return results


@pytest.mark.parametrize("num_candidates", [120, 1400])  # one NMS over shifted levels / one per level
@pytest.mark.parametrize("ranking", ["logit", "probability"])
def test_batched_selection_equals_selection_image_by_image(num_candidates, ranking):
    """Clipping, filtering and NMS of all images at once keep, per image, torchvision's proposals in
    torchvision's order, saturated probabilities (ties) and non-finite or empty boxes included."""
    from mrcnn.modeling.proposal_generator import select_rpn_proposals

    generator = torch.Generator().manual_seed(num_candidates)
    level_sizes = [num_candidates // 2, num_candidates // 3, num_candidates - num_candidates // 2 - num_candidates // 3]
    image_sizes = [(60, 80), (50, 44), (60, 80)]
    centres = torch.rand(3, num_candidates, 2, generator=generator) * 90 - 5
    sides = torch.rand(3, num_candidates, 2, generator=generator) * 30
    boxes = torch.cat([centres - sides / 2, centres + sides / 2], dim=2)
    boxes[0, :10, 2:] = boxes[0, :10, :2]  # empty boxes
    boxes[1, 5, 0] = float("nan")
    boxes[2, 7, 3] = float("inf")
    logits = torch.randn(3, num_candidates, generator=generator) * 30  # many saturate: ties
    for start, size in zip(torch.tensor([0] + level_sizes[:-1]).cumsum(0).tolist(), level_sizes):
        logits[:, start : start + size] = logits[:, start : start + size].sort(dim=1, descending=True).values
    logits[1, 3] = float("-inf")
    args = (level_sizes, image_sizes, 0.7, 80, 1e-3)
    results = select_rpn_proposals(boxes, logits, *args, training=False, ranking=ranking)
    expected = _reference_selection(boxes, logits, *args, ranking)
    for result, (expected_boxes, expected_logits), size in zip(results, expected, image_sizes):
        assert result.image_size == size and len(result) > 20
        assert torch.equal(result.proposal_boxes.tensor, expected_boxes)
        assert torch.equal(result.objectness_logits, expected_logits)
    if ranking == "probability":
        assert (results[0].objectness_logits.sigmoid() == 1.0).sum() >= 10
    with pytest.raises(FloatingPointError, match="non-finite"):
        select_rpn_proposals(boxes, logits, *args, training=True, ranking=ranking)


def test_min_box_size_comes_from_detectron2s_key():
    from mrcnn.config import get_cfg
    from mrcnn.layers import ShapeSpec
    from mrcnn.modeling.proposal_generator import build_proposal_generator

    cfg = get_cfg()
    cfg.MODEL.PROPOSAL_GENERATOR.MIN_SIZE = 3.5  # detectron2's key; MODEL.RPN has none
    shapes = {
        name: ShapeSpec(channels=8, stride=stride)
        for name, stride in zip(cfg.MODEL.RPN.IN_FEATURES, (4, 8, 16, 32, 64))
    }
    assert build_proposal_generator(cfg, shapes).min_box_size == 3.5
    assert "MIN_SIZE" not in cfg.MODEL.RPN
