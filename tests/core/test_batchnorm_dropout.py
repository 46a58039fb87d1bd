"""BatchNorm1d and Dropout in scratchnet (no torch here): the formulas checked against their
definitions written out independently, the backward against central differences, the spec
field's forms and refusals, modes, masks from the seeded generator, dtypes and model files."""

import json

import numpy as np
import pytest

import scratchnet
from scratchnet import BatchNorm1d, Dropout, ModelSpec, Network
from scratchnet.gradcheck import numerical_gradient

RNG = np.random.default_rng(7)


def test_batch_norm_training_forward_and_running_statistics_follow_torch_conventions():
    x = RNG.normal(2.0, 3.0, (6, 4))
    bn = BatchNorm1d(4, np.float64, momentum=0.2, eps=1e-3)
    bn.weight[...] = [1.0, 2.0, -0.5, 0.3]
    bn.bias[...] = [0.0, 1.0, 0.5, -2.0]
    bn.running_mean[...] = [0.1, 0.2, 0.3, 0.4]
    bn.running_var[...] = [1.5, 0.5, 2.0, 1.0]
    y = bn.forward(x, training=True).copy()
    mu = x.mean(axis=0)
    biased = ((x - mu) ** 2).mean(axis=0)
    unbiased = ((x - mu) ** 2).sum(axis=0) / (len(x) - 1)
    expected = (x - mu) / np.sqrt(biased + 1e-3) * bn.weight + bn.bias   # ε inside the root, biased variance
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(bn.running_mean, 0.8 * np.array([0.1, 0.2, 0.3, 0.4]) + 0.2 * mu, rtol=1e-14)
    np.testing.assert_allclose(bn.running_var, 0.8 * np.array([1.5, 0.5, 2.0, 1.0]) + 0.2 * unbiased, rtol=1e-14)


def test_batch_norm_eval_uses_the_running_statistics_and_updates_nothing():
    bn = BatchNorm1d(3, np.float64)
    bn.running_mean[...] = [1.0, -1.0, 0.5]
    bn.running_var[...] = [4.0, 0.25, 1.0]
    bn.weight[...] = [2.0, 1.0, 0.5]
    x = RNG.normal(size=(1, 3))        # a single row is fine in evaluation mode
    y = bn.forward(x, training=False).copy()
    np.testing.assert_allclose(y, (x - bn.running_mean) / np.sqrt(bn.running_var + 1e-5) * bn.weight, rtol=1e-14)
    assert bn.running_mean.tolist() == [1.0, -1.0, 0.5] and bn.running_var.tolist() == [4.0, 0.25, 1.0]
    dx = bn.backward(np.ones((1, 3)))
    np.testing.assert_allclose(dx, bn.weight / np.sqrt(bn.running_var + 1e-5)[None], rtol=1e-14)


def test_batch_norm_refuses_one_row_in_training_mode():
    with pytest.raises(ValueError, match="at least 2 rows.*eval"):
        BatchNorm1d(3).forward(np.ones((1, 3)), training=True)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_backward_matches_central_differences(training):
    x = RNG.normal(1.0, 2.0, (5, 3))
    g = RNG.normal(size=(5, 3))                       # L = Σ g ⊙ y
    bn = BatchNorm1d(3, np.float64)
    bn.weight[...] = [1.5, -0.7, 0.9]
    bn.bias[...] = [0.2, 0.0, -0.4]
    bn.running_mean[...] = [0.5, -0.5, 1.0]
    bn.running_var[...] = [2.0, 0.5, 1.5]
    frozen = (bn.running_mean.copy(), bn.running_var.copy())

    def loss() -> float:
        bn.running_mean[...], bn.running_var[...] = frozen
        return float((g * bn.forward(x, training)).sum())

    loss()
    dx = bn.backward(g).copy()
    dgamma, dbeta = bn.grad_weight.copy(), bn.grad_bias.copy()
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dgamma, numerical_gradient(loss, bn.weight), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dbeta, numerical_gradient(loss, bn.bias), rtol=1e-6, atol=1e-8)
    if training:  # the backward that forgets μ and σ depend on x is not it
        assert not np.allclose(dx, g * bn.weight / np.sqrt(x.var(axis=0) + 1e-5), rtol=1e-3)


def test_dropout_is_inverted_seeded_and_the_identity_in_eval():
    x = RNG.normal(size=(64, 50))
    a = Dropout(50, np.float64, p=0.3, rng=np.random.default_rng(5))
    b = Dropout(50, np.float64, p=0.3, rng=np.random.default_rng(5))
    ya, yb = a.forward(x, training=True).copy(), b.forward(x, training=True).copy()
    assert np.array_equal(ya, yb) and np.array_equal(a.mask, b.mask)      # same seed, same bits
    words = np.random.default_rng(5).bit_generator.random_raw(64 * 50 // 4).view(np.uint16).reshape(64, 50)
    assert a.threshold == round(0.3 * 65536) and np.array_equal(a.mask, words >= a.threshold)  # the documented draw
    np.testing.assert_array_equal(ya, x * np.where(a.mask, 1 / 0.7, 0.0))
    assert 0.6 < a.mask.mean() < 0.8
    g = RNG.normal(size=x.shape)
    np.testing.assert_array_equal(a.backward(g.copy()), g * np.where(a.mask, 1 / 0.7, 0.0))
    assert a.forward(x, training=False) is x and a.backward(g) is g
    assert not np.array_equal(a.forward(x, training=True), ya)            # a fresh mask each pass


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_dropout_probability_out_of_range_is_refused(p):
    with pytest.raises(ValueError, match="p must be"):
        Dropout(3, p=p)


def test_dropout_replays_a_given_mask_and_refuses_a_wrong_one():
    d = Dropout(4, p=0.5)
    mask = np.array([[True, False, True, True], [False, False, True, False]])
    d.replay(mask)
    y = d.forward(np.ones((2, 4)), training=True)
    np.testing.assert_array_equal(y, mask * 2.0)
    with pytest.raises(ValueError, match="bool array"):
        d.replay(mask.astype(float))
    with pytest.raises(ValueError, match="replayed dropout mask has shape"):
        d.forward(np.ones((3, 4)), training=True)


LAYERED = dict(hidden="tanh", output="softmax", loss="cross_entropy")


def test_spec_forms_normalise_to_one_tuple_per_hidden_layer():
    one = ModelSpec((3, 5, 4, 2), **LAYERED, after_hidden="batch_norm")
    assert one.after_hidden == (({"name": "batch_norm", "momentum": 0.1, "eps": 1e-5},),) * 2
    per = ModelSpec((3, 5, 4, 2), **LAYERED, after_hidden=[["batch_norm", {"name": "dropout", "p": 0.2}], None])
    assert per.after_hidden[1] == () and [e["name"] for e in per.after_hidden[0]] == ["batch_norm", "dropout"]
    assert per.layer_positions("dropout") == [0] and per.layer_positions("batch_norm") == [0]
    assert ModelSpec.from_json(per.to_json()) == per
    assert "relu" not in per.describe() and "tanh+batch_norm+dropout(p=0.2),tanh" in per.describe()
    assert ModelSpec((3, 5, 2), **LAYERED, after_hidden=[[]]).after_hidden == ()
    # a flat list is one stack after every hidden layer, never one layer per hidden layer
    both = ModelSpec((3, 5, 4, 2), **LAYERED, after_hidden=["batch_norm", "dropout"])
    assert [[e["name"] for e in extras] for extras in both.after_hidden] == [["batch_norm", "dropout"]] * 2


def test_a_dense_only_spec_serialises_exactly_as_before_the_field():
    spec = ModelSpec((3, 5, 2), **LAYERED)
    assert "after_hidden" not in json.loads(spec.to_json())
    old = json.dumps({k: v for k, v in json.loads(spec.to_json()).items()})   # JSON written by older versions
    assert ModelSpec.from_json(old) == spec


@pytest.mark.parametrize("after,error,message", [
    ("batchnorm", ValueError, "unknown layer .batchnorm.; valid: batch_norm, dropout"),
    ([["dropout", "dropout"]], ValueError, "each kind of layer once"),
    (["dropout", "dropout"], ValueError, "each kind of layer once"),
    ([["dropout"], None, None], ValueError, "one entry per hidden layer"),
    (["dropout", None], TypeError, "not a mix"),
    ([["dropout", 3]], TypeError, r"after_hidden\[0\]"),
    ({"name": "dropout", "p": 2.0}, ValueError, "p must be"),
    ({"name": "batch_norm", "momentun": 0.1}, ValueError, "bad parameters"),
    ({"name": "dropout", "rng": 3}, ValueError, "must not set 'rng'"),
    (5, TypeError, "after_hidden must be"),
])
def test_bad_after_hidden_is_refused_naming_it(after, error, message):
    with pytest.raises(error, match=message):
        ModelSpec((3, 5, 2), **LAYERED, after_hidden=after)


def test_layers_need_a_hidden_layer():
    with pytest.raises(ValueError, match="has none"):
        ModelSpec((3, 2), output="softmax", loss="cross_entropy", after_hidden="dropout")


def layered_net(dtype="float64", p=0.3):
    spec = ModelSpec((4, 6, 5, 3), **LAYERED, dtype=dtype, seed=2,
                     after_hidden=[["batch_norm", {"name": "dropout", "p": p}]] * 2)
    return Network(spec)


def test_state_names_shapes_and_modes():
    net = layered_net()
    state = net.state_dict()
    assert list(state)[-4:] == ["batch_norms.0.running_mean", "batch_norms.0.running_var",
                                "batch_norms.1.running_mean", "batch_norms.1.running_var"]
    assert {p.name for p in net.parameters()} == set(net.spec.parameter_shapes())
    assert {k: v.shape for k, v in state.items()} == net.spec.state_shapes()
    assert net.spec.n_parameters == sum(np.prod(s) for s in net.spec.parameter_shapes().values())
    x = RNG.normal(size=(8, 4))
    assert net.training and not np.array_equal(net.forward(x), net.forward(x))       # fresh masks
    assert net.eval() is net and not net.training
    np.testing.assert_array_equal(net.forward(x), net.forward(x))
    with pytest.raises(TypeError, match="mode must be True or False"):
        net.train("no")
    bad = dict(state, **{"batch_norms.0.running_var": -np.ones(6)})
    with pytest.raises(ValueError, match="running_var.*>= 0"):
        net.load_state_dict(bad)


def test_network_gradients_with_batch_norm_and_dropout_match_central_differences():
    net = layered_net()
    x, y = RNG.normal(size=(7, 4)), np.arange(7) % 3
    _, grads = net.loss_and_grads(x, y)
    net.replay_dropout_masks(net.dropout_masks())       # the same function at every evaluation
    for param in net.parameters():
        fd = numerical_gradient(lambda: net.loss(x, y), param.value)
        np.testing.assert_allclose(grads[param.name], fd, rtol=1e-5, atol=1e-8, err_msg=param.name)
    net.replay_dropout_masks(None)


def test_same_seed_same_masks_and_dtype_in_is_dtype_out():
    x = RNG.normal(size=(9, 4))
    a, b = layered_net("float32"), layered_net("float32")
    assert a.forward(x).dtype == np.float32
    b.forward(x)
    for name, mask in a.dropout_masks().items():
        assert np.array_equal(mask, b.dropout_masks()[name])
    _, grads = a.loss_and_grads(x, np.arange(9) % 3)
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}
    assert {v.dtype for v in a.state_dict().values()} == {np.dtype(np.float32)}


def test_fit_trains_and_the_model_file_keeps_the_running_statistics(tmp_path):
    net = layered_net()
    x, y = RNG.normal(size=(20, 4)), np.arange(20) % 3
    history = net.fit(x, y, epochs=3, batch_size=7, optimizer={"name": "adam", "lr": 0.01}, seed=1)
    assert len(history.step_loss) == 9
    assert not np.allclose(net.state_dict()["batch_norms.1.running_var"], 1.0)
    again = scratchnet.load(scratchnet.save(net, tmp_path / "m"))
    assert again.spec == net.spec
    for name, value in net.state_dict().items():
        assert np.array_equal(value, again.state_dict()[name]), name
    np.testing.assert_array_equal(net.eval().forward(x), again.eval().forward(x))


def test_gradcheck_differentiates_the_function_of_the_last_masks():
    from scratchnet.gradcheck import check_network_gradients, network_numerical_gradients

    x, y = RNG.normal(size=(6, 4)), np.arange(6) % 3
    with pytest.raises(ValueError, match=r"^finite differences through dropout in training mode differentiate the "
                                         r"function of fixed masks: run network\.loss_and_grads\(x, y\) first \(its "
                                         r"masks are replayed\), or call network\.eval\(\)$"):
        network_numerical_gradients(layered_net(), x, y)
    checks = check_network_gradients(layered_net(), x, y, rtol=1e-5)
    assert len(checks) == 10 and all(c.passed for c in checks), [str(c) for c in checks]
    assert all(c.passed for c in check_network_gradients(layered_net().eval(), x, y, rtol=1e-5))
