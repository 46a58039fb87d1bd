"""Tests of the reference harness itself. torch is imported once per session (``import torch``
costs ~2 s); the whole directory is skipped, with the install hint, where torch is missing."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the reference harness needs PyTorch: "
                    "pip install -c constraints.txt 'scratchnet[reference]'")

from scratchnet_reference import ScratchnetImplementation  # noqa: E402
from scratchnet_reference.core.torch_import import torch_module  # noqa: E402


@pytest.fixture(scope="session")
def torch():
    """torch, imported once and configured by the harness (deterministic, no TF32)."""
    return torch_module()


@pytest.fixture(scope="session")
def correct_impl():
    """The correct implementation under test: scratchnet as it is."""
    return ScratchnetImplementation()
