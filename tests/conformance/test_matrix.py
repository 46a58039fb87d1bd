"""The whole conformance matrix, one deterministic check per combination.

Every case comes from the registry (``reference.matrix``): hidden activation × output
activation × every loss defined on it × reduction × dtype, on every selected device, each
compared in every torch flavour. Undefined pairs must be refused; every optimizer
configuration × GD mode trains in lockstep with torch.
"""

import pytest

from reference.matrix import cases, output_loss_pairs, refused_pairs, training_configs
from reference.runner import check_case, check_refusal, check_training

CASES = list(cases())
TRAINING = [(opt, mode, dtype) for opt, mode in training_configs() for dtype in ("float64", "float32")]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_matches_torch(impl, case, device, conformance):
    conformance.require_case(case)  # skipped, and counted, where --impl does not implement it
    conformance.check(check_case(impl, case, device), steer=False)


@pytest.mark.parametrize("output,loss", refused_pairs(), ids=[f"{o}-{l}" for o, l in refused_pairs()])
def test_undefined_pair_is_refused(output, loss, conformance):
    message = check_refusal(output, loss)
    assert "output activations that work" in message
    conformance.refused(message)


@pytest.mark.parametrize("optimizer,gd_mode,dtype", TRAINING, ids=["-".join(t) for t in TRAINING])
def test_training_in_lockstep(impl, optimizer, gd_mode, dtype, device, conformance):
    conformance.require_training(optimizer, dtype)
    records = check_training(impl, optimizer, gd_mode, dtype, device)
    assert sum(r.check == "training_step" for r in records) >= 20
    conformance.check(records, steer=False)


def test_matrix_covers_the_registry():
    """Sanity of the generator itself: the product is complete and nothing is listed twice."""
    import scratchnet

    pairs = output_loss_pairs()
    assert len(pairs) + len(refused_pairs()) == len(scratchnet.ACTIVATIONS) * len(scratchnet.LOSSES)
    assert len({c.id for c in CASES}) == len(CASES) == len(scratchnet.ACTIVATIONS) * len(pairs) * 2 * 2
    assert ("softmax", "cross_entropy") in pairs and ("sigmoid", "mse") in pairs
    assert ("identity", "cross_entropy") in refused_pairs() and ("softmax", "nll") in refused_pairs()


@pytest.mark.cuda
def test_cuda_present(pytestconfig):
    """With ``--device all`` the CUDA column runs only where torch sees a GPU; say so once."""
    from reference._torch import torch_module
    from reference.pytest_plugin import NO_CUDA_REASON

    if not torch_module().cuda.is_available():
        pytest.skip(NO_CUDA_REASON)
    assert pytestconfig.getoption("--device") in ("all", "cuda")
