"""SyncBatchNorm under DDP in two gloo processes (one launch for the module): a toy network gives
the outputs, gradients and running statistics of one process with the whole batch, and
detectron2's SyncBN zoo config (shrunk) trains with precise BN, its ranks agreeing."""

import math
import os

import pytest
import torch
from sync_batch_norm_toys import NUM_STEPS, SPLITS, single_process_reference
from zoo_training_workers import sync_batch_norm_worker

from mrcnn.engine import launch

SYNCBN_CONFIG = "mask_rcnn_R_50_FPN_3x_syncbn.yaml"


@pytest.fixture(scope="module")
def ranks(tiny_shapes, tmp_path_factory):
    """What each of the two processes saved (see zoo_training_workers.sync_batch_norm_worker)."""
    output_dir = str(tmp_path_factory.mktemp("syncbn"))
    extra = ["SOLVER.MAX_ITER", "3", "TEST.PRECISE_BN.NUM_ITER", "2", "SOLVER.IMS_PER_BATCH", "4"]
    extra += ["MODEL.BACKBONE.FREEZE_AT", "2"]  # the config's: res3-res5 train, with SyncBN
    launch(sync_batch_norm_worker, 2, dist_url="auto", args=(SYNCBN_CONFIG, output_dir, extra))
    return [torch.load(os.path.join(output_dir, f"rank{r}.pt"), weights_only=True) for r in range(2)]


def test_two_processes_equal_one_process_with_the_whole_batch(ranks):
    # SPLITS: half and half, unequal parts (3 and 5 images), and one process without images
    for split in SPLITS:
        reference = single_process_reference(split)  # torch's nn.BatchNorm2d on all 8 images
        for rank, result in enumerate(r["toy_runs"][split] for r in ranks):
            for step in range(NUM_STEPS):
                # outputs of this rank's images, as the whole-batch BatchNorm computes them
                torch.testing.assert_close(
                    result["outputs"][step], reference["outputs"][step][rank], rtol=1e-5, atol=1e-5
                )
                for name, gradient in reference["gradients"][step].items():
                    torch.testing.assert_close(result["gradients"][step][name], gradient, rtol=1e-5, atol=1e-5)
            for name in ("running_mean", "running_var"):
                torch.testing.assert_close(result["buffers"][name], reference["buffers"][name], rtol=1e-5, atol=1e-6)
            assert int(result["buffers"]["num_batches_tracked"]) == NUM_STEPS
        # the statistics really moved: the running variance is far from its initial 1
        assert (reference["buffers"]["running_var"] - 1).abs().max() > 0.1, split


def test_syncbn_zoo_config_trains_with_precise_bn(ranks):
    for rank in ranks:
        assert rank["hooks"][:3] == ["IterationTimer", "LRScheduler", "PreciseBN"]
    losses = ranks[0]["total_loss"]  # the average over the ranks, recorded by rank 0
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    # the backbone's unfrozen stages, the FPN and both heads synchronise their BatchNorm
    classes = ranks[0]["norm_classes"]
    synced = {name for name, cls in classes.items() if cls == "SyncBatchNorm"}
    for part in ("bottom_up.res3", "bottom_up.res5", "fpn_output2", "box_head.conv4", "mask_head.mask_fcn1"):
        assert any(part in name for name in synced), part
    # Buffers are not broadcast between ranks at each forward: equal running statistics come from
    # the synchronised batch statistics, the mask head's too (a different number of RoIs per
    # rank), and from precise BN's sharing.
    buffers = [rank["buffers"] for rank in ranks]
    assert buffers[0].keys() == buffers[1].keys() and len(buffers[0]) >= 2 * len(synced)
    for name, value in buffers[0].items():
        if name.rpartition(".")[0] in synced:
            torch.testing.assert_close(value, buffers[1][name], rtol=1e-5, atol=1e-6)
            if name.endswith("running_var"):
                assert not torch.allclose(value, torch.ones_like(value)), name  # updated
