"""The training hot path computes exactly what the reference definitions compute.

``Dense`` calls the activations' in-place twins (``forward_into`` / ``backward_into``) and keeps
per-batch-size work arrays; the optimizers update through scratch buffers. These tests pin that
down bit for bit (signed zeros, infinities and NaN included), check that a subclass redefining
``forward``/``backward`` is honoured by the hot path, that returned arrays do not alias each
other, and that a training step allocates nothing that survives it. No timings here.
"""

import tracemalloc

import numpy as np
import pytest

from scratchnet import ModelSpec, Network, activations, registry

HOT = ("identity", "sigmoid", "tanh", "relu", "softmax")
DTYPES = (np.float32, np.float64)


def _special_matrix(dtype, rows=6, cols=9, seed=0):
    """Random values in (−30, 30) plus every special value the activations branch on."""
    rng = np.random.default_rng(seed)
    z = (rng.uniform(-30, 30, size=(rows, cols))).astype(dtype)
    info = np.finfo(dtype)
    specials = [0.0, -0.0, 1e4, -1e4, np.inf, -np.inf, info.tiny / 4, -info.tiny / 4, 88.0, -104.0, 710.0, -746.0]
    z.flat[:len(specials)] = np.array(specials, dtype=dtype)
    return z


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", HOT)
def test_forward_into_is_forward_bit_for_bit(name, dtype):
    act = registry.make_activation(name)
    z = _special_matrix(dtype)
    if name != "softmax":  # a NaN input, elementwise only (a NaN row of softmax is all NaN anyway)
        z[-1, -1] = np.nan
    with np.errstate(all="ignore"):
        expected = act.forward(z)
        out = np.full_like(z, 7.0)
        got = act.forward_into(z, out)
    assert _same_bits(got, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", HOT)
@pytest.mark.parametrize("in_place", [False, True], ids=["fresh-out", "out-is-grad"])
def test_backward_into_is_backward_bit_for_bit(name, dtype, in_place):
    act = registry.make_activation(name)
    z = _special_matrix(dtype, seed=1)
    z[0, 0] = 0.0                      # the exact kink
    with np.errstate(all="ignore"):
        a = act.forward(z)
        grad = np.random.default_rng(2).normal(size=z.shape).astype(dtype)
        grad.flat[1:6] = np.array([-0.0, np.inf, -np.inf, np.nan, 0.0], dtype=dtype)
        expected = act.backward(z, a, grad.copy())
        work = grad.copy()
        got = act.backward_into(z, a, work, out=work if in_place else np.empty_like(grad))
    assert _same_bits(got, expected)


def test_free_sigmoid_matches_the_textbook_form_and_keeps_dtype():
    for dtype in DTYPES:
        z = _special_matrix(dtype, seed=3)
        e = np.exp(-np.abs(z))
        expected = np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(dtype)
        assert _same_bits(activations.sigmoid(z), expected)
    assert activations.sigmoid(np.array(0)) == 0.5


def test_a_subclass_that_redefines_backward_is_used_by_the_network():
    class TanhWithoutSquare(activations.Tanh):
        def backward(self, z, a, grad):
            return grad * (1 - a)

    spec = ModelSpec((3, 4, 2), hidden="tanh", output="identity", loss="mse", seed=1)
    x, y = np.random.default_rng(0).normal(size=(5, 3)), np.random.default_rng(1).normal(size=(5, 2))
    right = Network(spec).loss_and_grads(x, y)[1]["layers.0.weight"]
    net = Network(spec)
    net.layers[0].activation = TanhWithoutSquare()
    wrong = net.loss_and_grads(x, y)[1]["layers.0.weight"]
    assert not np.allclose(right, wrong)
    assert TanhWithoutSquare.backward_into is activations.Activation.backward_into
    assert TanhWithoutSquare.forward_into is activations.Tanh.forward_into


@pytest.mark.parametrize("parent", [activations.Sigmoid, activations.Tanh, activations.ReLU, activations.Softmax])
def test_a_subclass_may_extend_backward_through_super(parent):
    class Doubled(parent):
        def backward(self, z, a, grad):
            return 2 * super().backward(z, a, grad)

    z = np.random.default_rng(0).normal(size=(3, 4))
    g = np.random.default_rng(1).normal(size=z.shape)  # drawn: softmax's VJP of a uniform upstream is 0
    act, ref = Doubled(), parent()
    a = ref.forward(z)
    assert np.array_equal(act.backward(z, a, g), 2 * ref.backward(z, a, g))
    assert np.array_equal(act.backward_into(z, a, g.copy(), np.empty_like(g)), 2 * ref.backward(z, a, g))


def test_network_outputs_do_not_alias_each_other_across_batch_sizes():
    net = Network(ModelSpec((4, 5, 3), hidden="relu", output="softmax", loss="cross_entropy"))
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(6, 4)), rng.normal(size=(2, 4))
    first = net.forward(x1)
    kept = first.copy()
    net.forward(x2)
    net.forward(x1[::-1])
    assert np.array_equal(first, kept)
    loss, grads = net.loss_and_grads(x1, np.arange(6) % 3)
    kept_grads = {k: v.copy() for k, v in grads.items()}
    net.loss_and_grads(x2, np.arange(2) % 3)
    assert all(np.array_equal(grads[k], kept_grads[k]) for k in grads)


@pytest.mark.parametrize("optimizer", [{"name": "sgd", "lr": 0.01}, {"name": "adam", "lr": 1e-3},
                                       {"name": "sgd", "lr": 0.01, "weight_decay": 1e-3}])
@pytest.mark.parametrize(("hidden", "output", "loss"), [("relu", "softmax", "cross_entropy"),
                                                         ("tanh", "sigmoid", "mse"),
                                                         ("sigmoid", "softmax", "cross_entropy")])
def test_a_training_step_allocates_nothing_that_survives_it(hidden, output, loss, optimizer):
    net = Network(ModelSpec((20, 16, 8, 4), hidden=hidden, output=output, loss=loss, dtype="float32"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 20)).astype(np.float32)
    target = net.loss_fn.prepare_target(rng.integers(0, 4, 32), 4, net.dtype)
    opt = registry.make_optimizer(optimizer, net.parameters())
    tracemalloc.start()
    try:
        for _ in range(20):
            net.train_step(x, target, opt)
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(300):
            net.train_step(x, target, opt)
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert growth < 2048, f"{growth} bytes held after 300 more steps"


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("y_kind", ["labels", "one-hot"])
def test_fit_on_slices_is_train_step_on_indexed_batches_bit_for_bit(shuffle, y_kind):
    """``fit`` slices views of the data (or of one per-epoch gathered copy) instead of indexing
    ``x[idx]`` per step: the same rows in the same order, so the same weights, losses and accuracy."""
    from scratchnet.training import batch_schedule, predicted_classes

    spec = ModelSpec((6, 5, 3), hidden="relu", output="softmax", loss="cross_entropy", dtype="float32", seed=3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(23, 6)).astype(np.float32)
    labels = rng.integers(0, 3, 23)
    y = labels if y_kind == "labels" else np.eye(3, dtype=np.float32)[labels]
    fitted, manual = Network(spec), Network(spec)
    history = fitted.fit(x, y, epochs=3, batch_size=5, optimizer={"name": "sgd", "lr": 0.1}, shuffle=shuffle, seed=4)

    opt = registry.make_optimizer({"name": "sgd", "lr": 0.1}, manual.parameters())
    target = manual.loss_fn.prepare_target(y, 3, manual.dtype)
    losses, accuracy = [], []
    for batches in batch_schedule(23, 5, epochs=3, shuffle=shuffle, seed=4):
        correct = 0
        for idx in batches:
            value, output = manual.train_step(x[idx], target[idx], opt)
            losses.append(value)
            correct += int(np.count_nonzero(predicted_classes(output) == labels[idx]))
        accuracy.append(correct / 23)
    assert history.step_loss == losses
    assert history.epoch_accuracy == accuracy
    for name, value in manual.state_dict().items():
        assert _same_bits(fitted.state_dict()[name], value), name


def test_the_first_layer_is_stored_column_major_with_the_same_gradients_as_row_major():
    from scratchnet.layers import Dense
    from scratchnet.optimizers import Parameter

    spec = ModelSpec((4, 3, 2), hidden="tanh", output="softmax", loss="cross_entropy", seed=0)
    net, row_major = Network(spec), Network(spec)
    first, second = net.layers
    assert first.weight.flags.f_contiguous and not first.weight.flags.c_contiguous
    assert first.grad_weight.flags.f_contiguous and second.weight.flags.c_contiguous
    layer = row_major.layers[0]
    row_major.layers[0] = Dense(layer.weight.copy(order="C"), layer.bias.copy(), layer.activation)
    row_major._params[:2] = [Parameter("layers.0.weight", row_major.layers[0].weight, row_major.layers[0].grad_weight),
                             Parameter("layers.0.bias", row_major.layers[0].bias, row_major.layers[0].grad_bias)]
    x = np.random.default_rng(0).normal(size=(5, 4))
    _, got = net.loss_and_grads(x, np.arange(5) % 2)
    _, want = row_major.loss_and_grads(x, np.arange(5) % 2)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-13, atol=1e-15, err_msg=name)
