"""Every refusal: the exception names the argument, what was expected and what came."""

import re

import numpy as np
import pytest

from scratchnet import SGD, Adam, AdamW, ModelSpec, Network, NonFiniteWarning, Parameter, batch_schedule, registry

from .helpers import invalid_pairs, pair_id, valid_pairs


def classifier(**overrides):
    spec = dict(sizes=(4, 5, 3), hidden="relu", output="softmax", loss="cross_entropy")
    return Network(ModelSpec(**{**spec, **overrides}))


X = np.zeros((6, 4))
LABELS = np.array([0, 1, 2, 0, 1, 2])


# -- inputs -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("x", "error", "message"), [
    (np.zeros((6, 3)), ValueError, r"x has 3 columns, but 4 were expected \(shape \(6, 3\)\)"),
    (np.zeros(4), ValueError, r"x must be 2-D \(batch, features\), got shape \(4,\)"),
    (np.zeros((2, 3, 4)), ValueError, r"x must be 2-D \(batch, features\), got shape \(2, 3, 4\)"),
    (np.zeros((0, 4)), ValueError, r"x must have at least one row, got shape \(0, 4\)"),
    (np.array([[0.0, np.nan, 0.0, 0.0]]), ValueError, r"x must be finite, got .*nan.* at index \(0, 1\)"),
    (np.array([[0.0, 0.0, 0.0, -np.inf]]), ValueError, r"x must be finite, got .*inf.* at index \(0, 3\)"),
    (np.array([["a", "b", "c", "d"]]), TypeError, r"x must hold real numbers, got dtype <U1"),
], ids=["columns", "1-D", "3-D", "empty", "nan", "inf", "strings"])
def test_bad_inputs(x, error, message):
    net = classifier()
    for call in (net.forward, net.predict, lambda x: net.loss(x, LABELS[: len(x)]),
                 lambda x: net.loss_and_grads(x, LABELS[: len(x)]), lambda x: net.fit(x, LABELS[: len(x)])):
        with pytest.raises(error, match=message):
            call(x)


# -- targets -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("loss", "y", "error", "message"), [
    ("cross_entropy", np.zeros((6, 2)), ValueError, r"y has 2 columns, but the network outputs 3 classes"),
    ("mse", np.zeros((6, 4)), ValueError, r"y has 4 columns, but the network outputs 3 classes"),
    ("cross_entropy", LABELS[:5], ValueError, r"y has 5 rows, but x has 6"),
    ("mse", np.zeros((7, 3)), ValueError, r"y has 7 rows, but x has 6"),
    ("cross_entropy", np.array([0, 1, 3, 0, 1, 2]), ValueError,
     r"y holds class label 3, but the network outputs 3 classes \(labels must lie in \[0, 2\]\)"),
    ("nll", np.array([0, -1, 2, 0, 1, 2]), ValueError, r"y holds class label -1, but the network outputs 3"),
    ("mse", np.array([0, 1, 7, 0, 1, 2]), ValueError, r"y holds class label 7"),
    ("cross_entropy", np.full((6, 3), 0.5), ValueError,
     r"y rows must sum to 1 for cross_entropy \(one-hot or probability rows\), but row 0 sums to .*1\.5"),
    ("nll", np.array([[1.5, -0.5, 0.0]] * 6), ValueError,
     r"y rows must be probability distributions for nll, but y has a negative entry .*-0\.5"),
    ("binary_cross_entropy", np.full((6, 3), 1.25), ValueError,
     r"y must lie in \[0, 1\] for binary_cross_entropy, got .*1\.25"),
    ("binary_cross_entropy", np.full((6, 3), -0.5), ValueError, r"y must lie in \[0, 1\] .*-0\.5"),
    ("mse", np.full((6, 3), np.nan), ValueError, r"y must be finite, got nan at index \(0, 0\)"),
    ("mse", np.zeros((6, 3, 1)), ValueError,
     r"y must be a 1-D integer label vector or a 2-D \(batch, 3\) array, got shape \(6, 3, 1\)"),
    ("cross_entropy", np.zeros(6), ValueError,
     r"y must be a 1-D integer label vector .* got shape \(6,\) and dtype float64"),
    ("mse", np.array([["a"] * 3] * 6), TypeError, r"y must hold numbers, got dtype <U1"),
], ids=["ce-columns", "mse-columns", "ce-rows", "mse-rows", "label-too-big", "label-negative", "mse-label",
        "not-summing-to-1", "negative-probability", "bce-above-1", "bce-below-0", "nan", "3-D", "1-D-floats",
        "strings"])
def test_bad_targets(loss, y, error, message):
    output = {"cross_entropy": "softmax", "nll": "log_softmax", "binary_cross_entropy": "sigmoid"}.get(loss, "identity")
    net = classifier(output=output, loss=loss)
    for call in (net.loss, net.loss_and_grads, net.fit):
        with pytest.raises(error, match=message):
            call(X, y)


def test_soft_targets_that_are_distributions_are_accepted():
    net = classifier()
    soft = np.array([[0.2, 0.3, 0.5]] * 6)
    assert np.isfinite(net.loss(X, soft))
    assert np.isfinite(classifier(output="sigmoid", loss="binary_cross_entropy").loss(X, np.full((6, 3), 0.3)))


# -- names -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "table", "build"), [
    ("activation", registry.ACTIVATIONS, lambda name: ModelSpec((2, 3, 2), hidden=name)),
    ("activation", registry.ACTIVATIONS, lambda name: ModelSpec((2, 2), output=name)),
    ("loss", registry.LOSSES, lambda name: ModelSpec((2, 2), loss=name)),
    ("optimizer", registry.OPTIMIZERS, lambda name: classifier().fit(X, LABELS, optimizer=name)),
    ("optimizer", registry.OPTIMIZERS, lambda name: classifier().fit(X, LABELS, optimizer={"name": name, "lr": 1})),
    ("init", registry.INITIALIZERS, lambda name: ModelSpec((2, 2), init=name)),
    ("loss", registry.LOSSES, lambda name: registry.check_pair("softmax", name)),
], ids=["hidden", "output", "loss", "optimizer", "optimizer-spec", "init", "check-pair-loss"])
def test_unknown_names_list_the_valid_ones(kind, table, build):
    with pytest.raises(ValueError, match=rf"unknown {kind} 'swish'; valid: ") as info:
        build("swish")
    listed = str(info.value).split("valid: ")[1].split(", ")
    assert listed == list(table)


def test_unknown_reduction_and_dtype():
    with pytest.raises(ValueError, match=r"unknown reduction 'avg'; valid: mean, sum"):
        ModelSpec((2, 2), reduction="avg")
    with pytest.raises(ValueError, match=r"reduction must be one of \('mean', 'sum'\), got 'avg'"):
        registry.make_loss("mse", "avg")
    with pytest.raises(ValueError, match=r"dtype must be one of \['float32', 'float64'\], got 'float16'"):
        ModelSpec((2, 2), dtype="float16")
    with pytest.raises(ValueError, match=r"dtype must be one of \['float32', 'float64'\], got .*int64"):
        ModelSpec((2, 2), dtype=np.int64)


def test_spec_that_is_neither_name_nor_mapping():
    with pytest.raises(ValueError, match=r"activation must be a name or a mapping with a 'name' key, got 3"):
        registry.make_activation(3)
    with pytest.raises(ValueError, match=r"loss must be a name or a mapping with a 'name' key, got \{'delta': 1\}"):
        registry.make_loss({"delta": 1})
    with pytest.raises(ValueError, match=r"^spec must be a name or a mapping with a 'name' key, got 3$"):
        registry.label(3)


# -- pairs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("pair", invalid_pairs(), ids=pair_id)
def test_invalid_pairs_are_refused_with_the_reason(pair):
    output, loss = pair
    valid = ", ".join(registry.outputs_for(loss))
    with pytest.raises(ValueError, match=re.escape(f"loss {loss!r} is undefined on the outputs of {output!r}")) as info:
        ModelSpec((3, 2), output=output, loss=loss)
    assert str(info.value).endswith(f"output activations that work with {loss!r}: {valid}")


@pytest.mark.parametrize(("output", "loss"), [
    ("identity", "cross_entropy"), ("tanh", "cross_entropy"), ("relu", "cross_entropy"),
    ("softmax", "nll"), ("sigmoid", "nll"), ("identity", "nll"), ("identity", "binary_cross_entropy"),
])
def test_the_classic_mistakes_are_invalid(output, loss):
    assert (output, loss) in invalid_pairs()
    needs = r"needs (probabilities in \[0, 1\]|log-probabilities \(log_softmax outputs\))"
    with pytest.raises(ValueError, match=needs):
        ModelSpec((3, 2), output=output, loss=loss)


@pytest.mark.parametrize("pair", [("sigmoid", "mse"), ("softmax", "mse"), ("sigmoid", "cross_entropy"),
                                  ("softmax", "binary_cross_entropy")], ids=pair_id)
def test_defined_but_unusual_pairs_construct(pair):
    assert pair in valid_pairs()
    net = Network(ModelSpec((3, 2), output=pair[0], loss=pair[1]))
    assert np.isfinite(net.loss(np.ones((2, 3)), np.array([[1.0, 0.0], [0.0, 1.0]])))


def test_only_log_softmax_feeds_nll():
    assert registry.outputs_for("nll") == ["log_softmax"]


# -- hyper-parameters ------------------------------------------------------------------------------

def params():
    return [Parameter("w", np.ones(3), np.zeros(3))]


@pytest.mark.parametrize(("build", "message"), [
    (lambda: SGD(params(), lr=0), r"lr must be > 0\.0, got 0\.0"),
    (lambda: SGD(params(), lr=-0.1), r"lr must be > 0\.0, got -0\.1"),
    (lambda: Adam(params(), lr=0.0), r"lr must be > 0\.0, got 0\.0"),
    (lambda: SGD(params(), lr=float("nan")), r"lr must be a finite real number, got nan"),
    (lambda: SGD(params(), lr=0.1, nesterov=True), r"nesterov=True requires momentum > 0 and dampening = 0, "
                                                   r"got momentum=0\.0, dampening=0\.0"),
    (lambda: SGD(params(), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     r"nesterov=True requires momentum > 0 and dampening = 0, got momentum=0\.9, dampening=0\.1"),
    (lambda: SGD(params(), lr=0.1, momentum=-0.5), r"momentum must be >= 0\.0, got -0\.5"),
    (lambda: SGD(params(), lr=0.1, weight_decay=-1e-4), r"weight_decay must be >= 0\.0, got -0\.0001"),
    (lambda: Adam(params(), weight_decay=-1.0), r"weight_decay must be >= 0\.0, got -1\.0"),
    (lambda: AdamW(params(), weight_decay=-1.0), r"weight_decay must be >= 0\.0, got -1\.0"),
    (lambda: Adam(params(), betas=(1.0, 0.999)), r"betas\[0\] must be < 1\.0, got 1\.0"),
    (lambda: Adam(params(), betas=(0.9, 1.5)), r"betas\[1\] must be < 1\.0, got 1\.5"),
    (lambda: AdamW(params(), betas=(-0.1, 0.999)), r"betas\[0\] must be >= 0\.0, got -0\.1"),
    (lambda: Adam(params(), betas=(0.9,)), r"betas must be a pair \(beta1, beta2\), got \(0\.9,\)"),
    (lambda: Adam(params(), eps=-1e-8), r"eps must be >= 0\.0, got -1e-08"),
    (lambda: SGD([], lr=0.1), r"params must hold at least one Parameter, got an empty list"),
], ids=["lr-0", "lr-negative", "adam-lr-0", "lr-nan", "nesterov-no-momentum",
        "nesterov-dampening", "momentum-negative", "sgd-weight-decay", "adam-weight-decay", "adamw-weight-decay",
        "beta1-1", "beta2-above-1", "beta1-negative", "betas-length", "eps-negative", "no-params"])
def test_bad_optimizer_hyper_parameters(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_optimizer_spec_errors():
    with pytest.raises(ValueError, match=r"bad parameters \{'lr': 0\.1, 'momentun': 0\.9\} for optimizer 'sgd'"):
        registry.make_optimizer({"name": "sgd", "lr": 0.1, "momentun": 0.9}, params())
    with pytest.raises(ValueError, match=r"lr must be > 0\.0, got -1\.0"):
        classifier().fit(X, LABELS, optimizer={"name": "adam", "lr": -1.0})
    other = classifier(seed=1)
    with pytest.raises(ValueError, match=r"optimizer must be built over network\.parameters\(\) of this network"):
        classifier().fit(X, LABELS, optimizer=SGD(other.parameters(), lr=0.1))


@pytest.mark.parametrize(("spec", "message"), [
    ({"name": "elu", "alpha": -1.0}, r"alpha must be >= 0\.0, got -1\.0"),
    ({"name": "softplus", "beta": 0.0}, r"beta must be > 0\.0, got 0\.0"),
    ({"name": "softplus", "threshold": float("inf")}, r"threshold must be a finite real number, got inf"),
    ({"name": "gelu", "approximate": "fast"}, r"approximate must be 'none' or 'tanh', got 'fast'"),
    ({"name": "relu", "inplace": True}, r"bad parameters \{'inplace': True\} for activation 'relu'"),
])
def test_bad_activation_parameters(spec, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec((2, 3, 2), hidden=spec)


@pytest.mark.parametrize(("spec", "message"), [
    ({"name": "huber", "delta": 0.0}, r"delta must be > 0\.0, got 0\.0"),
    ({"name": "smooth_l1", "beta": -1.0}, r"beta must be >= 0\.0, got -1\.0"),
    ({"name": "cross_entropy", "label_smoothing": 1.5}, r"label_smoothing must be <= 1\.0, got 1\.5"),
    ({"name": "nll", "label_smoothing": -0.1}, r"label_smoothing must be >= 0\.0, got -0\.1"),
    ({"name": "mse", "weight": 2},
     r"bad parameters \{.*'weight': 2\} for loss 'mse': .*unexpected keyword argument 'weight'"),
])
def test_bad_loss_parameters(spec, message):
    output = {"cross_entropy": "softmax", "nll": "log_softmax"}.get(spec["name"], "identity")
    with pytest.raises(ValueError, match=message):
        ModelSpec((2, 2), output=output, loss=spec)


# -- ModelSpec fields ------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "message"), [
    ({"sizes": (3,)}, r"sizes needs at least \(inputs, outputs\), got \(3,\)"),
    ({"sizes": (3, 0, 2)}, r"sizes\[1\] must be >= 1, got 0"),
    ({"sizes": (3, 4, 4, 2), "hidden": ["relu"]},
     r"hidden must name one activation per hidden layer: sizes \(3, 4, 4, 2\) has 2 hidden layers, got 1"),
    ({"sizes": (3, 2), "seed": -1}, r"seed must be >= 0, got -1"),
])
def test_bad_model_spec_fields(fields, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec(**fields)


def test_unknown_model_spec_fields_are_listed():
    with pytest.raises(ValueError, match=r"unknown ModelSpec fields \['layers'\]; valid: sizes, hidden, output"):
        ModelSpec.from_dict({"sizes": [2, 2], "layers": 3})


def test_network_needs_a_model_spec():
    with pytest.raises(TypeError, match=r"spec must be a ModelSpec, got dict"):
        Network({"sizes": (2, 2)})


def test_bad_initializer_parameter():
    with pytest.raises(ValueError, match=r"std must be > 0\.0, got -1\.0"):
        Network(ModelSpec((2, 2), init={"name": "normal", "std": -1}))


# -- state dicts and schedules ------------------------------------------------------------------------

def test_load_state_dict_errors():
    net = classifier()
    state = net.state_dict()
    with pytest.raises(KeyError, match=r"missing \['layers.1.bias'\], unexpected \['layers.2.bias'\]"):
        net.load_state_dict({**{k: v for k, v in state.items() if k != "layers.1.bias"}, "layers.2.bias": np.zeros(3)})
    with pytest.raises(KeyError, match=r"state dict mismatch: missing \['layers.1.bias'\], unexpected \[\]"):
        net.load_state_dict({k: v for k, v in state.items() if k != "layers.1.bias"})
    with pytest.raises(KeyError, match=r"state dict mismatch: missing \[\], unexpected \['layers.2.bias'\]"):
        net.load_state_dict({**state, "layers.2.bias": np.zeros(3)})   # an extra array is refused, not ignored
    with pytest.raises(ValueError, match=r"state\['layers.0.weight'\] has shape \(4, 5\), expected \(5, 4\)"):
        net.load_state_dict({**state, "layers.0.weight": np.zeros((4, 5))})
    with pytest.raises(ValueError, match=r"state\['layers.1.bias'\] must be finite, got inf at index \(1,\)"):
        net.load_state_dict({**state, "layers.1.bias": np.array([0.0, np.inf, 0.0])})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_samples": 0, "batch_size": 1}, r"n_samples must be >= 1, got 0"),
    ({"n_samples": 10, "batch_size": 0}, r"batch_size must be >= 1, got 0"),
    ({"n_samples": 10, "batch_size": 2, "epochs": -1}, r"epochs must be >= 0, got -1"),
    ({"n_samples": 10, "batch_size": 2, "seed": -3}, r"seed must be >= 0, got -3"),
])
def test_bad_batch_schedule_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        batch_schedule(**kwargs)


# -- nothing fails silently into NaN ----------------------------------------------------------------

def test_non_finite_loss_of_an_unfused_pair_warns():
    """softmax + mse is unfused; logits of 1e308 overflow its forward pass into NaN, and the
    network says so instead of handing back NaN gradients quietly."""
    net = Network(ModelSpec((1, 2), output="softmax", loss="mse", init="zeros"))
    net.load_state_dict({"layers.0.weight": [[1e308], [-1e308]], "layers.0.bias": [1e308, -1e308]})
    with np.errstate(over="ignore", invalid="ignore"), \
            pytest.warns(NonFiniteWarning, match="non-finite loss or gradient") as caught:
        net.loss_and_grads(np.array([[1.0]]), np.array([[1.0, 0.0]]))
    # stacklevel=2: the warning points at the caller's line, not at the warnings.warn inside
    # scratchnet/network.py (a plain run names this file; mutmut's trampoline adds a frame of its own)
    import scratchnet.network

    assert [w.filename for w in caught if w.category is NonFiniteWarning] != [scratchnet.network.__file__]
    assert len([w for w in caught if w.category is NonFiniteWarning]) == 1


def test_every_valid_pair_constructs():
    for output, loss in valid_pairs():
        Network(ModelSpec((3, 2), output=output, loss=loss))
