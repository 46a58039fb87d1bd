"""The term-scale recursion through the layers after a dense one (``compare._abs_backward``): dropout
passes ``e·m/(1 − p)``; batch norm gives ``|γ|/√(var + ε)`` times its absolute backward terms and the term
sums ``Σ|e||x̂|`` (γ) and ``Σ|e|`` (β), a non-finite ``x̂`` contributing nothing. Checked against the
formulas evaluated in float64 by hand."""

from __future__ import annotations

import numpy as np
from scratchnet_reference.core.compare import _abs_backward
from scratchnet_reference.core.torch_import import torch_module
from scratchnet_reference.core.torch_model import _replay_dropout_class

torch = torch_module()  # configured by the harness

E = torch.tensor([[0.5, 2.0], [1.0, 0.25], [3.0, 1.5]], dtype=torch.float64)


def test_dropout_passes_the_kept_terms_scaled_by_one_over_keep():
    drop = _replay_dropout_class()(0.5)
    drop.mask = torch.tensor([[True, False], [False, True], [True, True]])
    got = _abs_backward(drop, None, E, {}, "dropout")
    assert np.array_equal(got.numpy(), E.numpy() * drop.mask.numpy() / 0.5)
    assert np.all(np.isfinite(got.numpy()))  # a dropped unit is 0, not e/0
    drop.eval()
    assert _abs_backward(drop, None, E, {}, "dropout") is E


def test_batch_norm_in_training_uses_var_plus_eps_even_below_eps():
    """A column whose batch variance (1e-6) is below ε = 1e-5: √(var + ε), never √(var − ε) (NaN)."""
    bn = torch.nn.BatchNorm1d(2, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([-2.0, 0.5], dtype=torch.float64))
    inp = torch.tensor([[0.0, 1.0], [1e-3, -1.0], [2e-3, 3.0]], dtype=torch.float64)
    x, e = inp.numpy(), E.numpy()
    inv_std = 1.0 / np.sqrt(x.var(axis=0) + 1e-5)
    xhat = np.abs((x - x.mean(axis=0)) * inv_std)
    scales: dict[str, float] = {}
    with torch.no_grad():  # as _gradient_term_scales calls it
        got = _abs_backward(bn, inp, E, scales, "batch_norms.0").numpy()
    want = np.array([2.0, 0.5]) * inv_std * (e + e.mean(axis=0) + xhat * (e * xhat).mean(axis=0))
    np.testing.assert_allclose(got, want, rtol=1e-13)
    np.testing.assert_allclose(scales["batch_norms.0.weight"], (e * xhat).sum(axis=0).max(), rtol=1e-13)
    assert scales["batch_norms.0.bias"] == e.sum(axis=0).max()


def test_batch_norm_in_evaluation_counts_no_term_of_an_infinite_input():
    """Running statistics (mean 0, var 1): an infinite input's |x̂| is infinite, and counts 0 in Σ|e||x̂|."""
    bn = torch.nn.BatchNorm1d(2, dtype=torch.float64).eval()
    inp = torch.tensor([[np.inf, 0.1], [2.0, -0.1], [-1.0, 0.1]], dtype=torch.float64)
    scales: dict[str, float] = {}
    with torch.no_grad():
        got = _abs_backward(bn, inp, E, scales, "batch_norms.1").numpy()
    inv_std = 1.0 / np.sqrt(1.0 + 1e-5)
    np.testing.assert_allclose(got, E.numpy() * inv_std, rtol=1e-15)
    # column 0 (the largest): rows 1 and 2 only, (1·2 + 3·1)·inv_std; column 1: (2 + 0.25 + 1.5)·0.1·inv_std
    np.testing.assert_allclose(scales["batch_norms.1.weight"], 5.0 * inv_std, rtol=1e-15)
    assert scales["batch_norms.1.bias"] == 4.5
