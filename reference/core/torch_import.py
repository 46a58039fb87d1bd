"""Importing torch, and preparing devices for bit-careful comparisons.

torch is imported lazily, once, by :func:`torch_module`, so that ``import reference`` (and
``import scratchnet``) never pays for it and a missing install gets an actionable message.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

INSTALL_HINT = ("PyTorch is needed for the reference harness: "
                "pip install -c constraints.txt 'scratchnet[reference]'")


@lru_cache(maxsize=1)
def torch_module() -> Any:
    """``import torch`` once, with deterministic settings:

    * cuBLAS and cuDNN without TF32 (TF32 rounds float32 matmul inputs to 10 mantissa bits),
    * ``torch.use_deterministic_algorithms(True)`` with ``CUBLAS_WORKSPACE_CONFIG`` set before
      CUDA initialises, so repeated runs give the same bits;
    * one intra-op CPU thread: the harness's tensors are tiny, and torch's thread pool only adds
      synchronisation (measured: a 4x8 softmax took 14 ms with 2 threads on a loaded 2-core
      machine). Benchmarks set their own thread count.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError(INSTALL_HINT) from exc
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    return torch


def available_devices() -> list[str]:
    """``["cpu"]``, plus ``"cuda"`` when ``torch.cuda.is_available()``."""
    torch = torch_module()
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def device_name(device: str) -> str:
    """Human-readable device: ``"cpu"`` or ``"cuda:0 (NVIDIA H100 80GB HBM3)"``."""
    torch = torch_module()
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return "cpu"


def torch_dtype(dtype: str) -> Any:
    torch = torch_module()
    return {"float32": torch.float32, "float64": torch.float64}[dtype]


def versions() -> dict[str, str]:
    """Versions that go into every record and report."""
    import platform

    import numpy as np

    import scratchnet

    torch = torch_module()
    return {"scratchnet": scratchnet.__version__, "numpy": np.__version__,
            "torch": torch.__version__, "python": platform.python_version()}
