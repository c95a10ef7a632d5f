"""peak_memory_bytes on the CPU: the most bytes alive at once among the tensors a call creates,
with every free taken at its own time."""

import torch

from mrcnn.benchmark import peak_memory_bytes

MIB = 2**20


def test_peak_memory_counts_live_tensors():
    def run():
        a = torch.ones(1 << 20)  # 4 MiB
        b = torch.ones(1 << 20)
        c = torch.ones(1 << 20)
        del a, b, c
        d = torch.ones(1 << 19)  # 2 MiB, after the others are gone
        return d

    peak = peak_memory_bytes(run, torch.device("cpu"))
    assert 12 * MIB <= peak < 13 * MIB


def test_peak_memory_ignores_tensors_alive_before():
    existing = torch.ones(1 << 22)  # 16 MiB, allocated before the call
    peak = peak_memory_bytes(lambda: existing + 1, torch.device("cpu"))  # one new 16 MiB tensor
    assert 16 * MIB <= peak < 17 * MIB


def test_peak_memory_frees_python_temporaries_when_they_go():
    class TemporariesInBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            for _ in range(5):
                temporary = torch.ones(1 << 20)  # 4 MiB, freed by Python at the next assignment
                temporary = temporary + 1  # noqa: F841
            return grad * 2

    x = torch.ones(10, requires_grad=True)
    peak = peak_memory_bytes(lambda: TemporariesInBackward.apply(x).sum().backward(), torch.device("cpu"))
    assert 8 * MIB <= peak < 9 * MIB  # two of them at once, not all ten
