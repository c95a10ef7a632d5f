"""A toy conv + BatchNorm network trained on parts of one fixed batch, for the SyncBatchNorm test
(imported by it and by the processes it spawns; not a test file)."""

from typing import Callable, Dict, List, Sequence

import torch
from torch import nn

BATCH_SIZE = 8
NUM_STEPS = 2
SPLITS = ((4, 4), (3, 5), (0, 8))  # images of rank 0 and rank 1


def toy_network(norm: Callable[[int], nn.Module]) -> nn.Sequential:
    """conv -> norm -> ReLU -> conv, seeded (the norm's affine parameters too)."""
    torch.manual_seed(0)
    # momentum 0.5: two steps move the running statistics far from their initial values
    network = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), norm(4, momentum=0.5), nn.ReLU(), nn.Conv2d(4, 2, 1))
    with torch.no_grad():
        network[1].weight.uniform_(0.5, 1.5)
        network[1].bias.uniform_(-0.5, 0.5)
    return network


def toy_batch() -> torch.Tensor:
    """(8, 3, 6, 6) images, not centred, so that the statistics matter."""
    generator = torch.Generator().manual_seed(1)
    return torch.randn(BATCH_SIZE, 3, 6, 6, generator=generator) * 2.0 + 0.7


def train_steps(model: nn.Module, network: nn.Sequential, images: torch.Tensor, loss_scale: float) -> Dict:
    """NUM_STEPS of SGD on ``images``; the loss is loss_scale * sum(output^2) / elements of the whole batch.

    Returns the outputs and gradients of every step and the norm's final buffers.
    """
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    whole_batch_elements = BATCH_SIZE * 2 * images.shape[2] * images.shape[3]
    outputs: List[torch.Tensor] = []
    gradients: List[Dict[str, torch.Tensor]] = []
    for _ in range(NUM_STEPS):
        output = model(images)
        loss = loss_scale * output.square().sum() / whole_batch_elements
        optimizer.zero_grad()
        loss.backward()
        outputs.append(output.detach().clone())
        gradients.append({name: p.grad.detach().clone() for name, p in network.named_parameters()})
        optimizer.step()
    norm = network[1]
    buffers = {name: b.detach().clone() for name, b in norm.named_buffers()}
    return {"outputs": outputs, "gradients": gradients, "buffers": buffers}


def single_process_reference(split: Sequence[int]) -> Dict:
    """torch's nn.BatchNorm2d in one process on the whole batch, outputs split as the ranks hold them."""
    network = toy_network(nn.BatchNorm2d)
    result = train_steps(network, network, toy_batch(), loss_scale=1.0)
    result["outputs"] = [list(output.split(list(split))) for output in result["outputs"]]
    return result


def toy_sync_bn_runs() -> Dict:
    """In a process group: this rank trains the toy network with SyncBatchNorm under DDP on its
    part of the batch, for each split; {split: train_steps result}."""
    from mrcnn.engine import create_ddp_model
    from mrcnn.engine.defaults import _NO_FORWARD_BUFFER_SYNC
    from mrcnn.layers import SyncBatchNorm
    from mrcnn.utils import comm

    rank, world_size = comm.get_rank(), comm.get_world_size()
    images = toy_batch()
    results = {}
    for split in SPLITS:
        start = sum(split[:rank])
        part = images[start : start + split[rank]]
        network = toy_network(SyncBatchNorm)
        # Buffers are not broadcast at each forward (as DefaultTrainer does): equal running
        # statistics on the ranks come from the synchronisation alone.
        model = create_ddp_model(network, **_NO_FORWARD_BUFFER_SYNC)
        # DDP averages the gradients over the ranks: scaling by the world size makes the summed
        # per-rank losses the single-process loss of the whole batch.
        results[split] = train_steps(model, network, part, loss_scale=float(world_size))
    return results
