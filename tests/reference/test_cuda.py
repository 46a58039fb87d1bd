"""The harness on a CUDA device: the same comparisons, torch on the GPU (TF32 off,
deterministic algorithms). Skipped, with the reason, where torch sees no GPU."""

from __future__ import annotations

import pytest
from scratchnet_reference import compare_model, lockstep
from scratchnet_reference.core.matrix import OPTIMIZER_CONFIGS, make_batch

from scratchnet import ModelSpec


@pytest.fixture
def cuda(torch):
    if not torch.cuda.is_available():
        pytest.skip(f"CUDA not available: torch {torch.__version__} reports torch.cuda.is_available() == False "
                    f"(CUDA build: {torch.version.cuda or 'none'})")
    assert torch.backends.cuda.matmul.allow_tf32 is False  # set by scratchnet_reference.core.torch_import.torch_module
    return "cuda"


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compare_and_lockstep_on_cuda(dtype, cuda, correct_impl, torch):
    spec = ModelSpec((5, 7, 6, 4), hidden="tanh", output="softmax", loss="cross_entropy", dtype=dtype, seed=1)
    x, y = make_batch(spec, 13, seed=3)
    records = compare_model(correct_impl, spec, x, y, device=cuda, fd="never")
    records += lockstep(correct_impl, spec, x, y, OPTIMIZER_CONFIGS["adam"], gd_mode="mini_batch", device=cuda)
    assert {r.device for r in records} == {"cuda"}
    assert all(r.device_name.startswith("cuda:") and torch.cuda.get_device_name(0) in r.device_name
               for r in records)
    bad = [(r.check, r.flavour, r.param, r.step, r.tol_ratio) for r in records if r.status != "pass"]
    assert not bad, bad
