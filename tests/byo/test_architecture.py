"""The architecture is the user's: declared fixed sizes or a depth are what every case is built
with; without a declaration the adapter check finds what ``build`` accepts (two hidden layers,
then one) and says which it chose; a gradient of the wrong shape is a failing comparison of that
parameter, not an adapter error; each case meets exact kinks and large logits."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scratchnet_reference.byo import styles
from scratchnet_reference.conformance.network_check import check_network
from scratchnet_reference.conformance.runner import CASE_SIZES, RunPlan, check_case, run_matrix
from scratchnet_reference.core.adapter import AdapterError, Capabilities, load_implementation, validate_implementation
from scratchnet_reference.core.architecture import Architecture
from scratchnet_reference.core.batches import LARGE_LOGIT, kink_problem, large_logit_problem
from scratchnet_reference.core.mapping import to_tensor
from scratchnet_reference.core.matrix import Case, make_batch
from scratchnet_reference.core.protocol import initial_state
from scratchnet_reference.core.torch_model import build_torch_model
from scratchnet_reference.reports.frames import read_records

from examples.mnist_columns import adapter as columns
from examples.mnist_columns import network as columns_network
from scratchnet import ModelSpec

from .impls import OneHiddenLayerOnly, UserImplementation, UserModel

COLUMNS = "examples.mnist_columns.adapter"
ROWS = "examples.mnist_rows.adapter"


@pytest.mark.parametrize("declared, sizes, words", [
    ([(784, 30, 10)], (784, 30, 10), "784-30-10 (declared)"),
    ((784, 30, 10), (784, 30, 10), "784-30-10 (declared)"),
    ([1], (5, 7, 4), "1 hidden layer, checked as 5-7-4 (declared)"),
    ([3], (5, 7, 6, 8, 4), "3 hidden layers, checked as 5-7-6-8-4 (declared)"),
    (["any"], CASE_SIZES, "2 hidden layers, checked as 5-7-6-4 (declared)"),
])
def test_declared_architectures(declared, sizes, words):
    caps = Capabilities.from_declaration({"architectures": declared})
    assert caps.architecture.case_sizes() == sizes and caps.architecture.describe() == words
    assert RunPlan(capabilities=caps).sizes == sizes


@pytest.mark.parametrize("declared, expected", [
    ([(784,)], "at least two positive ints"), ([-1], "depth -1 is negative"), (["deep"], "'deep' is not an"),
    ([(784, 0, 10)], "at least two positive ints"),
])
def test_a_malformed_architecture_is_refused_by_name(declared, expected):
    with pytest.raises(AdapterError, match="capabilities\\['architectures'\\]") as info:
        Capabilities.from_declaration({"architectures": declared}, "MyNet")
    assert expected in str(info.value)


def test_without_a_declaration_the_check_finds_one_hidden_layer_and_says_so():
    caps = validate_implementation(OneHiddenLayerOnly("one-hidden"))
    arch = caps.architecture
    assert (arch.how, arch.hidden_layers, arch.case_sizes()) == ("found", 1, (5, 7, 4))
    assert "1 hidden layer, checked as 5-7-4 (not declared; found by building: 2 hidden layers:" in arch.describe()
    assert "KeyError" in arch.describe()
    records, _ = run_matrix(OneHiddenLayerOnly("one-hidden"), RunPlan(capabilities=caps, training=False,
                                                                       case_filter=lambda c: c.hidden == "relu"
                                                                       and not c.after),
                            not_implemented=[])
    assert records and {r.sizes for r in records} == {"5-7-4"} and all(r.status == "pass" for r in records)


def test_the_pytest_form_checks_the_architecture_it_found(run_pytest, tmp_path):
    code, out = run_pytest("--pyargs", "scratchnet_reference.conformance.tests", "--scratchnet-impl",
                           "tests.byo.impls:one_hidden_layer_only", "-k",
                           "relu-softmax-cross_entropy-mean-float64 or sgd-full_batch-float64")
    assert code == 0, out[-3000:]
    records = read_records(tmp_path / "pytest-reports" / "records.csv")
    assert set(records["sizes"]) == {"5-7-4"}  # the cases and the training run alike
    assert {"training" if opt else "case" for opt in records["optimizer"]} == {"case", "training"}


def test_a_network_that_builds_no_depth_is_told_to_declare_its_sizes():
    class FixedSizes(UserImplementation):
        def build(self, spec, state):
            if spec.sizes != (784, 30, 10):
                raise ValueError(f"this network is 784-30-10, got {spec.sizes}")
            return super().build(spec, state)

    message = str(pytest.raises(AdapterError, validate_implementation, FixedSizes()).value)
    assert "with 1 hidden layer (3-5-2) too" in message and "\"architectures\": [(784, 30, 10)]" in message
    fixed = FixedSizes()
    fixed.capabilities = {"architectures": [(784, 30, 10)]}
    assert validate_implementation(fixed).architecture.case_sizes() == (784, 30, 10)


def test_a_default_network_keeps_the_default_architecture():
    caps = validate_implementation(UserImplementation())
    assert caps.is_everything and caps.architecture == Architecture() and RunPlan(capabilities=None).sizes == CASE_SIZES


def test_the_fixed_size_worked_example_is_checked_at_784_30_10_and_its_fix_passes():
    impl, caps = load_implementation(f"{COLUMNS}:make_fixed")
    records, _ = run_matrix(impl, RunPlan(capabilities=caps), not_implemented=[])
    assert {r.sizes for r in records} == {"784-30-10"}
    assert {r.batch for r in records if r.check == "gradient"} == {"random", "kink", "large_logits"}
    assert {r.check for r in records} >= {"forward", "loss", "gradient", "inputs", "training_step", "final_params"}
    assert all(r.status == "pass" for r in records), [(r.check, r.param, r.batch) for r in records
                                                      if r.status != "pass"]


def test_the_fixed_size_worked_example_fails_exactly_on_its_biases_and_its_loss():
    impl, caps = load_implementation(f"{COLUMNS}:make_implementation")  # accepted: the shapes are its bug
    records = check_case(impl, Case("relu", "softmax", "cross_entropy", "mean", "float64"), diagnose=False,
                         sizes=caps.architecture.case_sizes())
    failed = {(r.check, r.param) for r in records if r.status == "fail"}
    assert failed == {("loss", "loss"), ("gradient", "layers.0.bias"), ("gradient", "layers.1.bias")}
    bias = next(r for r in records if r.param == "layers.0.bias" and r.status == "fail")
    assert bias.note == "layers.0.bias: implementation gave shape (1,), torch (30,)"


def test_the_row_worked_example_fails_on_its_inputs_and_its_training_only():
    impl, caps = load_implementation(f"{ROWS}:make_implementation")
    assert caps.architecture.case_sizes() == (5, 7, 4)
    records, _ = run_matrix(impl, RunPlan(capabilities=caps), not_implemented=[])
    failed = {r.check for r in records if r.status == "fail"}
    assert failed == {"inputs", "training_step", "final_params"}  # one call's gradients are right
    assert all("loss_and_grads(x, y) modified x in place" in r.note for r in records
               if r.check == "inputs" and r.status == "fail")
    fixed, caps = load_implementation(f"{ROWS}:make_fixed")
    records, _ = run_matrix(fixed, RunPlan(capabilities=caps), not_implemented=[])
    assert records and all(r.status == "pass" for r in records)


def _wrong_bias_shape(grads, x):
    return {k: (np.sum(g) if k == "layers.0.bias" else g) for k, g in grads.items()}


def test_a_gradient_of_the_wrong_shape_is_a_failing_comparison_not_an_adapter_error():
    impl = UserImplementation("scalar-bias", grads_hook=None)
    impl.build = lambda spec, state: _ScalarBias(UserImplementation().build(spec, state).network, None, 1.0)
    validate_implementation(impl)  # no AdapterError
    records = check_case(impl, Case("tanh", "softmax", "cross_entropy", "mean", "float64"), diagnose=False)
    failed = {(r.check, r.param) for r in records if r.status == "fail"}
    assert failed == {("gradient", "layers.0.bias")}
    assert all(r.note == "layers.0.bias: implementation gave shape (), torch (7,)"
               for r in records if r.status == "fail")


class _ScalarBias(UserModel):
    def loss_and_grads(self, x, y):
        loss, grads = super().loss_and_grads(x, y)
        return loss, _wrong_bias_shape(grads, x)


def test_the_kink_batch_puts_hidden_pre_activations_exactly_at_zero():
    spec = ModelSpec((5, 7, 6, 4), hidden="relu", output="softmax", loss="cross_entropy", seed=0)
    x, y = make_batch(spec, 8, seed=0)
    state, xs, _ = kink_problem(spec, initial_state(spec), x, y)
    model = build_torch_model(spec, state)
    model(to_tensor(xs, "cpu"))
    for k in range(2):  # both hidden layers, on the zero rows
        z = model.trace[k][1].detach().numpy()
        assert np.all(z[::2] == 0) and np.any(z[1::2] != 0)


def test_the_large_logit_batch_reaches_the_promised_logit():
    spec = ModelSpec((5, 7, 4), hidden="tanh", output="softmax", loss="cross_entropy", seed=0)
    x, y = make_batch(spec, 8, seed=0)
    state, xs, _ = large_logit_problem(spec, initial_state(spec), x, y)
    z, _ = build_torch_model(spec, state)(to_tensor(xs, "cpu"))
    assert float(z.detach().abs().max()) == pytest.approx(LARGE_LOGIT, rel=1e-12)


def test_the_first_screen_says_which_tensor_fails_on_which_batch():
    from scratchnet_reference.reports.frames import records_frame
    from scratchnet_reference.reports.summaries import parameters_table

    impl = UserImplementation("scalar-bias")
    impl.build = lambda spec, state: _ScalarBias(UserImplementation().build(spec, state).network, None, 1.0)
    records = check_case(impl, Case("tanh", "softmax", "cross_entropy", "mean", "float64"), diagnose=False)
    records += check_case(UserImplementation(), Case("tanh", "softmax", "mse", "mean", "float64"), diagnose=False)
    table = parameters_table(records_frame(records))
    assert list(table.columns) == ["row", "inputs", "output", "loss", "layers.0.weight", "layers.0.bias",
                                   "layers.1.weight", "layers.1.bias", "layers.2.weight", "layers.2.bias"]
    assert list(table["row"]) == ["tanh,tanh → softmax + cross_entropy (mean, modular)",
                                  "tanh,tanh → softmax + cross_entropy (mean, fused)"]  # the passing case: no row
    assert set(table["layers.0.bias"]) == {"fail"}
    assert {v for c in table.columns[1:] if c != "layers.0.bias" for v in table[c]} == {"pass"}


@pytest.mark.parametrize("bug, case, batch", [
    ("SoftmaxWithoutMax", Case("tanh", "softmax", "mse", "mean", "float64"), "large_logits"),
    ("ReLUPrimeOneAtZero", Case("relu", "identity", "mse", "mean", "float64"), "kink"),
])
def test_the_run_itself_reaches_overflow_and_kinks(bug, case, batch):
    """Two bugs invisible on ordinary data (test_teeth.test_some_bugs_hide_on_ordinary_data) fail the
    matrix case itself, in the batch made for them only."""
    from ..conformance import test_teeth

    impl = UserImplementation(bug, network_factory=test_teeth.every(getattr(test_teeth, bug)))
    records = check_case(impl, case, diagnose=False)
    assert {r.batch for r in records if r.status == "fail"} == {batch}


@pytest.mark.parametrize("example", ["mnist_columns", "mnist_rows"])
def test_the_worked_examples_report_exactly_their_planted_causes(example):
    import importlib

    from scratchnet_reference.diagnosis.causes import group

    impl, caps = load_implementation(f"examples.{example}.adapter:make_implementation")
    records, _ = run_matrix(impl, RunPlan(capabilities=caps), not_implemented=[])
    listed = {(c.kind, ", ".join(sorted(c.where.split(", ")))) for c, _, _ in group(records)}
    expected = importlib.import_module(f"examples.{example}.adapter").EXPECTED_ROOT_CAUSES
    assert listed == {(k, ", ".join(sorted(w.split(", ")))) for k, w in expected}
    assert all(r.diagnosis for r in records if r.status == "fail"), "a failing record without its cause"


def test_a_network_that_zeroes_its_labels_fails_with_the_in_place_cause():
    from scratchnet_reference.diagnosis.causes import decode

    from .test_boundary import _implementation

    records = check_case(_implementation("y"), Case("relu", "softmax", "cross_entropy", "mean", "float64"))
    causes = {(c.kind, c.what) for r in records if r.status == "fail" for c in decode(r.diagnosis)}
    assert causes == {("input_modified", "your loss_and_grads(x, y) modified y in place")}


def test_torchs_minus_zero_reads_zero():
    from scratchnet_reference.diagnosis.catalogue import BY_KEY

    assert "relu'(0) = 0 " in BY_KEY["kink"].right_for("relu", -0.0)



class _TutorialSoftmaxWithANanGuard(columns_network.TwoLayerNet):
    """The worked 784-30-10 column network with the softmax of the tutorial it comes from (no max
    subtracted) and a learner's guard on the cost: right on ordinary batches, it raises on large logits."""

    def softmax(self, Z):
        return np.exp(Z) / np.sum(np.exp(Z), axis=0)

    def cost(self, Y):
        cost = -np.sum(self.one_hot(Y) * np.log(self.A2)) / Y.size
        if np.isnan(cost):
            raise ValueError("cost is nan: lower the learning rate")
        return cost


class _TutorialModel(columns.FixedModel):
    module = SimpleNamespace(TwoLayerNet=_TutorialSoftmaxWithANanGuard)


def tutorial_softmax():
    """``make_implementation`` of :class:`_TutorialSoftmaxWithANanGuard` (784-30-10, declared)."""
    return styles.Implementation("tutorial-softmax", _TutorialModel, columns.CAPABILITIES)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # as in a notebook: the learner's guard raises, not pytest
def test_the_rows_of_a_job_that_raised_describe_the_architecture_that_was_checked():
    """A 784-30-10 network that raises on the large-logit batch: its error rows are the 784-30-10 model
    (one hidden layer) it was checked as, not the default 5-7-6-4 one."""
    result = check_network(tutorial_softmax)
    errors = [r for r in result.records if r.param == "error"]
    assert result.errors and errors, result.render()
    assert all("ValueError: cost is nan" in r.note for r in errors), {r.note for r in errors}
    assert {(r.sizes, r.hidden) for r in errors} == {("784-30-10", "relu")}, result.render()


def test_the_pytest_form_names_a_raising_job_with_the_architecture_it_checked(run_pytest, tmp_path):
    code, out = run_pytest("--pyargs", "scratchnet_reference.conformance.tests", "--scratchnet-impl",
                           "tests.byo.test_architecture:tutorial_softmax", "--scratchnet-timeout", "60", "-k",
                           "relu-softmax-cross_entropy-mean-float64")
    assert code == 1, out[-3000:]
    records = read_records(tmp_path / "pytest-reports" / "records.csv")
    errors = records[records["param"] == "error"]
    assert len(errors) and set(errors["sizes"]) == {"784-30-10"} and set(errors["hidden"]) == {"relu"}, out[-3000:]
