"""The adapter protocol: a well-formed outside implementation is accepted with its capabilities,
and every malformed one is refused with a message that says exactly what is missing — from
``validate_implementation``, from ``--impl`` on the CLI and from ``--scratchnet-impl`` under pytest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scratchnet_reference import cli
from scratchnet_reference.core.adapter import AdapterError, Capabilities, load_implementation, validate_implementation

from scratchnet import Network

from .impls import RESTRICTED, UserImplementation


class Model:
    """A correct model (scratchnet behind the protocol), the base the broken ones change."""

    def __init__(self, spec, state):
        self.net = Network(spec)
        self.net.load_state_dict(state)

    def forward(self, x):
        return self.net.forward(x)

    def loss_and_grads(self, x, y):
        return self.net.loss_and_grads(x, y)

    def load_state_dict(self, state):
        self.net.load_state_dict(state)

    def state_dict(self):
        return self.net.state_dict()


class Impl:
    name = "mine"
    model = Model

    def build(self, spec, state):
        return self.model(spec, state)


def impl_with(model=None, **attrs):
    """An ``Impl`` subclass whose model is ``model`` and with class attributes ``attrs``."""
    body = dict(attrs)
    if model is not None:
        body["model"] = model
    return type("MyNet", (Impl,), body)()


def model_with(**methods):
    return type("MyModel", (Model,), methods)


class NoBuild:
    name = "x"


class BuildNotCallable:
    name = "x"
    build = 3


class BuildOneArgument:
    name = "x"

    def build(self, spec):
        return None


class NoName:
    def build(self, spec, state):
        return Model(spec, state)


class NoLossAndGrads:
    def __init__(self, spec, state):
        self.inner = Model(spec, state)

    def forward(self, x):
        return self.inner.forward(x)

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


def _renamed(self, x, y):
    loss, grads = Model.loss_and_grads(self, x, y)
    return loss, {f"{'W' if k.endswith('weight') else 'b'}{int(k.split('.')[1]) + 1}": g for k, g in grads.items()}


def _per_sample_loss(self, x, y):
    _, grads = Model.loss_and_grads(self, x, y)
    return np.ones(len(x)), grads


MALFORMED = [
    (NoBuild(), "NoBuild.build missing: def build(self, spec, state)"),
    (BuildNotCallable(), "BuildNotCallable.build is not callable"),
    (BuildOneArgument(), "BuildOneArgument.build must take (spec, state)"),
    (NoName(), "NoName.name missing"),
    (Impl, "got the class Impl, not an implementation object"),
    (impl_with(NoLossAndGrads), "model returned by MyNet.build() (NoLossAndGrads) has no loss_and_grads(x, y)"),
    (impl_with(model_with(__init__=lambda self, spec, state: None, forward=None)), "has no forward(x)"),
    (type("MyNet", (Impl,), {"build": lambda self, spec, state: None})(), "MyNet.build(spec, state) returned None"),
    (impl_with(model_with(loss_and_grads=_renamed)),
     "grads keyed ['W1', 'b1', 'W2', 'b2', 'W3', 'b3'], expected ['layers.0.weight', 'layers.0.bias'"),
    (impl_with(model_with(loss_and_grads=_per_sample_loss)), "an array of shape (6,): reduce it to one number"),
    (impl_with(model_with(loss_and_grads=lambda self, x, y: Model.loss_and_grads(self, x, y)[1])),
     "must return a pair (loss, grads), got dict"),
    (impl_with(model_with(loss_and_grads=lambda self, x, y: (0.0, list(Model.loss_and_grads(self, x, y)[1].values())))),
     "grads a dict {name: array} keyed like the state"),
    (impl_with(model_with(forward=lambda self, x: Model.forward(self, x).T)),
     "forward(x) returned shape (2, 6), expected (N, C) = (6, 2) — transposed: batches are rows"),
    (impl_with(model_with(__init__=lambda self, spec, state: setattr(self, "net", Network(spec.replace(seed=99))))),
     "is not the weight given to build()"),
    (impl_with(capabilities={"activations": ["relu", "softmx"]}), "unknown name(s) ['softmx']"),
    (impl_with(capabilities={"activation": ["relu"]}), "unknown key(s) ['activation']"),
    (impl_with(capabilities={"optimizers": ["sgd"]}), "declare optimizers ['sgd'], but the model (Model) has no "
                                                      "configure_optimizer(spec), step()"),
]


@pytest.mark.parametrize("obj, expected", MALFORMED, ids=[m[1][:48] for m in MALFORMED])
def test_a_malformed_adapter_is_refused_saying_what_is_missing(obj, expected):
    with pytest.raises(AdapterError) as info:
        validate_implementation(obj)
    assert expected in str(info.value), str(info.value)
    assert "does not follow the adapter protocol" in str(info.value)


def test_every_problem_is_listed_at_once():
    class Bare:
        capabilities = {"losses": ["crossentropy"]}

    message = str(pytest.raises(AdapterError, validate_implementation, Bare()).value)
    assert "Bare.name missing" in message and "Bare.build missing" in message and "['crossentropy']" in message


def test_a_well_formed_adapter_is_accepted_with_its_capabilities():
    caps = validate_implementation(UserImplementation("restricted", capabilities=RESTRICTED))
    assert caps.hidden == {"relu", "tanh"} and caps.outputs == {"softmax"} and caps.dtypes == {"float64"}
    assert caps.training == "" and caps.optimizer_options == frozenset()
    assert validate_implementation(UserImplementation()).is_everything  # nothing declared: everything


def test_a_model_without_step_has_its_training_not_implemented():
    caps = validate_implementation(Impl())  # no configure_optimizer/step, no optimizers declared
    assert "has no configure_optimizer(spec), step()" in caps.training
    assert caps.missing_for_training("sgd", "float64") == caps.training


def test_load_implementation_resolves_modules_files_classes_and_factories(tmp_path, monkeypatch):
    impl, caps = load_implementation("tests.byo.impls:restricted")
    assert impl.name == "restricted" and caps.outputs == {"softmax"}
    impl, _ = load_implementation("examples/textbook_net/adapter.py:make_implementation")
    assert impl.name == "textbook-net"
    impl, _ = load_implementation("examples.textbook_net.adapter:TextbookImplementation")  # a class
    assert impl.name == "textbook-net"
    (tmp_path / "myadapter.py").write_text("from tests.byo.impls import UserImplementation\n"
                                           "IMPL = UserImplementation('file-impl')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    impl, caps = load_implementation("myadapter:IMPL")  # the current directory is importable
    assert impl.name == "file-impl" and caps.is_everything


@pytest.mark.parametrize("text, expected", [
    ("tests.byo.impls", "must look like 'package.module:factory'"),
    ("no_such_module_xyz:make", "cannot import 'no_such_module_xyz' (ModuleNotFoundError"),
    ("tests.byo.impls:nothing_here", "tests.byo.impls has no 'nothing_here'"),
    ("missing/adapter.py:make", "no file missing/adapter.py"),
])
def test_a_bad_impl_argument_is_explained(text, expected):
    with pytest.raises(AdapterError) as info:
        load_implementation(text)
    assert expected in str(info.value)


def test_cli_run_refuses_a_malformed_adapter_with_exit_2(capsys):
    code = cli.main(["run", "--impl", "examples/adapter_template.py:make_implementation", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "MyImplementation.build raised NotImplementedError" in err and "TODO" in err


def test_pytest_refuses_a_malformed_adapter_before_collecting(run_pytest):
    code, out = run_pytest("--pyargs", "scratchnet_reference.conformance.tests", "--scratchnet-impl",
                           "tests.byo.test_adapter:NoBuild", timeout=120)
    assert code == 4, out  # pytest's usage error
    assert "NoBuild.build missing" in out and "Traceback" not in out


def test_capabilities_say_what_is_missing():
    caps = Capabilities.from_declaration(RESTRICTED)
    assert caps.missing(hidden=["relu", "gelu"], output="sigmoid", loss="mse", reduction="sum",
                        dtype="float32") == ("hidden activation gelu, output activation sigmoid, loss mse, "
                                             "reduction sum, dtype float32")
    assert caps.missing(hidden=["tanh"], output="softmax", loss="cross_entropy", dtype="float64") == ""
    assert caps.missing_for_optimizer("sgd_momentum") == "sgd option dampening, momentum"
    assert caps.missing_for_optimizer("adam") == "optimizer adam"


def test_exposed_ops_are_checked_with_everything_wrong_listed():
    from . import strangers

    assert validate_implementation(strangers.LayerNetAdapter(), smoke=False) is not None

    class Loose(strangers.LayerNetAdapter):
        def build(self, spec, state):  # no ops=: the ops cannot be swapped
            return super().build(spec, state)

    impl = Loose()
    impl.ops = {"relu": strangers.relu, "relu_backwards": strangers.relu_backward, "mse_grad": 2.0}
    with pytest.raises(AdapterError) as info:
        validate_implementation(impl, smoke=False)
    text = str(info.value)
    assert "ops['relu_backwards']: not an op name (did you mean relu_backward" in text
    assert "ops['mse_grad'] is not callable (float)" in text
    assert "build must take ops=None to expose ops" in text
