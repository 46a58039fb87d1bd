"""Adapter refusals pinned by mutation testing (issue 26): each message names what the user gave."""

from __future__ import annotations

from pathlib import Path

import pytest
from scratchnet_reference.core.adapter import AdapterError, load_implementation, validate_implementation

from .test_adapter import Impl, model_with


def _raising_loss(self, x, y):
    raise RuntimeError("boom")


def test_a_raising_loss_and_grads_is_reported_with_the_input_width():
    """loss_and_grads raising is reported with the batch it got: x (N, inputs), inputs = sizes[0]
    (3 for the 3-5-4-2 probe spec, whose sizes[1] is 5)."""
    impl = type("MyNet", (Impl,), {"model": model_with(loss_and_grads=_raising_loss)})()
    with pytest.raises(AdapterError) as info:
        validate_implementation(impl)
    text = str(info.value)
    assert "MyModel.loss_and_grads(x, y) raised RuntimeError: boom (x (6, 3), y " in text, text


def test_ops_that_are_not_a_dict_are_refused_naming_their_type():
    """ops given as a list is refused: 'ops must be a dict {op name: function}, got list'."""
    impl = Impl()
    impl.ops = [print]
    with pytest.raises(AdapterError) as info:
        validate_implementation(impl, smoke=False)
    assert "Impl.ops must be a dict {op name: function}, got list" in str(info.value), str(info.value)


ADAPTER = """
from tests.byo.impls import UserImplementation

class CallableImpl(UserImplementation):
    def __call__(self):
        raise AssertionError("an object with build() is the implementation: it must not be called")

IMPL = CallableImpl("callable-impl")

def broken():
    raise RuntimeError("factory failed")
"""


@pytest.fixture
def adapter_dir(tmp_path, monkeypatch):
    (tmp_path / "m26adapter.py").write_text(ADAPTER)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    return tmp_path


def test_a_callable_object_with_build_is_used_as_is_not_called(adapter_dir):
    """--impl naming an object that has build() is the implementation even when it is callable."""
    impl, _ = load_implementation("m26adapter.py:IMPL")
    assert impl.name == "callable-impl"


def test_a_raising_factory_is_an_impl_argument_error(adapter_dir):
    """A factory that raises is refused as an --impl problem (owner '--impl'), naming the call and the error."""
    with pytest.raises(AdapterError) as info:
        load_implementation("m26adapter.py:broken")
    assert info.value.owner == "--impl"
    assert str(info.value).startswith("--impl does not follow the adapter protocol")
    assert "calling broken() raised RuntimeError: factory failed" in str(info.value)


def test_lr_is_not_an_optimizer_option():
    """lr is every optimizer's required rate, not an option an implementation may lack or declare."""
    from scratchnet_reference.core.adapter import Capabilities

    assert "lr" not in Capabilities.everything().optimizer_options
    with pytest.raises(AdapterError, match=r"unknown name\(s\) \['lr'\]"):
        validate_implementation(type("MyNet", (Impl,), {"capabilities": {"optimizer_options": ["lr"]}})(),
                                smoke=False)


def test_optimizer_options_collect_every_registered_optimizer(monkeypatch):
    """The known options are the union over all registered optimizers, not the last one's alone."""
    from scratchnet_reference.core.adapter import Capabilities

    from scratchnet import registry

    class Fancy:
        def __init__(self, params, lr, fanciness=1.0):
            pass

    monkeypatch.setattr(registry, "OPTIMIZERS", {"fancy": Fancy, **registry.OPTIMIZERS})
    options = Capabilities.everything().optimizer_options
    assert "fanciness" in options and {"momentum", "betas", "amsgrad"} <= options


@pytest.mark.parametrize("returned, words", [
    ((1.0, {}, "extra"), "must return a pair (loss, grads), got tuple of length 3"),
    (2.5, "must return a pair (loss, grads), got float"),
])
def test_loss_and_grads_must_return_a_pair(returned, words):
    """A result that is not a 2-sequence is refused, its type (and length, where it has one) named: a
    3-tuple is not a pair, and a bare number has no length to quote."""
    impl = type("MyNet", (Impl,), {"model": model_with(loss_and_grads=lambda self, x, y: returned)})()
    with pytest.raises(AdapterError) as info:
        validate_implementation(impl)
    assert f"MyModel.loss_and_grads(x, y) {words}" in str(info.value), str(info.value)
    if isinstance(returned, float):
        assert "of length" not in str(info.value)
