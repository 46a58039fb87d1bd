"""Property-based conformance: hypothesis draws the model and the data, torch is the oracle.

One test per (output activation, loss) pair × dtype — the pairs come from the registry — and
hypothesis draws everything else: depth 1–4, widths 1–32 (rarely square, so a transposed
gradient cannot hide), per-layer hidden activations with their hyper-parameters, batch 1–64,
input and weight scales from tiny to large, logits big enough to overflow a naive softmax,
exact zeros into the first layer's kinks, every target form the loss takes, the reduction
and the seed. ``hypothesis.target`` pushes toward the worst ``tol_ratio``.
"""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scratchnet_reference import compare_model as _compare_model
from scratchnet_reference import initial_state
from scratchnet_reference.core.matrix import DTYPES, make_batch, output_loss_pairs

import scratchnet
from scratchnet.losses import REDUCTIONS

PAIRS = output_loss_pairs()

#: Domains of hyper-parameters an activation or loss may take; a parameter missing here keeps
#: its default, so a new registry entry is tested with no edit.
PARAM_DOMAINS = {
    "negative_slope": st.floats(0.0, 0.5),
    "alpha": st.floats(0.1, 2.0),
    "beta": st.floats(0.5, 3.0),
    "threshold": st.floats(1.0, 30.0),
    "approximate": st.sampled_from(["none", "tanh"]),
    "label_smoothing": st.sampled_from([0.0, 0.0, 0.1, 0.3]),
    "delta": st.floats(0.1, 2.0),
}
SMOOTH_L1_BETA = st.sampled_from([0.0, 0.5, 1.0, 2.0])  # smooth_l1's beta (0 is L1), not softplus's


@st.composite
def spec_with_params(draw, name, kind, allowed=None):
    """``{"name": name, **drawn params}`` for an activation or loss (only the parameters in
    ``allowed`` are drawn, when given; the others keep their defaults)."""
    defaults = scratchnet.registry.normalize(name, kind)
    params = {}
    for key in defaults:
        if key == "name" or (allowed is not None and key not in allowed):
            continue
        domain = SMOOTH_L1_BETA if (kind == "loss" and key == "beta") else PARAM_DOMAINS.get(key)
        if domain is not None:
            params[key] = draw(domain)
    return {"name": name, **params}


def target_kinds(loss):
    if scratchnet.registry.takes_class_indices(loss):
        return ["labels", "one_hot", "soft"]
    return ["dense", "labels"]


@st.composite
def problems_within(draw, output, loss, dtype, caps=None):
    """A spec, a state (scaled, maybe with exact kinks) and a batch — inside the capabilities
    ``caps`` of the implementation under test when given (hidden activations, reductions,
    hyper-parameters)."""
    hidden_names = sorted(caps.hidden if caps is not None else scratchnet.ACTIVATIONS)
    reductions = [r for r in REDUCTIONS if caps is None or r in caps.reductions]
    allowed = caps.hyperparameters if caps is not None else None
    depth = draw(st.integers(1, 4)) if hidden_names else 1
    sizes = tuple(draw(st.integers(1, 32)) for _ in range(depth + 1))
    hidden = [draw(spec_with_params(draw(st.sampled_from(hidden_names)), "activation", allowed))
              for _ in range(depth - 1)]
    spec = scratchnet.ModelSpec(sizes, hidden=hidden, output=draw(spec_with_params(output, "activation", allowed)),
                                loss=draw(spec_with_params(loss, "loss", allowed)),
                                reduction=draw(st.sampled_from(reductions)), dtype=dtype,
                                seed=draw(st.integers(0, 2**16)))
    state = initial_state(spec)
    weight_scale = draw(st.sampled_from([1e-2, 1.0, 3.0]))
    for name in state:
        state[name] = state[name] * weight_scale
    logit_scale = draw(st.sampled_from([1.0, 1.0, 100.0, 1e3]))  # 1e3: naive exp overflows
    last = f"layers.{depth - 1}"
    state[f"{last}.weight"] = state[f"{last}.weight"] * logit_scale
    state[f"{last}.bias"] = state[f"{last}.bias"] * logit_scale
    batch = draw(st.integers(1, 64))
    x, y = make_batch(spec, batch, seed=spec.seed, scale=draw(st.sampled_from([1e-3, 0.1, 1.0, 10.0])),
                      target=draw(st.sampled_from(target_kinds(loss))))
    if draw(st.booleans()):  # exact kinks: zero rows and zero first-layer bias give z == 0
        x[: max(1, batch // 2)] = 0.0
        state["layers.0.bias"] = np.zeros_like(state["layers.0.bias"])
    return spec, state, x, y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output,loss", PAIRS, ids=[f"{o}-{l}" for o, l in PAIRS])
@given(data=st.data())
@example(data=None)  # None: the fixed worst case, large_logits_example
def test_pair_matches_torch(impl, output, loss, dtype, device, conformance, capabilities, data):
    """``@given`` decorates the test itself, so each parametrization has its own example-database
    key and its own ``--hypothesis-show-statistics`` section. The problem is drawn from
    :func:`problems_within` for this pair, inside the implementation's ``capabilities``."""
    conformance.require(output=output, loss=loss, dtype=dtype)  # --scratchnet-impl narrows the matrix
    if data is None:
        problem = large_logits_example(output, loss, dtype, caps=capabilities)
    else:
        problem = data.draw(problems_within(output, loss, dtype, caps=capabilities), label="problem")
    spec, state, x, y = problem
    conformance.check(_compare_remembered(conformance, impl, spec, x, y, state=state, device=device))


def _compare_remembered(conformance, impl, spec, x, y, *, state, device):
    """``compare_model``, handing the problem to the recorder first."""
    conformance.remember((spec, state, x, y, device))
    return _compare_model(impl, spec, x, y, state=state, device=device)


def large_logits_example(output, loss, dtype, caps=None):
    """A fixed worst case kept as an ``@example``: logits of ±1e4 and exact kinks."""
    hidden = "relu" if caps is None or "relu" in caps.hidden else min(caps.hidden, default=None)
    reduction = "mean" if caps is None or "mean" in caps.reductions else "sum"
    spec = scratchnet.ModelSpec((3, 4, 5) if hidden else (3, 5), hidden=hidden or (), output=output, loss=loss,
                                reduction=reduction, dtype=dtype, seed=7)
    state = initial_state(spec)
    last = f"layers.{spec.n_layers - 1}"
    state[f"{last}.weight"] = state[f"{last}.weight"] * 1e4
    x, y = make_batch(spec, 6, seed=7, target=target_kinds(loss)[0])
    x[:2] = 0.0
    state["layers.0.bias"] = np.zeros_like(state["layers.0.bias"])
    return spec, state, x, y
