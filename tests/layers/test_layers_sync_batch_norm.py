"""SyncBatchNorm: plain BatchNorm in one process; over two gloo processes, the statistics,
outputs, gradients and running statistics of one process with the whole batch."""

import os

import pytest
import torch
from sync_batch_norm_workers import NUM_STEPS, SPLITS, single_process_reference, sync_bn_worker, toy_batch
from torch import nn

from mrcnn.engine import launch
from mrcnn.layers import SyncBatchNorm, get_norm


@pytest.mark.parametrize("momentum", [0.1, None])
def test_one_process_is_batch_norm(momentum):
    sync, plain = SyncBatchNorm(4, momentum=momentum), nn.BatchNorm2d(4, momentum=momentum)
    x = toy_batch()[:, :1].repeat(1, 4, 1, 1) * torch.arange(1.0, 5.0).view(1, 4, 1, 1)
    for _ in range(2):
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        out_sync, out_plain = sync(a), plain(b)
        (out_sync * torch.arange(4.0).view(1, 4, 1, 1)).sum().backward()
        (out_plain * torch.arange(4.0).view(1, 4, 1, 1)).sum().backward()
        assert torch.equal(out_sync, out_plain)
        assert torch.equal(a.grad, b.grad)
    assert torch.equal(sync.running_mean, plain.running_mean) and torch.equal(sync.running_var, plain.running_var)
    assert int(sync.num_batches_tracked) == 2
    sync.eval(), plain.eval()
    assert torch.equal(sync(x), plain(x))


def test_get_norm_gives_it_for_syncbn():
    norm = get_norm("SyncBN", 8)
    # a BatchNorm2d for everything that looks for one (DDP refuses nn.SyncBatchNorm in CPU modules)
    assert type(norm) is SyncBatchNorm and isinstance(norm, nn.BatchNorm2d)
    assert not isinstance(norm, nn.SyncBatchNorm)
    assert list(norm.state_dict()) == list(nn.BatchNorm2d(8).state_dict())


def test_two_gloo_processes_equal_one_process_with_the_whole_batch(tmp_path):
    launch(sync_bn_worker, 2, dist_url="auto", args=(str(tmp_path),))
    ranks = [torch.load(os.path.join(tmp_path, f"rank{r}.pt"), weights_only=True) for r in range(2)]
    for split in SPLITS:
        reference = single_process_reference(split)
        for rank, result in enumerate(r[split] for r in ranks):
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
        # the statistics really moved: the running variance is no longer its initial 1
        assert (reference["buffers"]["running_var"] - 1).abs().max() > 0.1, split
