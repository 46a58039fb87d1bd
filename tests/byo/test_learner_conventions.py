"""A learner's functions as they wrote them (byo/learner_names.py, conventions.py): derivative names
(`sigmoid_prime`, `softmax_derivative`, `dsigmoid`, `sigmoidGradient`), derivatives of z or of a (probed),
softmax Jacobians per sample or per batch, Coursera's `(A, cache)` / `(dA, cache)`, CS231n's
`(out, cache)` / `(dout, cache)` / `(loss, dx)`; each read and stated, or refused with the closest names —
never exit 0 with nothing checked. The modules below are written as strangers write them, each with its
mistakes in pairs (a right and a wrong version of the same convention)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from scratchnet_reference.byo.ops import OpsError, check_ops, load_ops
from scratchnet_reference.cli import main

from .conftest import ROOT

N_EXAMPLES = 12

NIELSEN = '''
import numpy as np

def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))

def sigmoid_prime(z):
    """Derivative of the sigmoid function."""
    return sigmoid(z) * (1 - sigmoid(z))

def softmax(x):
    e = np.exp(x - np.max(x, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)

def softmax_derivative(s):
    return s * (1 - s)

def cross_entropy(y_pred, y_true):
    return -np.sum(y_true * np.log(y_pred)) / y_pred.shape[0]

def cross_entropy_derivative(y_pred, y_true):
    return -y_true / y_pred

def one_hot(labels, n):
    return np.eye(n)[labels]
'''

# CS231n's assignment 2 layers, as a student fills them in; two planted mistakes
LAYERS = '''
import numpy as np


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1).dot(w) + b
    cache = (x, w, b)
    return out, cache


def affine_backward(dout, cache):
    x, w, b = cache
    dx = dout.dot(w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T.dot(dout)
    db = np.mean(dout, axis=0)                 # PLANTED: the mean over the batch, not the sum
    return dx, dw, db


def relu_forward(x):
    out = np.maximum(0, x)
    cache = x
    return out, cache


def relu_backward(dout, cache):
    dx, x = None, cache
    dx = dout * (x >= 0)                       # PLANTED: relu'(0) = 1
    return dx


def softmax_loss(x, y):
    shifted_logits = x - np.max(x, axis=1, keepdims=True)
    Z = np.sum(np.exp(shifted_logits), axis=1, keepdims=True)
    log_probs = shifted_logits - np.log(Z)
    probs = np.exp(log_probs)
    N = x.shape[0]
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    dx = probs.copy()
    dx[np.arange(N), y] -= 1
    dx /= N
    return loss, dx
'''

# Andrew Ng's course: activations return (A, cache), backward takes (dA, cache)
COURSERA = '''
import numpy as np

def sigmoid(Z):
    A = 1 / (1 + np.exp(-Z))
    cache = Z
    return A, cache

def sigmoid_backward(dA, cache):
    Z = cache
    s = 1 / (1 + np.exp(-Z))
    dZ = dA * s * (1 - s)
    return dZ

def relu(Z):
    A = np.maximum(0, Z)
    return A, Z

def relu_backward(dA, cache):
    Z = cache
    dZ = np.array(dA, copy=True)
    dZ[Z < 0] = 0                               # PLANTED: dZ kept at Z = 0
    return dZ
'''


def module(tmp_path, name: str, source: str):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return str(path)


# --------------------------------------------------------------------------------------------
# Derivatives of z or of a, probed; the assumption stated
# --------------------------------------------------------------------------------------------

def test_derivative_names_are_read_and_the_reading_stated(tmp_path):
    report = check_ops(module(tmp_path, "nielsen", NIELSEN), max_examples=N_EXAMPLES)
    assert report.sources == {"sigmoid": "sigmoid", "sigmoid_backward": "sigmoid_prime", "softmax": "softmax",
                              "softmax_backward": "softmax_derivative", "cross_entropy": "cross_entropy",
                              "cross_entropy_grad": "cross_entropy_derivative"}
    said = "\n".join(report.assumptions)
    assert "sigmoid_prime(z): elementwise, of z (the pre-activation) (probed: it agrees with torch taking z" in said
    assert "softmax_derivative(s): elementwise, of a = softmax(z) (from its argument name 's'" in said
    # the pair of mistakes: s(1 − s) for softmax, the gradient without the 1/N of the mean
    assert sorted(f.op for f in report.findings) == ["cross_entropy_grad", "softmax_backward"], report.render()
    assert str(report).startswith("how your functions were read"), str(report)
    assert "softmax_backward = lambda z, a, g: g * softmax_derivative(a)" in report.render()


@pytest.mark.parametrize("source, of", [
    ("def sigmoid_derivative(s):\n    return s * (1 - s)\n", "a"),                        # right, of a
    ("def dsigmoid(z):\n    s = 1 / (1 + np.exp(-z))\n    return s * (1 - s)\n", "z"),   # right, of z
])
def test_right_derivatives_of_z_and_of_a_both_pass(tmp_path, source, of):
    ops = load_ops(module(tmp_path, f"acts_{of}", "import numpy as np\n\n" + source))
    (said,) = ops.assumptions
    assert f"of {'z (the pre-activation)' if of == 'z' else 'a = sigmoid(z)'} (probed" in said, said
    assert check_ops(ops, max_examples=N_EXAMPLES).ok


def test_a_derivative_right_in_neither_reading_is_named(tmp_path):
    """sigmoid_prime with its sign flipped (as found in the wild): neither z nor a agrees, the
    argument name says z, and the mistake is named under that reading, not read away."""
    source = ("import numpy as np\n\ndef sigmoid(z):\n    return 1.0 / (1.0 + np.exp(-z))\n\n"
              "def sigmoid_prime(z):\n    return sigmoid(z) * (sigmoid(z) - 1)\n")
    report = check_ops(module(tmp_path, "flipped", source), max_examples=N_EXAMPLES)
    said = report.assumptions[0]
    assert "of z (the pre-activation) (from its argument name 'z'; neither reading agrees with torch" in said, said
    assert [(f.op, f.kind) for f in report.findings] == [("sigmoid_backward", "sign")], report.render()


def test_declared_derivative_of_overrides_the_probe(tmp_path):
    source = "DERIVATIVE_OF = {'sigmoidGradient': 'z'}\n\ndef sigmoidGradient(a):\n    return a * (1 - a)\n"
    report = check_ops(module(tmp_path, "declared", source), max_examples=N_EXAMPLES)
    assert "declared in DERIVATIVE_OF" in report.assumptions[0] and not report.ok  # a function of a, called with z
    with pytest.raises(OpsError, match="DERIVATIVE_OF must be 'z' or 'a'"):
        load_ops(module(tmp_path, "declared_bad", source.replace("'z'}", "'x'}")))


# --------------------------------------------------------------------------------------------
# Softmax Jacobians
# --------------------------------------------------------------------------------------------

PER_SAMPLE = "def softmax_derivative(s):\n    s = s.reshape(-1, 1)\n    return np.diagflat(s) - np.dot(s, s.T)\n"
PER_SAMPLE_WRONG = "def softmax_derivative(s):\n    s = s.reshape(-1, 1)\n    return np.diagflat(s) + np.dot(s, s.T)\n"
PER_BATCH = ("def softmax_grad(s):\n    eye = np.eye(s.shape[1])[None]\n"
             "    return s[:, :, None] * eye - s[:, :, None] * s[:, None, :]\n")
PER_BATCH_WRONG = ("def softmax_grad(s):\n    eye = np.eye(s.shape[1])[None]\n"
                   "    return s[:, :, None] * eye - s[:, None, :] * s[:, None, :]\n")


@pytest.mark.parametrize("source, form, right", [
    (PER_SAMPLE, "a C×C Jacobian of one sample", True), (PER_SAMPLE_WRONG, "a C×C Jacobian of one sample", False),
    (PER_BATCH, "a C×C Jacobian per sample, for the batch", True),
    (PER_BATCH_WRONG, "a C×C Jacobian per sample, for the batch", False),
], ids=["per-sample", "per-sample-wrong", "per-batch", "per-batch-wrong"])
def test_softmax_jacobians_per_sample_and_per_batch(tmp_path, source, form, right):
    report = check_ops(module(tmp_path, f"jac_{len(source)}_{right}", "import numpy as np\n\n" + source),
                       max_examples=N_EXAMPLES)
    assert form in report.assumptions[0], report.assumptions
    assert report.ok is right, report.render()


# --------------------------------------------------------------------------------------------
# Course conventions
# --------------------------------------------------------------------------------------------

def test_cs231n_layers_two_planted_mistakes_two_root_causes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module(tmp_path, "layers", LAYERS)
    assert main(["ops", "--impl", "layers.py", "--max-examples", str(N_EXAMPLES)]) == 1
    out = capsys.readouterr().out
    head = out.split("\n\n")[0]
    for said in ("affine_forward(x, w, b) -> (out, cache): W (in, out): x·W + b (probed",
                 "affine_backward(dout, cache): (dout, cache), the cache from your affine_forward",
                 "relu_backward(dout, cache): (dout, cache), the cache from your relu_forward",
                 "softmax_loss(x, y) -> (loss, dz): (z, y), y as class indices"):
        assert said in " ".join(head.split()), head
    assert "2 root causes in layers.py" in out
    assert "1. dense_backward (db): yours = 1/N × torch's" in out and "2. relu_backward: " in out \
        and "every one at exactly z = 0; everything off the kink agrees" in out, out
    # the reproducer pastes: the learner's relu_backward kept aside, not called by its own definition
    assert "your_relu_backward = relu_backward  # yours, as you wrote it\n" \
           "     relu_backward = lambda z, a, g: your_relu_backward(g, relu_forward(z)[1])" in out, out
    assert not (tmp_path / ".hypothesis").exists()


def test_the_worked_cs231n_example(capsys, monkeypatch):
    """examples/ops/layers.py as the README shows it: read as written, svm_loss in SKIP, three causes
    (two in the dense ops, one in max pooling: ``tests/byo/test_layer_ops.py``)."""
    monkeypatch.chdir(ROOT)
    assert main(["ops", "--impl", "examples/ops/layers.py", "--max-examples", str(N_EXAMPLES)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("how your functions were read") and "3 root causes in examples/ops/layers.py" in out
    assert "note: not checked (in SKIP): svm_loss" in out
    planted = [line for line in (ROOT / "examples/ops/layers.py").read_text().splitlines() if "  # PLANTED:" in line]
    assert len(planted) == 3


def test_coursera_cache_convention(tmp_path):
    report = check_ops(module(tmp_path, "dnn_utils", COURSERA), max_examples=N_EXAMPLES)
    said = "\n".join(report.assumptions)
    assert "sigmoid(Z) -> (out, cache): out checked as sigmoid(z)" in said
    assert "sigmoid_backward(dA, cache): (dout, cache), the cache from your sigmoid(z)" in said
    # the pair: sigmoid_backward right, relu_backward wrong at the kink only
    assert [(f.op, f.kind) for f in report.findings] == [("relu_backward", "kink")], report.render()


def test_loss_arguments_in_the_other_order(tmp_path):
    source = ("import numpy as np\n\ndef mse(y_true, y_pred):\n    return np.mean((y_true - y_pred) ** 2)\n\n"
              "def mse_prime(y_true, y_pred):\n    return 2 * (y_pred - y_true) / y_true.size\n")
    report = check_ops(module(tmp_path, "losses", source), max_examples=N_EXAMPLES)
    assert report.ok and all("(y, p)" in said for said in report.assumptions), report.assumptions


# --------------------------------------------------------------------------------------------
# Refused, never unchecked
# --------------------------------------------------------------------------------------------

def test_a_name_that_claims_an_unknown_op_is_refused_with_the_way_out(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module(tmp_path, "svm_layers", LAYERS + "\n\ndef svm_loss(x, y):\n    return 0.0, np.zeros_like(x)\n")
    assert main(["ops", "--impl", "svm_layers.py"]) == 2
    err = capsys.readouterr().err
    assert "'svm_loss' is not an op name (it reads as a loss 'svm', which the suite does not have)" in err, err
    assert "SKIP = ['svm_loss']" in err
    module(tmp_path, "checks", "from svm_layers import *  # noqa\n\nSKIP = ['svm_loss']\n")
    report = check_ops("checks.py", max_examples=4)
    assert "svm_loss" not in report.sources.values() and "not checked (in SKIP): svm_loss" in report.render()
    assert "affine_forward" in report.sources.values()


def test_misspelt_derivative_gets_the_closest_names(tmp_path):
    with pytest.raises(OpsError, match=r"'sigmod_prime' is not an op name .*did you mean .*sigmoid"):
        load_ops(module(tmp_path, "typo", "def sigmod_prime(z):\n    return z\n"))


def test_helpers_named_like_functions_are_not_claimed(tmp_path):
    source = ("import numpy as np\n\ndef loss_fn(p, y):\n    return 0.0\n\n"
              "def relu(x):\n    return np.maximum(0, x)\n")
    ops = load_ops(module(tmp_path, "helpers_fn", source))
    assert ops.ignored == ["loss_fn"] and list(ops.functions) == ["relu"]


def test_a_module_with_nothing_checkable_never_passes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module(tmp_path, "helpers", "def one_hot(y, n):\n    return y\n\ndef predict(x):\n    return x\n")
    assert main(["ops", "--impl", "helpers.py"]) == 2
    assert "no ops found in helpers" in capsys.readouterr().err


def test_two_functions_read_as_one_op_are_refused(tmp_path):
    source = ("def sigmoid_prime(z):\n    return z\n\ndef sigmoid_derivative(a):\n    return a * (1 - a)\n")
    with pytest.raises(OpsError, match="are both read as sigmoid_backward"):
        load_ops(module(tmp_path, "dup", source))


def test_blank_impl_is_refused(capsys, tmp_path):
    """An unset variable in CI (``--impl "$IMPL"``) used to test scratchnet itself, and pass."""
    assert main(["ops", "--impl", ""]) == 2
    assert "--impl is empty" in capsys.readouterr().err
    assert main(["run", "--impl", "  ", "--quick", "--out", str(tmp_path / "out")]) == 2
    assert "--impl is empty" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# Display: print and notebook HTML, escaped
# --------------------------------------------------------------------------------------------

def test_report_prints_as_text_and_renders_escaped_html():
    def softmax_backward(z, a, g):
        if z.shape[0] == 1:
            raise ValueError("<script>alert('x')</script> & more")
        return a * (g - (g * a).sum(axis=1, keepdims=True))

    report = check_ops({"softmax_backward": softmax_backward}, max_examples=N_EXAMPLES)
    assert str(report) == report.render() and "OpsReport(" not in str(report)
    html = report._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.index("scratchnet-root-causes") < html.index("<table")
    assert "reproducer" in html and "np.testing.assert_allclose" in html


def test_check_ops_leaves_no_hypothesis_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_ops({"relu": lambda z: np.maximum(z, 0)}, max_examples=3)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# A function that raises on every reading: the refusal quotes what it raised
# --------------------------------------------------------------------------------------------

TEN_CLASSES = '''
import numpy as np

def softmax(x):
    e = np.exp(x - np.max(x, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)

def softmax_derivative(s):
    jacobian = np.zeros((10, 10))  # my MNIST net has 10 classes
    for i in range(10):
        for j in range(10):
            jacobian[i, j] = s[i] * ((i == j) - s[j])
    return jacobian
'''


def test_a_derivative_that_raises_on_every_reading_is_refused_with_what_it_raised(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module(tmp_path, "ten_classes", TEN_CLASSES)
    assert main(["ops", "--impl", "ten_classes.py"]) == 2
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if "softmax_derivative(s)" in line)
    assert "answers neither a batch" in line, err
    # a batch: a row into one element; one sample (4 classes), as a row or a column: s[4]
    assert "your code raised ValueError: setting an array element with a sequence" in line, err
    assert "IndexError: index 4 is out of bounds for axis 0 with size 4" in line, err


def test_what_a_function_raised_is_quoted_on_one_line_escaped_and_cut(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module(tmp_path, "unfinished", TEN_CLASSES.split("def softmax_derivative")[0] + '''
def softmax_derivative(s):
    raise NotImplementedError("TODO\\n\\x1b[31mfinish the Jacobian\\x1b[0m" + " (see lecture 4)" * 40)
''')
    assert main(["ops", "--impl", "unfinished.py"]) == 2
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if "softmax_derivative(s)" in line)
    quoted = line.split("your code raised ", 1)[1]
    assert quoted.startswith("NotImplementedError: TODO \\x1b[31mfinish the Jacobian\\x1b[0m (see lecture 4)"), err
    assert quoted.endswith("…") and len(quoted) == 200 and "\x1b" not in err, err


# --------------------------------------------------------------------------------------------
# The right formula of a dense layer, in the learner's weight layout
# --------------------------------------------------------------------------------------------

# the same planted mistake (db the mean over the batch) with W stored as torch stores it
LAYERS_OUT_IN = LAYERS.replace("x.reshape(x.shape[0], -1).dot(w) + b", "x.reshape(x.shape[0], -1).dot(w.T) + b") \
    .replace("dx = dout.dot(w.T).reshape(x.shape)", "dx = dout.dot(w).reshape(x.shape)") \
    .replace("dw = x.reshape(x.shape[0], -1).T.dot(dout)", "dw = dout.T.dot(x.reshape(x.shape[0], -1))")


@pytest.mark.parametrize("name, source, layout, right", [
    ("layers_in_out", LAYERS, "W (in, out): x·W + b",
     "out = x W + b (W (in, out));  dx = g Wᵀ, dW = xᵀ g, db = Σ_rows g"),
    ("layers_out_in", LAYERS_OUT_IN, "W (out, in): x·Wᵀ + b",
     "out = x Wᵀ + b (W (out, in));  dx = g W, dW = gᵀ x, db = Σ_rows g"),
])
def test_a_dense_layers_right_formula_is_in_the_learners_layout(tmp_path, name, source, layout, right):
    report = check_ops(module(tmp_path, name, source), max_examples=N_EXAMPLES)
    assert any(layout in said for said in report.assumptions), report.assumptions
    dense = [c for c in report.findings if c.op.startswith("dense_backward")]
    assert [c.op for c in dense] == ["dense_backward (db)"] and dense[0].right == right, report.render()
    assert f"right: {right}" in report.render()
