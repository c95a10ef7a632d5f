"""SyncBatchNorm in one process: exactly BatchNorm2d. (Two gloo processes against one process with
the whole batch: tests/engine/test_engine_sync_batch_norm_ddp.py.)"""

import pytest
import torch
from torch import nn

from mrcnn.layers import SyncBatchNorm, convert_frozen_batchnorm, get_norm


def _batch():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(8, 4, 6, 6, generator=generator) * torch.arange(1.0, 5.0).view(1, 4, 1, 1) + 0.7


@pytest.mark.parametrize("momentum", [0.1, None])
def test_one_process_is_batch_norm(momentum):
    sync, plain = SyncBatchNorm(4, momentum=momentum), nn.BatchNorm2d(4, momentum=momentum)
    x = _batch()
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
    # frozen like any BatchNorm (a backbone's frozen stages)
    assert type(convert_frozen_batchnorm(norm)).__name__ == "FrozenBatchNorm2d"
