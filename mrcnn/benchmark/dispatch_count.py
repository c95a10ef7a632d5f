"""How many operators one call dispatches, and how often it makes the host wait for the device.

On a GPU a training step that is bound by the host spends its time launching kernels and waiting
at synchronisation points, and both follow from the operators the step dispatches. Counted with
torch.profiler, the figures are the same on any machine (they depend on the code and the inputs,
not on the timing), so they can be compared without a GPU.
"""

import collections
import re
from typing import Any, Callable, Dict

import torch

from .profiling import profile_one_call

__all__ = ["SYNCHRONIZING_OPERATORS", "count_dispatches"]

# Operators after which the host must wait for the device: their output's size or value is
# needed on the host (.item(), bool(tensor), nonzero, unique, boolean-mask indexing, ...).
SYNCHRONIZING_OPERATORS = frozenset(
    {
        "aten::_local_scalar_dense",
        "aten::nonzero",
        "aten::_unique",
        "aten::_unique2",
        "aten::unique_dim",
        "aten::unique_consecutive",
        "aten::unique_dim_consecutive",
        "aten::masked_select",
        "aten::equal",
        "aten::repeat_interleave",
    }
)
_OPERATOR_NAME = re.compile(r"^(?!autograd::|torch::|mrcnn::)[a-z_0-9]+::")
# record_function labels of mrcnn's own kernels written with torch operators (the CPU RoIAlign
# gradient): their operators are counted, and also reported per label.
_REGION_PREFIX = "mrcnn::"
_KERNEL_LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchCooperativeKernel", "cudaLaunchKernelExC")
_HOST_WAITS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")


def count_dispatches(run: Callable[[], Any], device: torch.device, top: int = 15) -> Dict[str, Any]:
    """Operators dispatched and host synchronisation points in one ``run()``.

    "operators": operators called from Python or by the autograd engine (forward and backward),
    not those an operator calls inside itself (``aten::linear`` counts, its ``aten::addmm`` not);
    "host_syncs": calls of SYNCHRONIZING_OPERATORS, not nested in one another, and
    "host_syncs_by_operator" the same by name; "most_dispatched": the ``top`` most frequent
    operators as [name, count]; "operators_in_regions": how many of the operators ran inside each
    ``record_function`` region named "mrcnn::..." (a kernel of ours written as torch operators,
    such as the CPU RoIAlign gradient of the fast paths) and "region_calls" how often each region
    was entered; "operators_regions_as_one": the operators with each region call counted as one,
    as the compiled kernel it stands for would be. On CUDA also "kernel_launches" and "cuda_host_waits" (calls of
    cudaStreamSynchronize, cudaDeviceSynchronize, cudaEventSynchronize and blocking cudaMemcpy).
    """
    cuda = device.type == "cuda"
    prof, _ = profile_one_call(run, device)
    operators: collections.Counter[str] = collections.Counter()
    syncs: collections.Counter[str] = collections.Counter()
    regions: collections.Counter[str] = collections.Counter()
    region_calls: collections.Counter[str] = collections.Counter()
    launches = waits = 0
    for event in prof.events():
        name = event.name
        if name in _KERNEL_LAUNCHES:
            launches += 1
            continue
        if name in _HOST_WAITS:
            waits += 1
            continue
        if name.startswith(_REGION_PREFIX):
            parent = event.cpu_parent
            while parent is not None and not parent.name.startswith(_REGION_PREFIX):
                parent = parent.cpu_parent
            if parent is None:  # a region inside another counts as part of it
                region_calls[name] += 1
            continue
        if not _OPERATOR_NAME.match(name):
            continue
        outermost_operator = outermost_sync = True
        region = None
        parent = event.cpu_parent
        while parent is not None:
            if parent.name.startswith(_REGION_PREFIX):
                region = parent.name
            elif _OPERATOR_NAME.match(parent.name):
                outermost_operator = False
                if parent.name in SYNCHRONIZING_OPERATORS:
                    outermost_sync = False
                    break
            parent = parent.cpu_parent
        if outermost_operator:
            operators[name] += 1
            if region is not None:
                regions[region] += 1
        if name in SYNCHRONIZING_OPERATORS and outermost_sync:
            syncs[name] += 1
    report: Dict[str, Any] = {
        "operators": sum(operators.values()),
        "host_syncs": sum(syncs.values()),
        "host_syncs_by_operator": dict(syncs.most_common()),
        "most_dispatched": [[name, count] for name, count in operators.most_common(top)],
        "operators_in_regions": dict(regions.most_common()),
        "region_calls": dict(region_calls.most_common()),
        "operators_regions_as_one": sum(operators.values()) - sum(regions.values()) + sum(region_calls.values()),
    }
    if cuda:
        report["kernel_launches"] = launches
        report["cuda_host_waits"] = waits
    return report
