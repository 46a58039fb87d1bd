"""The whole conformance matrix, one deterministic check per combination.

Every case comes from the registry (``scratchnet_reference.core.matrix``): hidden activation × output
activation × every loss defined on it × reduction × dtype, on every selected device, each
compared in every torch flavour. Undefined pairs must be refused; every optimizer
configuration × GD mode trains in lockstep with torch — through the adapter protocol, and through
scratchnet's own ``Network.fit`` (``kind="fit"``, :mod:`scratchnet_reference.core.fit_lockstep`).
"""

import pytest
from scratchnet_reference.conformance.runner import FIT_EPOCHS, check_fit, check_refusal

# The matrix cases and the lockstep training runs are the packaged tests that
# ``pytest --pyargs scratchnet_reference.conformance.tests --scratchnet-impl ...`` runs in a user's project; imported
# here, they run as part of this suite too.
from scratchnet_reference.conformance.tests.test_conformance import (  # noqa: F401 - collected by pytest
    CASES,
    test_case_matches_torch,
    test_layered_training_in_lockstep,
    test_training_in_lockstep,
)
from scratchnet_reference.core.lockstep import GD_MODES
from scratchnet_reference.core.matrix import DTYPES, OPTIMIZER_CONFIGS, output_loss_pairs, refused_pairs
from scratchnet_reference.core.protocol import ScratchnetImplementation

FITS = [(opt, mode, dtype) for opt in OPTIMIZER_CONFIGS for mode in GD_MODES for dtype in DTYPES]


@pytest.mark.parametrize("optimizer,gd_mode,dtype", FITS, ids=["-".join(f) for f in FITS])
def test_fit_in_lockstep(impl, optimizer, gd_mode, dtype, device, conformance):
    """``Network.fit`` step for step against torch fed the written schedule: every optimizer
    configuration, full batch / mini-batches of 5, 5, 3 / stochastic, shuffled, several epochs."""
    if not isinstance(getattr(impl, "inner", impl), ScratchnetImplementation):
        pytest.skip("Network.fit is scratchnet's own API; the adapter protocol has no fit")
    records = check_fit(impl, optimizer, gd_mode, dtype, device)
    steps = [r for r in records if r.check == "fit_step"]
    assert len([r for r in records if r.check == "fit_epoch"]) == FIT_EPOCHS >= 2
    assert len(steps) == FIT_EPOCHS * {"full_batch": 1, "mini_batch": 3, "stochastic": 13}[gd_mode]
    conformance.check(records, steer=False, job=("fit", (optimizer, gd_mode, dtype, device)))


@pytest.mark.parametrize("output,loss", refused_pairs(), ids=[f"{o}-{l}" for o, l in refused_pairs()])
def test_undefined_pair_is_refused(output, loss, conformance):
    message = check_refusal(output, loss)
    assert "output activations that work" in message
    conformance.refused(message)


def test_matrix_covers_the_registry():
    """Sanity of the generator itself: the product is complete and nothing is listed twice."""
    import scratchnet

    pairs = output_loss_pairs()
    assert len(pairs) + len(refused_pairs()) == len(scratchnet.ACTIVATIONS) * len(scratchnet.LOSSES)
    from scratchnet_reference.core.matrix import AFTER, LAYERED_MODELS, MODES

    dense = [c for c in CASES if not c.after]
    assert len({c.id for c in CASES}) == len(CASES)
    assert len(dense) == len(scratchnet.ACTIVATIONS) * len(pairs) * 2 * 2
    # batch norm and dropout along one axis: each alone and both, both modes, both dtypes
    assert len(CASES) - len(dense) == len(LAYERED_MODELS) * len(AFTER) * len(MODES) * 2 == 6 * 3 * 2 * 2
    assert {tuple(layer if isinstance(layer, str) else layer["name"] for layer in AFTER[a]) for a in AFTER} == {
        ("batch_norm",), ("dropout",), ("batch_norm", "dropout")}
    assert ("softmax", "cross_entropy") in pairs and ("sigmoid", "mse") in pairs
    assert ("identity", "cross_entropy") in refused_pairs() and ("softmax", "nll") in refused_pairs()
    # every optimizer of the registry has a lockstep training configuration
    from scratchnet_reference.core.matrix import OPTIMIZER_CONFIGS
    assert set(scratchnet.OPTIMIZERS) <= {c["name"] for c in OPTIMIZER_CONFIGS.values()}


@pytest.mark.cuda
def test_cuda_present(pytestconfig):
    """With ``--scratchnet-device all`` the CUDA column runs only where torch sees a GPU; say so once."""
    from scratchnet_reference.conformance.plugin import NO_CUDA_REASON
    from scratchnet_reference.core.torch_import import torch_module

    if not torch_module().cuda.is_available():
        pytest.skip(NO_CUDA_REASON)
    assert pytestconfig.getoption("scratchnet_device") in ("all", "cuda")
