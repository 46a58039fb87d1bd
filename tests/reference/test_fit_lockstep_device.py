"""``fit_lockstep``'s torch run stays on the device it is given: the model, every tensor it makes (inputs,
targets, batch indices) and the gradients it sets. Checked on torch's ``meta`` device (no data, no GPU
needed): torch's side is observed, and stopped, at the first parameter read-back (a meta tensor has no
values to read)."""

from __future__ import annotations

import numpy as np
import pytest
from scratchnet_reference.core import fit_lockstep as fl

from scratchnet import ModelSpec


class Observed(Exception):
    """Raised by the spy once torch's first step has been seen."""


def test_the_torch_run_puts_model_tensors_and_gradients_on_the_given_device(monkeypatch):
    spec = ModelSpec((3, 5, 2), hidden="tanh", output="softmax", loss="cross_entropy", dtype="float64", seed=4)
    rng = np.random.default_rng(4)
    x = rng.normal(0.0, 2.0, (6, 3))
    y = (x[:, 0] > 0).astype(np.int64)
    made, seen = [], {}
    real_to_tensor = fl.to_tensor

    def to_tensor(*args, **kw):
        t = real_to_tensor(*args, **kw)
        made.append(t.device.type)
        return t

    def forward_backward(model, spec, flavour, xb, tb):  # torch's values are not needed: shapes only
        seen["model"] = {p.device.type for p in model.parameters()}
        seen["batch"] = {xb.device.type, tb.device.type}
        grads = {name: np.ones(tuple(p.shape)) for name, p in model.named_parameters()}
        return _Result(grads)

    def read_back(model):
        seen["grads"] = {p.grad.device.type for p in model.parameters()}
        raise Observed

    monkeypatch.setattr(fl, "to_tensor", to_tensor)
    monkeypatch.setattr(fl, "torch_forward_backward", forward_backward)
    monkeypatch.setattr(fl, "torch_state_to_numpy", read_back)
    with pytest.raises(Observed):
        fl.fit_lockstep(spec, x, y, {"name": "sgd", "lr": 0.1}, batch_size=3, epochs=1, device="meta")
    assert made and set(made) == {"meta"}
    assert seen == {"model": {"meta"}, "batch": {"meta"}, "grads": {"meta"}}


class _Result:
    def __init__(self, grads):
        self.grads, self.loss, self.output = grads, 0.0, np.zeros(1)
