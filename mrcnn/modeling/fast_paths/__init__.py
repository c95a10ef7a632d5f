"""The speed-ups that change how a built model computes, never what it computes: one owner.

What they are, all applied by `apply_fast_paths` to a built model (``build_model`` does it when
MODEL.FAST_PATHS is True, the default) and nowhere written into the model files:

- frozen and eval-mode BatchNorm folded into the preceding convolution (inference and training);
- in CPU float32 inference: conv + norm + ReLU, and conv + norm + residual add + ReLU, as single
  oneDNN kernels, with the folded weights kept in oneDNN's blocked layout between calls;
- channels-last (NHWC) images and mask-head features on the CPU;
- RoIAlign split over the CPU threads, with its own CPU gradient.

One switch turns them all off: MODEL.FAST_PATHS False builds the plain model, and
``fast_paths_disabled()`` makes any model compute the plain way within a block. Tracing,
scripting, ``torch.compile``/``torch.export`` and ONNX export see the plain code by themselves.
The private torch calls they need are in `torch_private`, checked against the running torch.
"""

from .conv_fusion import clear_fast_path_caches
from .fast_modules import FAST_CLASSES, apply_fast_paths, has_fast_paths, remove_fast_paths
from .switch import fast_paths_active, fast_paths_disabled, fast_paths_enabled, set_fast_paths_enabled
from .torch_private import private_api_problem

__all__ = [
    "FAST_CLASSES",
    "apply_fast_paths",
    "clear_fast_path_caches",
    "fast_paths_active",
    "fast_paths_disabled",
    "fast_paths_enabled",
    "has_fast_paths",
    "private_api_problem",
    "remove_fast_paths",
    "set_fast_paths_enabled",
]
