"""Whether the ops being run are recorded into a graph (tracing, scripting, compiling, exporting).

Code that caches tensors between calls or takes a shortcut of its own must step aside then, so
that the recorded graph computes from its inputs.
"""

import torch

__all__ = ["is_graph_recording"]


def is_graph_recording() -> bool:
    """Whether torch.jit tracing or scripting, torch.compile/torch.export or ONNX export records
    the ops being run."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    return torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()
