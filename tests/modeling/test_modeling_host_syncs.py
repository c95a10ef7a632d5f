"""A training step of the RPN and the RoI heads makes the host wait for the device only where it
must, and as often for a batch of three images as for one."""

import collections
import contextlib

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile, record_function

from mrcnn.benchmark import tiny_config
from mrcnn.modeling import build_model
from mrcnn.modeling.fast_paths import fast_paths_disabled
from mrcnn.structures import Boxes, Instances, PolygonMasks
from mrcnn.utils.events import EventStorage

# operators whose result the host needs before it can go on (on a GPU: it waits for the device)
SYNCHRONIZING = {
    "aten::_local_scalar_dense",
    "aten::nonzero",
    "aten::_unique2",
    "aten::unique_consecutive",
    "aten::masked_select",
    "aten::equal",
}


def _batch(num_images):
    generator = np.random.default_rng(0)
    batch = []
    for index in range(num_images):
        height, width = (64, 80) if index % 2 == 0 else (72, 64)
        corners = generator.uniform(0, 30, size=(3, 2))
        sides = generator.uniform(16, 34, size=(3, 2))
        boxes = np.concatenate([corners, corners + sides], axis=1).astype(np.float32)
        instances = Instances((height, width))
        instances.gt_boxes = Boxes(torch.from_numpy(boxes))
        instances.gt_classes = torch.tensor([0, 1, 2])
        instances.gt_masks = PolygonMasks([[np.array([x0, y0, x1, y0, x1, y1, x0, y1])] for x0, y0, x1, y1 in boxes])
        image = torch.from_numpy(generator.integers(0, 255, size=(3, height, width), dtype=np.uint8))
        batch.append({"image": image, "instances": instances, "height": height, "width": width})
    return batch


def _host_waits(model, batch, profiled):
    """Tensors read back with .tolist() inside the RPN and the RoI heads in one training step, and
    (when ``profiled``) the synchronising operators dispatched there."""
    regions = ("proposal_generator", "roi_heads")
    read_backs = collections.Counter()
    inside = []
    original_tolist = torch.Tensor.tolist

    def counting_tolist(tensor):
        if inside:
            read_backs[inside[-1]] += 1
        return original_tolist(tensor)

    def wrap(name):
        module = model.get_submodule(name)
        forward = module.forward

        def wrapped(*args, **kwargs):
            inside.append(name)
            try:
                with record_function(f"region {name}"):
                    return forward(*args, **kwargs)
            finally:
                inside.pop()

        module.forward = wrapped

    for name in regions:
        wrap(name)
    torch.Tensor.tolist = counting_tolist
    try:
        profiling = profile(activities=[ProfilerActivity.CPU]) if profiled else contextlib.nullcontext()
        with fast_paths_disabled(), profiling as prof:
            torch.manual_seed(0)
            losses = model(batch)
            sum(losses.values()).backward()
    finally:
        torch.Tensor.tolist = original_tolist
    syncs = collections.Counter()
    for event in prof.events() if profiled else []:
        if event.name not in SYNCHRONIZING:
            continue
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith("region "):
            parent = parent.cpu_parent
        syncs[parent.name[len("region ") :] if parent is not None else "elsewhere"] += 1
    return syncs, read_backs


def test_training_step_reads_back_once_per_batch_not_per_image():
    torch.manual_seed(0)
    cfg = tiny_config(num_classes=3)
    cfg.MODEL.ROI_MASK_HEAD.TARGET_MODE = "roi_align_image_mask"
    model = build_model(cfg).train()
    _, read_backs_one = _host_waits(model, _batch(1), profiled=False)
    syncs, read_backs_three = _host_waits(model, _batch(3), profiled=True)
    assert syncs["proposal_generator"] == 0 and syncs["roi_heads"] == 0, syncs
    # the RPN: sampled anchor counts, surviving proposals per level; the RoI heads: sampled RoI
    # counts, the matched polygons, each pooler's boxes per level
    assert read_backs_one == read_backs_three == {"proposal_generator": 2, "roi_heads": 4}, read_backs_three


def test_cascade_training_step_reads_back_per_stage_not_per_image():
    torch.manual_seed(0)
    cfg = tiny_config(num_classes=3)
    cascade = ["MODEL.ROI_HEADS.NAME", "CascadeROIHeads", "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG", "True"]
    cfg.merge_from_list(cascade + ["MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE", "giou"])
    model = build_model(cfg).train()
    with EventStorage(0):  # the stages' foreground counts are logged, as in training
        _, read_backs_one = _host_waits(model, _batch(1), profiled=False)
        syncs, read_backs_three = _host_waits(model, _batch(3), profiled=True)
    # one wait per stage: its IoU box loss selects the foreground rows (the GIoU loss itself and
    # the labelling of each stage's boxes wait for nothing)
    assert syncs["roi_heads"] == 3, syncs
    # RoI heads: sampled RoI counts and matched polygons (as above); for each later stage (2) the
    # boxes it keeps and its foreground count; the box pooler's boxes per level in each stage (3)
    # and the mask pooler's (1)
    assert read_backs_one == read_backs_three == {"proposal_generator": 2, "roi_heads": 10}, read_backs_three
