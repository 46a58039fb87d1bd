"""dtype in = dtype out, end to end, for every valid pair; same seed → the same bits."""

import warnings

import numpy as np
import pytest

from scratchnet import ModelSpec, Network, registry

from .helpers import pair_id, valid_pairs

PAIRS = valid_pairs()
HIDDEN = list(registry.ACTIVATIONS)     # one hidden layer per registered activation


def deep_spec(pair, dtype, seed=0):
    return ModelSpec((3, *[4] * len(HIDDEN), 3), hidden=HIDDEN, output=pair[0], loss=pair[1],
                     dtype=dtype, seed=seed)


def data(pair, n=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))                      # float64 data: cast to the model's dtype
    labels = rng.integers(0, 3, n)
    y = labels if registry.LOSSES[pair[1]].per_sample else np.eye(3)[labels]
    return x, y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
def test_dtype_is_preserved_end_to_end(pair, dtype):
    net = Network(deep_spec(pair, dtype))
    want = np.dtype(dtype)
    x, y = data(pair)
    assert all(v.dtype == want for v in net.state_dict().values())
    assert net.forward(x).dtype == want
    assert net.forward(x.astype(np.int64)).dtype == want
    value, grads = net.loss_and_grads(x, y)
    assert isinstance(value, float) and np.isfinite(value)
    assert all(g.dtype == want for g in grads.values())
    assert all(layer.z.dtype == want and layer.a.dtype == want for layer in net.layers)
    opt = registry.make_optimizer({"name": "adam", "lr": 1e-3, "amsgrad": True}, net.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = net.fit(x, y, epochs=2, batch_size=4, optimizer=opt)
    assert not history.diverged
    assert all(v.dtype == want for v in net.state_dict().values())
    assert all(m.dtype == want for m in opt.m + opt.v + opt.v_max)


@pytest.mark.parametrize("init", list(registry.INITIALIZERS))
def test_float32_weights_are_drawn_in_float32(init):
    """A float32 model draws its weights in float32 (no float64 draw rounded afterwards); float64
    draws are ``Generator.uniform``/``normal`` exactly, as before."""
    spec = ModelSpec((5, 7, 2), hidden="tanh", init=init, seed=5)
    w64, w32 = Network(spec).state_dict(), Network(spec.replace(dtype="float32")).state_dict()
    bound = 1 / np.sqrt(5)
    if init == "torch_default":
        rng = np.random.default_rng(5)
        assert w64["layers.0.weight"].tobytes() == rng.uniform(-bound, bound, (7, 5)).tobytes()
        rng = np.random.default_rng(5)
        u = rng.random((7, 5), dtype=np.float32)
        want = np.float32(-bound) + np.float32(2 * bound) * u
        assert w32["layers.0.weight"].dtype == np.float32 and w32["layers.0.weight"].tobytes() == want.tobytes()
        assert np.all(np.abs(w32["layers.0.weight"]) <= np.float32(bound))
    if init == "kaiming_normal":
        rng = np.random.default_rng(5)
        want = rng.standard_normal((7, 5), dtype=np.float32) * np.float32(np.sqrt(2 / 5))
        assert w32["layers.0.weight"].tobytes() == want.tobytes()
    assert all(v.dtype == np.float32 for v in w32.values())


def test_float32_outputs_follow_float64_to_float32_precision():
    spec = deep_spec(("softmax", "cross_entropy"), "float64", seed=5)
    x, y = data(("softmax", "cross_entropy"))
    n64 = Network(spec)
    n32 = Network.from_spec(spec.replace(dtype="float32"), n64.state_dict())
    np.testing.assert_allclose(n32.forward(x), n64.forward(x.astype(np.float32)), rtol=1e-5, atol=1e-6)


# -- determinism --------------------------------------------------------------------------------

def same_bits(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes() for k in a)


@pytest.mark.parametrize("init", list(registry.INITIALIZERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_same_weights(init, dtype):
    spec = ModelSpec((4, 6, 3), hidden="relu", output="softmax", loss="cross_entropy", init=init,
                     dtype=dtype, seed=42)
    assert same_bits(Network(spec).state_dict(), Network(spec).state_dict())
    if init != "zeros":
        assert not same_bits(Network(spec).state_dict(), Network(spec.replace(seed=43)).state_dict())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", [{"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
                                       {"name": "adamw", "lr": 0.01, "amsgrad": True}], ids=["sgd", "adamw"])
def test_same_seed_same_outputs_and_training(optimizer, dtype):
    pair = ("softmax", "cross_entropy")
    x, y = data(pair, n=23)

    def run(seed=None):
        net = Network(deep_spec(pair, dtype, seed=9))
        out = net.forward(x)
        history = net.fit(x, y, epochs=3, batch_size=5, optimizer=optimizer, seed=seed)
        return out, history, net.state_dict()

    (out_a, hist_a, w_a), (out_b, hist_b, w_b) = run(), run()
    assert out_a.tobytes() == out_b.tobytes()
    assert hist_a.to_dict() == hist_b.to_dict()
    assert same_bits(w_a, w_b)
    _, hist_c, w_c = run(seed=1)              # another batch order: another run
    assert hist_c.step_loss != hist_a.step_loss and not same_bits(w_a, w_c)
