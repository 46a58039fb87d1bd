"""Batch norm and dropout against torch: the twin's names, the replayed mask bit for bit, the
matrix's layered cases passing, and the comparison's teeth — each classic mistake planted in
scratchnet's layers makes the records it should fail, fail."""

from __future__ import annotations

import numpy as np
import pytest
from scratchnet_reference import ScratchnetImplementation
from scratchnet_reference.conformance.runner import case_state, check_case, check_training, layered_training_spec
from scratchnet_reference.core.matrix import Case
from scratchnet_reference.core.torch_model import build_torch_model, set_dropout_masks, torch_state_to_numpy

from scratchnet import BatchNorm1d, Dropout, ModelSpec, Network


def test_twin_names_are_scratchnets_and_the_buffers_come_back_exactly(torch):
    spec = ModelSpec((4, 6, 5, 3), hidden="relu", output="softmax", loss="cross_entropy", seed=1,
                     after_hidden=[["batch_norm", {"name": "dropout", "p": 0.5}], ["dropout"]])
    state = case_state(spec, seed=1)
    model = build_torch_model(spec, state)
    assert list(dict(model.named_parameters())) == list(spec.parameter_shapes())
    back = torch_state_to_numpy(model)
    assert set(back) == set(state)
    for name, value in state.items():
        assert np.array_equal(back[name], value), name


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_replayed_mask_gives_scratchnets_dropout_bit_for_bit(dtype, torch):
    spec = ModelSpec((3, 40, 2), hidden="identity", output="identity", loss="mse", dtype=dtype,
                     after_hidden={"name": "dropout", "p": 0.3})
    model = build_torch_model(spec, Network(spec).state_dict())
    x = np.random.default_rng(0).normal(size=(16, 40)).astype(dtype)
    ours = Dropout(40, dtype, p=0.3, rng=np.random.default_rng(3))
    y = ours.forward(x, training=True)
    set_dropout_masks(model, {"dropouts.0": ours.mask})
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = model.dropouts["0"](xt)
    assert np.array_equal(yt.detach().numpy(), y)
    g = np.random.default_rng(1).normal(size=x.shape).astype(dtype)
    yt.backward(torch.from_numpy(g))
    assert np.array_equal(xt.grad.numpy(), ours.backward(g.copy()))


LAYERED = [Case("relu", "softmax", "cross_entropy", "mean", dtype, after, mode)
           for dtype in ("float64", "float32") for after in ("batch_norm", "dropout", "batch_norm+dropout")
           for mode in ("train", "eval")]


@pytest.mark.parametrize("case", LAYERED, ids=lambda c: c.id)
def test_layered_cases_pass_and_compare_the_running_statistics(case, correct_impl):
    records = check_case(correct_impl, case)
    assert records and all(r.status == "pass" for r in records), [
        (r.param, r.tol_ratio, r.note) for r in records if r.status != "pass"]
    params = {r.param for r in records}
    assert {"output", "loss", "layers.0.weight"} <= params
    if "batch_norm" in case.after:
        assert {"batch_norms.1.weight", "batch_norms.1.running_var"} <= params
    assert all(r.hidden.endswith(f"[{case.mode}]") for r in records)


# -- teeth: the classic mistakes, planted -----------------------------------------------------
class _NaiveBackward(BatchNorm1d):
    """dx = dy·γ/σ: the backward that ignores how μ and σ depend on x."""

    def backward(self, dy, overwrite_dy=False):
        naive = dy * self.weight * self._inv_std
        super().backward(dy)
        return naive


class _BiasedRunningVar(BatchNorm1d):
    def forward(self, x, training=True):
        var = self.running_var.copy()
        y = super().forward(x, training)
        if training:  # np.var's default: the biased variance
            self.running_var[...] = (1 - self.momentum) * var + self.momentum * x.var(axis=0)
        return y


class _OtherMomentum(BatchNorm1d):
    """Keras' convention: running = m·running + (1 − m)·batch with torch's m = 0.1."""

    def forward(self, x, training=True):
        mean = self.running_mean.copy()
        y = super().forward(x, training)
        if training:
            self.running_mean[...] = self.momentum * mean + (1 - self.momentum) * x.mean(axis=0)
        return y


class _EpsOutside(BatchNorm1d):
    def forward(self, x, training=True):
        y = super().forward(x, training)
        if training:  # x̂ = (x − μ)/(σ_b + ε) instead of (x − μ)/√(σ_b² + ε)
            sigma = x.std(axis=0)
            self._inv_std = (1 / (sigma + self.eps)).astype(x.dtype)
            self._alpha = self.weight * self._inv_std
            self._xhat[...] = x - x.mean(axis=0)         # centred: backward normalises it
            y[...] = self._xhat * self._alpha + self.bias
        return y


class _NotScaled(Dropout):
    @property
    def scale(self):
        return self.dtype.type(1.0)


class _DropsInEval(Dropout):
    def forward(self, x, training=True):
        return super().forward(x, True)


def planted(cls):
    def factory(spec):
        net = Network(spec)
        for extras in net.after:
            for layer in extras:
                if isinstance(layer, cls.__mro__[1]):
                    layer.__class__ = cls
        return net
    return ScratchnetImplementation(name=cls.__name__, network_factory=factory)


@pytest.mark.parametrize("cls,after,mode,fails", [
    (_NaiveBackward, "batch_norm", "train", "layers.0.weight"),
    (_BiasedRunningVar, "batch_norm", "train", "batch_norms.0.running_var"),
    (_OtherMomentum, "batch_norm", "train", "batch_norms.0.running_mean"),
    # with ε = 1e-5 and unit-scale features σ + ε and √(σ² + ε) differ far above float64's tolerance
    (_EpsOutside, "batch_norm", "train", "output"),
    (_NotScaled, "dropout", "train", "output"),
    (_DropsInEval, "dropout", "eval", "output"),
], ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_each_planted_mistake_fails_its_records(cls, after, mode, fails):
    case = Case("tanh", "softmax", "cross_entropy", "mean", "float64", after, mode)
    records = check_case(planted(cls), case, fd="never", diagnose=False)
    failed = {r.param for r in records if r.status == "fail"}
    assert fails in failed, failed


def test_layered_lockstep_training_passes_and_a_planted_mistake_breaks_it(correct_impl):
    spec = layered_training_spec("float64")
    good = check_training(correct_impl, "adam", "mini_batch", "float64", spec=spec)
    assert all(r.status == "pass" for r in good)
    assert {"batch_norms.1.running_mean", "batch_norms.1.running_var"} <= {
        r.param for r in good if r.check == "final_params"}
    bad = check_training(planted(_OtherMomentum), "adam", "mini_batch", "float64", spec=spec)
    assert any(r.status == "fail" for r in bad)
