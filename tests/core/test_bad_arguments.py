"""One row per bad argument to a public entry point: the exception type and a message that
names the argument, says what was expected and what came.

test_errors.py holds the older tables (inputs, targets, names, pairs, hyper-parameter ranges);
this table adds wrong types (``TypeError``), flags, callbacks, tolerances, ragged arrays, dtype
range, sizes and the gradient-check arguments. Model-file corruptions are in
test_serialization.py, the atomic writer's arguments in test_atomic.py.
"""

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import SGD, Adam, AdamW, ModelSpec, Network, Parameter, batch_schedule, gradcheck, registry
from scratchnet.activations import GELU, LeakyReLU, Softplus
from scratchnet.losses import MSELoss

X = np.zeros((6, 4))
LABELS = np.array([0, 1, 2, 0, 1, 2])


def classifier(**overrides):
    spec = dict(sizes=(4, 5, 3), hidden="relu", output="softmax", loss="cross_entropy")
    return Network(ModelSpec(**{**spec, **overrides}))


def regressor(**overrides):
    return classifier(output="identity", loss="mse", **overrides)


def params():
    return [Parameter("w", np.ones(3), np.zeros(3))]


def fit(**kwargs):
    return classifier().fit(X, LABELS, **kwargs)


def with_bias(value, dtype="float64"):
    net = classifier(dtype=dtype)
    return net.load_state_dict({**net.state_dict(), "layers.0.bias": value})


BOOL = r"must be a bool \(True or False\), got "
REAL = r"must be a finite real number, got "

ROWS = [
    # -- flags: bool("no") is True, so only real booleans are accepted ---------------------------
    ("adam-amsgrad-str", lambda: fit(optimizer={"name": "adam", "amsgrad": "no"}), TypeError,
     r"amsgrad " + BOOL + "'no'"),
    ("adamw-amsgrad-int", lambda: AdamW(params(), amsgrad=1), TypeError, r"amsgrad " + BOOL + "1"),
    ("adam-amsgrad-none", lambda: Adam(params(), amsgrad=None), TypeError, r"amsgrad " + BOOL + "None"),
    ("sgd-nesterov-str", lambda: fit(optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": "yes"}),
     TypeError, r"nesterov " + BOOL + "'yes'"),
    ("sgd-nesterov-int", lambda: SGD(params(), lr=0.1, momentum=0.9, nesterov=1), TypeError, r"nesterov " + BOOL + "1"),
    ("fit-shuffle-str", lambda: fit(shuffle="no"), TypeError, r"shuffle " + BOOL + "'no'"),
    ("schedule-shuffle-none", lambda: batch_schedule(10, 2, shuffle=None), TypeError, r"shuffle " + BOOL + "None"),
    # -- callbacks and optimizers -------------------------------------------------------------------
    ("on-epoch-end-int", lambda: fit(on_epoch_end=5), TypeError, r"on_epoch_end must be a callable or None, got 5"),
    ("on-epoch-end-str", lambda: fit(on_epoch_end="print"), TypeError, r"on_epoch_end must be a callable or None"),
    ("fit-optimizer-int", lambda: fit(optimizer=5), TypeError,
     r"optimizer must be an Optimizer over network\.parameters\(\), a name or a .* mapping, got 5"),
    ("fit-optimizer-none", lambda: fit(optimizer=None), TypeError, r"optimizer must be an Optimizer .* got None"),
    ("fit-lr-none", lambda: fit(optimizer={"name": "sgd", "lr": None}), TypeError, r"lr " + REAL + "None"),
    ("sgd-ndarrays", lambda: SGD([np.zeros(3)]), TypeError,
     r"params\[0\] must be a Parameter \(name, value, grad\) — pass network\.parameters\(\) — got ndarray"),
    ("sgd-network", lambda: SGD(classifier()), TypeError,
     r"params must be a list of Parameter, got a Network: pass its \.parameters\(\)"),
    ("sgd-none", lambda: SGD(None), TypeError, r"params must be a list of Parameter .* got NoneType"),
    ("sgd-grad-shape", lambda: SGD([Parameter("w", np.ones(3), np.zeros(2))]), ValueError,
     r"params\[0\] \('w'\) needs float arrays value and grad of one shape and dtype, got value float64 \(3,\) "
     r"and grad float64 \(2,\)"),
    ("sgd-int-value", lambda: SGD([Parameter("w", np.ones(3, int), np.zeros(3, int))]), ValueError,
     r"params\[0\] \('w'\) needs float arrays .* got value int64 \(3,\)"),
    ("lr-bool", lambda: SGD(params(), lr=True), TypeError, r"lr " + REAL + "True"),
    ("lr-str", lambda: SGD(params(), lr="0.1"), TypeError, r"lr " + REAL + r"'0\.1'"),
    ("dampening-nan", lambda: SGD(params(), dampening=float("nan")), ValueError, r"dampening " + REAL + "nan"),
    ("eps-str", lambda: Adam(params(), eps="tiny"), TypeError, r"eps " + REAL + "'tiny'"),
    ("betas-str", lambda: Adam(params(), betas="ab"), ValueError, r"betas must be a pair \(beta1, beta2\), got 'ab'"),
    # -- gradient checks: tolerances finite and >= 0, eps finite and > 0 ---------------------------
    ("gradcheck-rtol-negative", lambda: gradcheck.check_network_gradients(classifier(), X, LABELS, rtol=-1, atol=-1),
     ValueError, r"rtol must be >= 0\.0, got -1\.0"),
    ("gradcheck-atol-negative", lambda: gradcheck.check_network_gradients(classifier(), X, LABELS, atol=-1),
     ValueError, r"atol must be >= 0\.0, got -1\.0"),
    ("gradcheck-rtol-nan", lambda: gradcheck.check_network_gradients(classifier(), X, LABELS, rtol=float("nan")),
     ValueError, r"rtol " + REAL + "nan"),
    ("gradcheck-eps-nan", lambda: gradcheck.check_network_gradients(classifier(), X, LABELS, eps=float("nan")),
     ValueError, r"eps " + REAL + "nan"),
    ("gradcheck-eps-zero", lambda: gradcheck.check_network_gradients(classifier(), X, LABELS, eps=0),
     ValueError, r"eps must be > 0\.0, got 0\.0"),
    ("gradcheck-eps-inf", lambda: gradcheck.network_numerical_gradients(classifier(), X, LABELS, eps=float("inf")),
     ValueError, r"eps " + REAL + "inf"),
    ("gradcheck-not-a-network", lambda: gradcheck.check_network_gradients("net", X, LABELS), TypeError,
     r"network must be a scratchnet Network, got str"),
    ("compare-rtol-str", lambda: gradcheck.compare_arrays("w", np.ones(2), np.ones(2), "1", 0), TypeError,
     r"rtol " + REAL + "'1'"),
    ("numerical-gradient-int", lambda: gradcheck.numerical_gradient(lambda: 0.0, np.array([1, 2, 3])), TypeError,
     r"array must be float64 \(it is perturbed in place .*\), got dtype int64; pass array\.astype\(np\.float64\)"),
    ("numerical-gradient-float32", lambda: gradcheck.numerical_gradient(lambda: 0.0, np.ones(2, np.float32)),
     TypeError, r"array must be float64 .* got dtype float32"),
    ("numerical-gradient-list", lambda: gradcheck.numerical_gradient(lambda: 0.0, [1.0]), TypeError,
     r"array must be a numpy\.ndarray that f\(\) reads, got list"),
    ("numerical-gradient-f", lambda: gradcheck.numerical_gradient(3.0, np.ones(2)), TypeError,
     r"f must be a callable returning the scalar loss, got 3\.0"),
    ("numerical-gradient-eps", lambda: gradcheck.numerical_gradient(lambda: 0.0, np.ones(2), eps=-1e-6),
     ValueError, r"eps must be > 0\.0, got -1e-06"),
    ("numerical-vjp-eps", lambda: gradcheck.numerical_vjp(np.tanh, np.ones((2, 2)), np.eye(2), eps=0.0),
     ValueError, r"eps must be > 0\.0, got 0\.0"),
    # -- ModelSpec ------------------------------------------------------------------------------------
    ("dtype-none", lambda: ModelSpec((2, 2), dtype=None), ValueError,
     r"dtype must be one of \['float32', 'float64'\], got None"),
    ("dtype-int", lambda: ModelSpec((2, 2), dtype=5), ValueError, r"dtype must be one of .* got 5"),
    ("hidden-none", lambda: ModelSpec((2, 3, 2), hidden=None), TypeError,
     r"hidden must be one activation for every hidden layer \(a name such as 'relu' or a mapping with a "
     r"'name' key\) or a sequence of one per hidden layer, got None"),
    ("hidden-int", lambda: ModelSpec((2, 3, 2), hidden=5), TypeError, r"hidden must be one activation .* got 5"),
    ("hidden-bytes", lambda: ModelSpec((2, 3, 2), hidden=b"relu"), TypeError, r"hidden must be .* got b'relu'"),
    ("sizes-float", lambda: ModelSpec((3, 2.5)), TypeError, r"sizes\[1\] must be an integer, got 2\.5"),
    ("sizes-str", lambda: ModelSpec("32"), TypeError, r"sizes must be a sequence of layer widths, got '32'"),
    ("sizes-int", lambda: ModelSpec(3), TypeError, r"sizes must be a sequence of layer widths, got 3"),
    ("sizes-none", lambda: ModelSpec(None), TypeError, r"sizes must be a sequence of layer widths, got None"),
    ("seed-bool", lambda: ModelSpec((3, 2), seed=True), TypeError, r"seed must be an integer, got True"),
    ("seed-float", lambda: ModelSpec((3, 2), seed=1.0), TypeError, r"seed must be an integer, got 1\.0"),
    ("reduction-none", lambda: ModelSpec((2, 2), reduction=None), ValueError,
     r"unknown reduction None; valid: mean, sum"),
    ("output-none", lambda: ModelSpec((2, 2), output=None), ValueError,
     r"activation must be a name or a mapping with a 'name' key, got None"),
    ("init-none", lambda: ModelSpec((2, 2), init=None), ValueError,
     r"init must be a name or a mapping with a 'name' key, got None"),
    ("init-std-bool", lambda: ModelSpec((2, 2), init={"name": "normal", "std": True}), TypeError,
     r"std " + REAL + "True"),
    ("init-unknown-param", lambda: ModelSpec((2, 2), init={"name": "zeros", "std": 1}), ValueError,
     r"bad parameters \{'std': 1\} for init 'zeros': .*unexpected keyword argument 'std'"),
    ("init-dtype", lambda: ModelSpec((2, 2), init={"name": "normal", "dtype": "float32"}), ValueError,
     r"init must not set 'dtype' \(it draws in the spec's dtype\)"),
    ("negative-slope-str", lambda: ModelSpec((2, 3, 2), hidden={"name": "leaky_relu", "negative_slope": "big"}),
     TypeError, r"negative_slope " + REAL + "'big'"),
    ("label-smoothing-bool", lambda: ModelSpec((2, 2), output="softmax",
                                               loss={"name": "cross_entropy", "label_smoothing": True}),
     TypeError, r"label_smoothing " + REAL + "True"),
    ("huber-delta-str", lambda: ModelSpec((2, 2), loss={"name": "huber", "delta": "1"}), TypeError,
     r"delta " + REAL + "'1'"),
    ("from-json-garbage", lambda: ModelSpec.from_json("garbage"), ValueError,
     r"text is not valid JSON for a ModelSpec: Expecting value: line 1 column 1 \(char 0\) \(text starts 'garbage'\)"),
    ("from-json-list", lambda: ModelSpec.from_json("[2, 2]"), ValueError,
     r"text must hold a JSON object of ModelSpec fields, got list"),
    ("from-json-none", lambda: ModelSpec.from_json(None), TypeError, r"text must be a JSON string, got NoneType"),
    ("from-dict-list", lambda: ModelSpec.from_dict([("sizes", (2, 2))]), TypeError,
     r"data must be a mapping of ModelSpec fields, got list"),
    ("network-too-large", lambda: Network(ModelSpec((4, 10**6, 10**6, 3), hidden="relu")), ValueError,
     r"spec too large: sizes \(4, 1000000, 1000000, 3\) have 1,000,009,000,003 parameters: 14\.6 TiB for their "
     r"values and gradients in float64, above scratchnet\.network\.MAX_PARAMETER_BYTES = 16 GiB"),
    ("network-too-large-float32", lambda: Network(ModelSpec((10**5, 10**5, 10**5), hidden="relu", dtype="float32")),
     ValueError, r"sizes \(100000, 100000, 100000\) have 20,000,200,000 parameters: 149 GiB .* in float32"),
    # -- data: ragged rows, dtype range -----------------------------------------------------------------
    ("x-ragged", lambda: classifier().forward([[1, 2, 3, 4], [1, 2]]), ValueError,
     r"x must be a rectangular array, but its rows have different lengths \(ragged after 1 dimension\(s\)\)"),
    ("x-ragged-fit", lambda: classifier().fit([[0, 0, 0, 0], [0]], [0, 1]), ValueError,
     r"x must be a rectangular array, but its rows have different lengths"),
    ("y-ragged", lambda: regressor().loss(np.zeros((2, 4)), [[1, 2, 3], [1]]), ValueError,
     r"y must be a rectangular array, but its rows have different lengths"),
    ("x-overflows-float32", lambda: classifier(dtype="float32").forward(np.full((2, 4), 1e300)), ValueError,
     r"x overflows float32: 1e\+300 at index \(0, 0\) is outside its range ±3\.403e\+38"),
    ("y-overflows-float32", lambda: regressor(dtype="float32").loss(np.zeros((2, 4)), np.full((2, 3), -1e40)),
     ValueError, r"y overflows float32: -1e\+40 at index \(0, 0\)"),
    ("x-inf-still-infinite", lambda: classifier(dtype="float32").forward(np.full((1, 4), np.inf)), ValueError,
     r"x must be finite, got inf at index \(0, 0\)"),
    ("x-bool", lambda: classifier().forward(np.ones((2, 4), bool)), TypeError,
     r"x must hold real numbers, got dtype bool"),
    ("x-none", lambda: classifier().forward(None), TypeError, r"x must hold real numbers, got dtype object"),
    ("y-none", lambda: classifier().loss(X, None), TypeError, r"y must hold numbers, got dtype object"),
    ("y-float-labels", lambda: classifier().loss(X, LABELS.astype(float)), ValueError,
     r"y must be a 1-D integer label vector or a 2-D \(batch, 3\) array, got shape \(6,\) and dtype float64"),
    ("fit-epochs-bool", lambda: fit(epochs=True), TypeError, r"epochs must be an integer, got True"),
    ("fit-batch-size-float", lambda: fit(batch_size=2.0), TypeError, r"batch_size must be an integer, got 2\.0"),
    ("schedule-n-float", lambda: batch_schedule(10.0, 1), TypeError, r"n_samples must be an integer, got 10\.0"),
    # -- state dicts and files ------------------------------------------------------------------------------
    ("state-not-mapping", lambda: classifier().load_state_dict([1, 2]), TypeError,
     r"state must be a mapping \{name: array\}, got list"),
    ("state-overflows-float32", lambda: with_bias(np.full(5, 1e300), "float32"), ValueError,
     r"state\['layers\.0\.bias'\] overflows float32: 1e\+300 at index \(0,\)"),
    ("state-strings", lambda: with_bias(np.array(["a"] * 5)), TypeError,
     r"state\['layers\.0\.bias'\] must hold real numbers, got dtype <U1"),
    ("state-ragged", lambda: with_bias([[1.0], [1.0, 2.0]]), ValueError,
     r"state\['layers\.0\.bias'\] must be a rectangular array"),
    ("save-path-int", lambda: classifier().save(5), TypeError, r"path must be a str or os\.PathLike, got int"),
    ("load-path-none", lambda: sn.load(None), TypeError, r"path must be a str or os\.PathLike, got NoneType"),
    # -- building blocks called directly --------------------------------------------------------------------
    ("leaky-relu-bool", lambda: LeakyReLU(True), TypeError, r"negative_slope " + REAL + "True"),
    ("softplus-beta-none", lambda: Softplus(beta=None), TypeError, r"beta " + REAL + "None"),
    ("gelu-approximate-none", lambda: GELU(None), ValueError, r"approximate must be 'none' or 'tanh', got None"),
    ("loss-reduction-none", lambda: MSELoss(None), ValueError, r"reduction must be one of \('mean', 'sum'\), got None"),
    ("make-optimizer-no-params", lambda: registry.make_optimizer("sgd", None), TypeError,
     r"params must be a list of Parameter \(e\.g\. network\.parameters\(\)\), got NoneType"),
    ("make-optimizer-amsgrad", lambda: registry.make_optimizer({"name": "adamw", "amsgrad": "false"}, params()),
     TypeError, r"amsgrad " + BOOL + "'false'"),
]


@pytest.mark.parametrize(("build", "error", "message"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_bad_argument_is_refused_with_its_name(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_the_table_is_large_and_its_ids_unique():
    ids = [row[0] for row in ROWS]
    assert len(ids) == len(set(ids)) and len(ids) >= 60


# -- things that are valid stay valid -------------------------------------------------------------------

def test_valid_flags_and_tolerances_still_work():
    assert Adam(params(), amsgrad=np.bool_(True)).amsgrad is True
    assert SGD(params(), lr=0.1, momentum=0.9, nesterov=True).nesterov is True
    assert len(batch_schedule(10, 3, shuffle=False)[0]) == 4
    fit(on_epoch_end=None)
    exact = gradcheck.compare_arrays("w", np.ones(2), np.ones(2), rtol=0, atol=0)
    assert exact.passed and exact.tol_ratio == 0.0, "zero tolerance means exact equality, not 0/0"
    assert not gradcheck.compare_arrays("w", np.ones(2), np.array([1.0, 1.5]), rtol=0, atol=0).passed


def test_largest_float32_values_are_accepted():
    big = np.full((1, 4), float(np.finfo(np.float32).max))
    assert classifier(dtype="float32")._inputs(big).dtype == np.float32


# -- probability-row targets: every row is checked (issue 15) -------------------------------------------------

@pytest.mark.parametrize("bad_row", [0, 1, 2])
def test_a_row_summing_to_half_is_refused_wherever_it_is(bad_row):
    y = np.eye(3)
    y[bad_row] = [0.25, 0.25, 0.0]
    for loss, output in (("cross_entropy", "softmax"), ("nll", "log_softmax")):
        net = classifier(output=output, loss=loss)
        with pytest.raises(ValueError, match=rf"y rows must sum to 1 for {loss} \(one-hot or probability rows\), "
                                             rf"but row {bad_row} sums to 0\.5$"):
            net.loss(np.zeros((3, 4)), y)


def test_the_first_bad_row_is_named_with_the_count():
    y = np.array([[1.0, 0, 0], [0.2, 0.2, 0.2], [0, 1.0, 0], [2.0, 0, 0]])
    with pytest.raises(ValueError, match=r"but row 1 sums to 0\.6.* \(2 rows are off\)"):
        classifier().loss(np.zeros((4, 4)), y)


def test_float32_probability_rows_within_rounding_pass():
    y = np.full((5, 3), 1 / 3, dtype=np.float32)
    assert np.isfinite(classifier(dtype="float32").loss(np.zeros((5, 4)), y))


def test_the_size_refusal_writes_bytes_in_binary_units_at_every_scale(monkeypatch):
    """``MAX_PARAMETER_BYTES`` may be lowered or raised ("raise it if you must"); the refusal then
    writes small sizes in B and KiB as it writes large ones in GiB and TiB."""
    import scratchnet.network

    monkeypatch.setattr(scratchnet.network, "MAX_PARAMETER_BYTES", 1000)
    with pytest.raises(ValueError, match=r"^spec too large: sizes \(4, 8, 3\) have 67 parameters: 1\.05 KiB for "
                                         r"their values and gradients in float64, above "
                                         r"scratchnet\.network\.MAX_PARAMETER_BYTES = 1e\+03 B$"):
        Network(ModelSpec((4, 8, 3), hidden="relu"))
    monkeypatch.setattr(scratchnet.network, "MAX_PARAMETER_BYTES", 2**20)
    with pytest.raises(ValueError, match=r"have 160,400 parameters: 2\.45 MiB .* = 1 MiB$"):
        Network(ModelSpec((400, 400)))
