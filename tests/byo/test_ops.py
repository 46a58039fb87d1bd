"""Op-level checks of a learner's own functions (byo/ops.py, diagnosis/ops.py): correct ops pass with
no finding; each classic mistake is named, with its factor; two mistakes give exactly two findings;
other styles of writing ops work; bad registrations are refused with everything that is wrong."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scratchnet_reference.byo.ops import OpsError, check_ops
from scratchnet_reference.cli import main

from .conftest import ROOT

N_EXAMPLES = 15


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))  # overflows harmlessly to 0 for z < −709 (a RuntimeWarning)


def n_rows(p):
    return p.shape[0]


GOOD = {
    "softmax": softmax,
    "softmax_backward": lambda z, a, g: a * (g - (g * a).sum(axis=1, keepdims=True)),
    "log_softmax": lambda z: z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1,
                                                                                                   keepdims=True)),
    "sigmoid": sigmoid,
    "sigmoid_backward": lambda z, a, g: g * a * (1 - a),
    "tanh_backward": lambda z, a, g: g * (1 - a ** 2),
    "relu": lambda z: np.maximum(z, 0),
    "relu_backward": lambda z, a, g: g * (z > 0),
    "leaky_relu_backward": lambda z, a, g: np.where(z > 0, g, 0.2 * g),
    "cross_entropy": lambda p, y: -np.sum(y * np.log(p)) / n_rows(p),
    "cross_entropy_grad": lambda p, y: -y / p / n_rows(p),
    "binary_cross_entropy": lambda p, y: -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)),
    "binary_cross_entropy_grad": lambda p, y: (p - y) / (p * (1 - p)) / p.size,
    "mse": lambda p, y, reduction="mean": np.sum((p - y) ** 2) / (p.size if reduction == "mean" else 1),
    "mse_grad": lambda p, y, reduction="mean": 2 * (p - y) / (p.size if reduction == "mean" else 1),
    "l1_grad": lambda p, y: np.sign(p - y) / p.size,
    "softmax_cross_entropy_grad": lambda z, y: (softmax(z) - y) / n_rows(z),
    "sigmoid_binary_cross_entropy_grad": lambda z, y: (sigmoid(z) - y) / z.size,
    "dense_forward": lambda x, W, b: x @ W + b,
    "dense_backward": lambda x, W, b, g: (g @ W.T, x.T @ g, g.sum(axis=0)),
    "WEIGHT_LAYOUT": "in_out",
    "PARAMS": {"leaky_relu": {"negative_slope": 0.2}},
    "TARGETS": {"cross_entropy": ("index", "one_hot", "soft"), "softmax_cross_entropy": ("one_hot", "soft"),
                "binary_cross_entropy": ("one_hot",)},
}


def _index_aware_ce(p, y):
    y = np.eye(p.shape[1])[y] if y.ndim == 1 else y
    return -np.sum(y * np.log(p)) / p.shape[0]


GOOD["cross_entropy"] = _index_aware_ce
GOOD["cross_entropy_grad"] = lambda p, y: -(np.eye(p.shape[1])[y] if y.ndim == 1 else y) / p / p.shape[0]


def test_correct_ops_pass_with_no_finding():
    report = check_ops(GOOD, max_examples=N_EXAMPLES)
    assert report.findings == [], report.render()
    assert report.ok
    checks = {(r["op"], r["check"]) for r in report.rows}
    assert ("cross_entropy", "value mean index") in checks and ("mse", "value sum") in checks
    assert ("dense_backward", "backward dW") in checks
    report.assert_ok()


def ops_with(**changed):
    """Just the changed ops (with one-hot targets, the default), in GOOD's dense layout."""
    return {"WEIGHT_LAYOUT": "in_out", "PARAMS": GOOD["PARAMS"], **changed}


#: mistakes with a factor, patterns read off the numbers, and a catalogue mistake at a second site; each
#: catalogue entry on its own is tests/diagnosis/test_catalogue.py's
MISTAKEN = {
    "sum_not_mean": ({"cross_entropy_grad": lambda p, y: -y / p}, "cross_entropy_grad", "N"),
    "half_mse": ({"mse_grad": lambda p, y: (p - y) / p.size}, "mse_grad", "1/2"),
    "half_sq_norm_summed": ({"mse": lambda p, y: 0.5 * np.sum((p - y) ** 2)}, "mse", "N·C/2"),
    "sign": ({"mse_grad": lambda p, y: 2 * (y - p) / p.size}, "mse_grad", "−1"),
    "overflow": ({"softmax": lambda z: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)}, "softmax", "1"),
    "bce_as_categorical": ({"cross_entropy": lambda p, y: -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)) / len(p)},
                           "cross_entropy", "C"),
    "fused_delta_as_loss_grad": ({"cross_entropy_grad": lambda p, y: p - y}, "cross_entropy_grad", "N"),
    "p_minus_y_without_1_over_n": ({"softmax_cross_entropy_grad": lambda z, y: softmax(z) - y},
                                   "softmax_cross_entropy_grad", "N"),
    "softmax_s1s_on_fused": ({"softmax_cross_entropy_grad": lambda z, y: softmax(z) * (1 - softmax(z))
                                         * (softmax(z) - y) / len(z)}, "softmax_cross_entropy_grad", "1"),
    "db_mean": ({"dense_backward": lambda x, W, b, g: (g @ W.T, x.T @ g, g.mean(axis=0))}, "dense_backward (db)",
                "1/N"),
}
KIND = {"softmax_s1s_on_fused": "softmax_s1s", "sum_not_mean": "factor", "half_mse": "factor",
        "half_sq_norm_summed": "factor", "p_minus_y_without_1_over_n": "factor", "db_mean": "factor"}


@pytest.mark.parametrize("mistake", list(MISTAKEN))
def test_each_known_mistake_is_named(mistake):
    changed, op, factor = MISTAKEN[mistake]
    report = check_ops(ops_with(**changed), max_examples=N_EXAMPLES)
    assert [(f.op, f.kind, f.factor_name) for f in report.findings] == [(op, KIND.get(mistake, mistake), factor)], \
        report.render()
    finding = report.findings[0]
    assert finding.reproducer.count("np.array(") >= 3 and finding.evidence
    assert not report.ok
    with pytest.raises(AssertionError, match=op.split(" ")[0]):
        report.assert_ok()


def test_factor_words_name_the_direction():
    report = check_ops(ops_with(mse=lambda p, y: 0.5 * np.sum((p - y) ** 2)), max_examples=N_EXAMPLES)
    (finding,) = report.findings
    assert "torch's mean divides by N·C" in finding.what and "a ½ torch does not have" in finding.what


def test_compound_error_is_taken_apart():
    report = check_ops(ops_with(softmax_backward=lambda z, a, g: 2 * a * (1 - a) * g), max_examples=N_EXAMPLES)
    assert [(f.kind, f.factor_name) for f in report.findings] == [("softmax_s1s", "2")], report.render()


def test_two_independent_mistakes_give_exactly_two_findings():
    report = check_ops({"softmax": softmax, "softmax_backward": lambda z, a, g: a * (1 - a) * g,
                        "cross_entropy": lambda p, y: -np.sum(y * np.log(p)) / len(p),
                        "cross_entropy_grad": lambda p, y: -y / p}, max_examples=N_EXAMPLES)
    assert sorted((f.op, f.kind, f.factor_name) for f in report.findings) == [
        ("cross_entropy_grad", "factor", "N"), ("softmax_backward", "softmax_s1s", "1")], report.render()
    assert "your loss is right, your gradient is not" in report.findings[0].evidence + report.findings[1].evidence


def test_loss_and_its_consistent_gradient_are_one_root_cause():
    report = check_ops({"mse": lambda p, y: 0.5 * np.sum((p - y) ** 2), "mse_grad": lambda p, y: p - y},
                       max_examples=N_EXAMPLES)
    assert [(f.op, f.factor_name) for f in report.findings] == [("mse and mse_grad", "N·C/2")], report.render()


class LayerMethods:
    """Ops as a class instance's methods, float32 end to end."""

    def softmax(self, z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def softmax_backward(self, z, a, g):
        return a * (g - (g * a).sum(axis=1, keepdims=True))

    def helper(self, x):  # not an op name, not close to one: ignored
        return x


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_methods_of_an_object_and_float32(dtype):
    report = check_ops(LayerMethods(), max_examples=N_EXAMPLES, dtype=dtype)
    assert report.ok, report.render()
    assert {r["op"] for r in report.rows} == {"softmax", "softmax_backward"}


def test_float32_mistake_still_named():
    report = check_ops({"softmax_backward": lambda z, a, g: a * (1 - a) * g}, max_examples=N_EXAMPLES,
                       dtype="float32")
    assert [f.kind for f in report.findings] == ["softmax_s1s"], report.render()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_named_under_other_seeds(seed):
    report = check_ops({"softmax_backward": lambda z, a, g: a * (1 - a) * g,
                        "cross_entropy_grad": lambda p, y: -y / p}, max_examples=N_EXAMPLES, seed=seed)
    assert sorted((f.kind, f.factor_name) for f in report.findings) == [("factor", "N"), ("softmax_s1s", "1")]


def test_runtime_warnings_in_user_code_are_reported_not_fatal():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as pyproject makes them for scratchnet's own tests
        report = check_ops({"sigmoid": sigmoid}, max_examples=N_EXAMPLES)
    assert report.ok, report.render()
    assert "overflow encountered in exp" in " ".join(report.warnings["sigmoid"])
    assert "(recorded, not fatal" in report.render()


def test_a_function_that_raises_on_some_inputs_is_a_finding():
    def picky_relu(z):
        if np.any(np.abs(z) > 30):
            raise ValueError("too large")
        return np.maximum(z, 0)

    report = check_ops({"relu": picky_relu}, max_examples=N_EXAMPLES)
    assert [f.kind for f in report.findings] == ["raised"] and "too large" in report.findings[0].what


def test_bad_registrations_are_refused_with_everything_wrong():
    with pytest.raises(OpsError) as info:
        check_ops({"sofmax_backward": lambda z, a, g: g,
                   "softmax": lambda z, axis: z,
                   "cross_entropy_grad": lambda p, y: p[:, 0],
                   "mse": lambda p, y: (p - y) ** 2,
                   "dense_backward": lambda x, W, b, g: (g @ W, x.T @ g, g.sum(0)),
                   "TARGETS": ("index", "hot"), "WEIGHT_LAYOUT": "rows"})
    message = str(info.value)
    for part in ("'sofmax_backward' is not an op name (it reads as the derivative of 'sofmax', which the suite "
                 "does not have): did you mean softmax_backward",
                 "softmax must take (z)", "cross_entropy_grad returned shape (3,)",
                 "mse must return the loss as one number", "TARGETS must be some of", "WEIGHT_LAYOUT must be one of",
                 "dW has shape (4, 5), expected (5, 4) (transposed"):
        assert part in message, message


def test_cli_names_the_planted_mistakes_of_the_example(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["ops", "--impl", "examples/ops/learner_ops.py:OPS", "--max-examples", str(N_EXAMPLES)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("3 root causes")
    for text in ("1. softmax_backward: softmax's derivative taken elementwise: δ = g ⊙ s(1 − s)",
                 "cross_entropy_grad: yours = N × torch's", "sigmoid_backward: sigmoid's derivative evaluated at"):
        assert text in out, out
    assert main(["ops", "--impl", "examples/ops/learner_ops_fixed.py:OPS", "--max-examples", str(N_EXAMPLES)]) == 0
    assert main(["ops", "--impl", "examples/ops/nowhere.py"]) == 2


def test_a_module_file_with_learner_names_is_read_not_skipped(tmp_path):
    """The false pass of issue 22: softmax_derivative was 'not checked (not op names)', exit 0."""
    path = tmp_path / "my_nn.py"
    path.write_text("import numpy as np\n\n"
                    "def softmax(z):\n    e = np.exp(z - z.max(axis=1, keepdims=True))\n"
                    "    return e / e.sum(axis=1, keepdims=True)\n\n"
                    "def softmax_derivative(s):\n    return s * (1 - s)\n\n"
                    "def one_hot(labels, n):\n    return np.eye(n)[labels]\n")
    report = check_ops(str(path), max_examples=N_EXAMPLES)
    assert not report.ok and [r["op"] for r in report.rows] == ["softmax", "softmax_backward"]
    assert [f.kind for f in report.findings] == ["softmax_s1s"], report.render()
    assert report.ignored == ("one_hot",) and "not checked (not op names): one_hot" in report.render()


def test_swapped_suffixes_are_read_as_the_op():
    report = check_ops({"relu_grad": lambda z, a, g: g * (z > 0), "mse_backward": lambda p, y: 2 * (p - y) / p.size},
                       max_examples=N_EXAMPLES)
    assert report.ok and report.sources == {"relu_backward": "relu_grad", "mse_grad": "mse_backward"}, report.render()
    assert "relu_grad(z, a, g) read as relu_backward(z, a, g)" in report.render()


def test_each_reduction_is_diagnosed_on_its_own():
    """A gradient that ignores reduction= is right for mean and off by 1/(N·C) for sum."""
    report = check_ops({"l1_grad": lambda p, y, reduction="mean": np.sign(p - y) / p.size}, max_examples=N_EXAMPLES)
    (finding,) = report.findings
    assert (finding.kind, finding.factor_name, finding.checks) == ("factor", "1/(N·C)", ("grad sum",)), \
        report.render()
    assert "reduction='sum'" in finding.reproducer


def test_an_unknown_mistake_is_not_misnamed():
    report = check_ops({"softmax_backward": lambda z, a, g: a * g}, max_examples=N_EXAMPLES)
    (finding,) = report.findings
    assert finding.kind == "unrecognised" and "worst at" in finding.evidence, report.render()
