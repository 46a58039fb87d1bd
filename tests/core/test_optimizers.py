"""Optimizers against straightforward re-implementations of the ``torch.optim`` documentation's
pseudo-code, over several steps with parameter-dependent gradients; dtypes; no allocation
growth per training step."""

import gc
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchnet import ModelSpec, Network, Parameter, registry

from .helpers import DTYPES, floats

# -- the torch.optim docs, written out literally (float64, fresh arrays every step) ----------------


def sgd_docs(theta, grad_fn, steps, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    """torch.optim.SGD's algorithm box."""
    b = None
    for t in range(1, steps + 1):
        g = grad_fn(theta, t)
        if weight_decay != 0:
            g = g + weight_decay * theta
        if momentum != 0:
            b = g if t == 1 else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        theta = theta - lr * g
    return theta


def adam_docs(theta, grad_fn, steps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
              decoupled=False):
    """torch.optim.Adam's algorithm box; ``decoupled`` is AdamW's (θ ← θ − γλθ, no L2 term)."""
    beta1, beta2 = betas
    m = v = v_max = np.zeros_like(theta)
    for t in range(1, steps + 1):
        g = grad_fn(theta, t)
        if decoupled:
            theta = theta - lr * weight_decay * theta
        elif weight_decay != 0:
            g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        if amsgrad:
            v_max = np.maximum(v_max, v)
            v_hat = v_max / (1 - beta2 ** t)
        else:
            v_hat = v / (1 - beta2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return theta


DOCS = {
    "sgd": sgd_docs,
    "adam": adam_docs,
    "adamw": lambda theta, grad_fn, steps, weight_decay=0.01, **hp: adam_docs(
        theta, grad_fn, steps, weight_decay=weight_decay, decoupled=True, **hp),
}

NAMED_CONFIGS = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.05, "momentum": 0.9}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("sgd", {"lr": 0.1, "weight_decay": 0.05}),
    ("sgd", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}),
    ("adam", {"lr": 0.01}),
    ("adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("adam", {"lr": 0.01, "amsgrad": True}),
    ("adam", {"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-6, "weight_decay": 0.05, "amsgrad": True}),
    ("adamw", {"lr": 0.01}),
    ("adamw", {"lr": 0.01, "weight_decay": 0.3, "amsgrad": True}),
]


def run_scratchnet(name, hyper, thetas, grad_fn, steps, dtype=np.float64):
    params = [Parameter(f"p{i}", th.astype(dtype), np.zeros_like(th, dtype=dtype)) for i, th in enumerate(thetas)]
    opt = registry.make_optimizer({"name": name, **hyper}, params)
    for t in range(1, steps + 1):
        for p in params:
            p.grad[...] = grad_fn(p.value, t)
        opt.step()
    assert opt.t == steps
    return opt, [p.value for p in params]


def make_problem(seed, steps):
    """Two parameters of different shapes; the gradient depends on θ and on the step."""
    rng = np.random.default_rng(seed)
    thetas = [rng.normal(size=(3, 4)), rng.normal(size=(4,))]
    noise = {t: {shape: rng.normal(size=shape) for shape in [(3, 4), (4,)]} for t in range(1, steps + 1)}
    return thetas, lambda theta, t: 0.5 * theta + 0.3 * np.sin(3 * theta) + noise[t][theta.shape]


def test_every_optimizer_has_a_docs_reference():
    assert set(registry.OPTIMIZERS) <= set(DOCS), f"write the docs algorithm for {set(registry.OPTIMIZERS) - set(DOCS)}"
    assert {name for name, _ in NAMED_CONFIGS} == set(registry.OPTIMIZERS)


def assert_matches_docs(name, hyper, seed=0, steps=12):
    thetas, grad_fn = make_problem(seed, steps)
    _, ours = run_scratchnet(name, hyper, thetas, grad_fn, steps)
    for mine, theta in zip(ours, thetas, strict=True):
        expected = DOCS[name](theta.copy(), grad_fn, steps, **hyper)
        np.testing.assert_allclose(mine, expected, rtol=1e-10, atol=1e-12, err_msg=f"{name} {hyper}")
        assert not np.allclose(mine, theta), "the parameters moved"


@pytest.mark.parametrize(("name", "hyper"), NAMED_CONFIGS, ids=[f"{n}{h}" for n, h in NAMED_CONFIGS])
def test_named_configuration_matches_docs(name, hyper):
    assert_matches_docs(name, hyper)


@st.composite
def sgd_hyper(draw):
    hyper = {"lr": draw(floats(1e-3, 0.5)), "weight_decay": draw(st.sampled_from([0.0, 0.01, 0.2]))}
    if draw(st.booleans()):
        hyper["momentum"] = draw(floats(0.05, 0.99))
        if draw(st.booleans()):
            hyper["nesterov"] = True
        else:
            hyper["dampening"] = draw(floats(0.0, 0.9))
    return hyper


@st.composite
def adam_hyper(draw):
    return {"lr": draw(floats(1e-4, 0.1)), "betas": (draw(floats(0.0, 0.99)), draw(floats(0.0, 0.9999))),
            "eps": draw(st.sampled_from([1e-8, 1e-6, 1e-3])), "weight_decay": draw(st.sampled_from([0.0, 0.01, 0.3])),
            "amsgrad": draw(st.booleans())}


@given(hyper=sgd_hyper(), seed=st.integers(0, 1000))
def test_sgd_matches_docs(hyper, seed):
    assert_matches_docs("sgd", hyper, seed)


@pytest.mark.parametrize("name", ["adam", "adamw"])
@given(hyper=adam_hyper(), seed=st.integers(0, 1000))
def test_adam_family_matches_docs(name, hyper, seed):
    assert_matches_docs(name, hyper, seed)


def test_adamw_defaults_to_torchs_weight_decay():
    p = [Parameter("w", np.ones(2), np.zeros(2))]
    assert registry.make_optimizer("adamw", p).weight_decay == 0.01
    assert registry.make_optimizer("adam", p).weight_decay == 0.0


def test_adamw_differs_from_adam_with_l2():
    hyper = {"lr": 0.01, "weight_decay": 0.3}
    thetas, grad_fn = make_problem(3, 5)
    _, adam = run_scratchnet("adam", hyper, thetas, grad_fn, 5)
    _, adamw = run_scratchnet("adamw", hyper, thetas, grad_fn, 5)
    assert not np.allclose(adam[0], adamw[0], rtol=1e-6)


# -- dtype and state -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "hyper"), NAMED_CONFIGS, ids=[f"{n}{h}" for n, h in NAMED_CONFIGS])
def test_dtype_is_kept_and_state_allocated_once(name, hyper, dtype):
    thetas, grad_fn = make_problem(1, 4)
    opt, _ = run_scratchnet(name, hyper, thetas, grad_fn, 1, dtype)
    state = [arr for value in vars(opt).values() if isinstance(value, list)
             for arr in value if isinstance(arr, np.ndarray)]
    ids = [id(a) for a in state]
    for t in range(2, 5):
        for p in opt.params:
            p.grad[...] = grad_fn(p.value.astype(np.float64), t)
        opt.step()
    assert all(p.value.dtype == dtype for p in opt.params)
    assert all(a.dtype == dtype for a in state)
    assert [id(a) for a in state] == ids, "state buffers are reused, never reallocated"
    if dtype == np.float32:   # float32 follows the float64 run to float32 precision
        _, ref = run_scratchnet(name, hyper, thetas, grad_fn, 4)
        for mine, theirs in zip((p.value for p in opt.params), ref, strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("name", "hyper"), NAMED_CONFIGS, ids=[f"{n}{h}" for n, h in NAMED_CONFIGS])
def test_hyperparams_rebuild_the_optimizer(name, hyper):
    params = [Parameter("w", np.ones(3), np.zeros(3))]
    opt = registry.make_optimizer({"name": name, **hyper}, params)
    again = registry.make_optimizer({"name": name, **opt.hyperparams}, params)
    assert again.hyperparams == opt.hyperparams and repr(again) == repr(opt)


# -- no allocation growth per step -----------------------------------------------------------------

@pytest.mark.parametrize(("name", "hyper"), NAMED_CONFIGS, ids=[f"{n}{h}" for n, h in NAMED_CONFIGS])
def test_train_step_does_not_grow_memory(name, hyper):
    net = Network(ModelSpec((8, 32, 4), hidden="tanh", output="softmax", loss="cross_entropy", seed=3))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8))
    target = net.loss_fn.prepare_target(rng.integers(0, 4, 16), 4, net.dtype)
    opt = registry.make_optimizer({"name": name, **hyper}, net.parameters())
    for _ in range(5):                      # first step allocates the state; caches settle
        net.train_step(x, target, opt)
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(5):
            net.train_step(x, target, opt)
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(300):
            net.train_step(x, target, opt)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # a leak of one (16, 4) float64 array per step would be 300·512 B ≈ 150 kB
    assert after - before < 4096, f"{name} {hyper}: {after - before} bytes more after 300 steps"
