"""A table of library, hardware and build versions, logged at start-up to make runs comparable."""

import importlib
import os
import platform
import sys
from typing import List, Tuple

import numpy as np
import torch
from tabulate import tabulate

__all__ = ["collect_env_info"]


def _module_version(name: str) -> str:
    try:
        module = importlib.import_module(name)
    except Exception:  # a broken optional package must not stop training from starting
        return "not installed"
    version = getattr(module, "__version__", "unknown")
    return f"{version} @{os.path.dirname(getattr(module, '__file__', '') or '')}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def collect_env_info() -> str:
    """Versions of python, mrcnn, torch, torchvision and helpers, and the CPUs/GPUs in use."""
    import mrcnn

    rows: List[Tuple[str, str]] = [
        ("sys.platform", sys.platform),
        ("Python", sys.version.replace("\n", "")),
        ("numpy", np.__version__),
        ("mrcnn", f"{mrcnn.__version__} @{os.path.dirname(mrcnn.__file__)}"),
        ("PyTorch", f"{torch.__version__} @{os.path.dirname(torch.__file__)}"),
        ("torchvision", _module_version("torchvision")),
        ("fvcore", _module_version("fvcore")),
        ("iopath", _module_version("iopath")),
        ("pycocotools", _module_version("pycocotools")),
        ("omegaconf", _module_version("omegaconf")),
        ("CPU", _cpu_name()),
        ("CPU count", str(os.cpu_count())),
        ("torch threads", str(torch.get_num_threads())),
    ]
    cuda_available = torch.cuda.is_available()
    rows.append(("CUDA available", str(cuda_available)))
    if cuda_available:
        rows.append(("CUDA (torch build)", str(torch.version.cuda)))
        rows.append(("cuDNN", str(torch.backends.cudnn.version())))
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            rows.append(
                (
                    f"GPU {index}",
                    f"{props.name} ({props.total_memory / 2**30:.1f} GiB, capability {props.major}.{props.minor})",
                )
            )
        rows.append(("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", "<not set>")))
    rows.append(
        (
            "gloo / nccl",
            f"{torch.distributed.is_gloo_available()} / "
            f"{torch.distributed.is_nccl_available() if torch.distributed.is_available() else False}",
        )
    )
    return tabulate(rows, tablefmt="simple")


if __name__ == "__main__":
    print(collect_env_info())
