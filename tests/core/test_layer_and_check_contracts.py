"""Contracts of BatchNorm1d, Dropout, compare_arrays, the registry and the input checks that the
other core tests leave unpinned: torch's momentum range, arithmetic in the layer's dtype (torch's
float32 kernel rounds its batch sums in float32), dropout's output dtype, compare_arrays on empty,
one-element, zero and integer inputs, and the exact refusal messages."""

import re
import warnings

import numpy as np
import pytest

from scratchnet import BatchNorm1d, Dropout, ModelSpec, Network
from scratchnet.gradcheck import compare_arrays
from scratchnet.registry import CLASS_INDEX_LOSSES, LOSSES, takes_class_indices

LAYERED = dict(hidden="tanh", output="softmax", loss="cross_entropy")


# -- BatchNorm1d ---------------------------------------------------------------------------
@pytest.mark.parametrize("momentum, bound", [(-0.1, ">= 0.0"), (1.5, "<= 1.0")])
def test_batch_norm_momentum_outside_0_1_is_refused_as_torch_weights_the_new_batch(momentum, bound):
    """momentum is the weight of the new batch: only 0 ≤ m ≤ 1 is a running average."""
    with pytest.raises(ValueError, match=f"momentum must be {bound}, got {momentum}"):
        BatchNorm1d(3, momentum=momentum)
    assert BatchNorm1d(3, momentum=0.0).momentum == 0.0 and BatchNorm1d(3, momentum=1.0).momentum == 1.0


def test_float32_batch_norm_sums_the_batch_in_float32_like_torch():
    """A float32 layer rounds its batch sums in float32 (torch 2.13's CPU kernel gives 838860.8125
    here): 2**24 + 1 rounds to 2**24, so μ = 2**23 and running_mean = 0.1f·2**23, not 0.1f·(2**23 + 0.5)."""
    f = np.float32
    bn = BatchNorm1d(1, np.float32)
    bn.running_mean[...] = 0.0
    bn.forward(np.array([[2.0 ** 24], [1.0]], np.float32), training=True)
    assert bn.running_mean.dtype == np.float32
    assert bn.running_mean[0] == f(0.1) * f(2.0 ** 23) == f(838860.8125)


def test_batch_norm_backward_before_any_forward_is_refused_naming_the_shapes():
    """No forward pass yet: backward refuses (ValueError), its message giving the empty (0, 0) work shape."""
    with pytest.raises(ValueError, match=r"^dy must have the shape \(0, 0\) of the last forward pass, got \(2, 3\)$"):
        BatchNorm1d(3).backward(np.ones((2, 3)))


# -- Dropout --------------------------------------------------------------------------------
def test_dropout_output_is_in_the_layers_dtype_whatever_the_input_dtype():
    """Shape: output in the layer's dtype — a float64 batch into a float32 dropout comes out float32,
    scaled by 1/(1 − p) rounded in float32."""
    d = Dropout(4, np.float32, p=0.25, rng=np.random.default_rng(1))
    mask = np.array([[True, False, True, True], [False, True, True, False]])
    d.replay(mask)
    for x in (np.full((2, 4), 3.0, np.float32), np.full((2, 4), 3.0, np.float64)):
        y = d.forward(x, training=True)
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, np.where(mask, np.float32(3.0) * (np.float32(1) / np.float32(0.75)), 0))


def test_zero_feature_dropout_keeps_its_dtype_on_an_empty_batch():
    """A (0, 0) batch into a zero-width float32 dropout: the empty output is still float32."""
    y = Dropout(0, np.float32, p=0.5).forward(np.empty((0, 0), np.float32), training=True)
    assert y.shape == (0, 0) and y.dtype == np.float32


def test_replaying_masks_with_the_wrong_keys_is_refused_naming_the_keys():
    """A mapping with other keys, or no mapping, is a ValueError listing the dropouts' keys."""
    spec = ModelSpec((4, 6, 5, 3), **LAYERED, seed=2, after_hidden={"name": "dropout", "p": 0.3})
    net = Network(spec)
    keys = sorted(net.dropout_layers())
    message = f"masks must be a mapping with exactly the keys {keys}, got ['nope']"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        net.replay_dropout_masks({"nope": np.ones((2, 6), bool)})
    with pytest.raises(ValueError, match=r"exactly the keys .*, got list$"):
        net.replay_dropout_masks([])


# -- compare_arrays -------------------------------------------------------------------------
def test_compare_arrays_of_empty_arrays_passes_with_no_worst_index():
    c = compare_arrays("b", np.empty((0, 3)), np.empty((0, 3)), 1e-6, 1e-9)
    assert (c.max_abs_err, c.max_rel_err, c.tol_ratio, c.worst_index, c.rtol, c.atol) == (0.0, 0.0, 0.0, (), 1e-6, 1e-9)
    assert c.passed


def test_compare_arrays_of_one_element_measures_it():
    c = compare_arrays("b", [1.0], [2.0], 0.0, 0.5)
    assert (c.max_abs_err, c.max_rel_err, c.tol_ratio, c.worst_index) == (1.0, 0.5, 2.0, (0,)) and not c.passed


def test_compare_arrays_relative_error_of_an_exact_zero_is_zero():
    """Where actual == expected == 0 the relative error is 0, not 0/0."""
    c = compare_arrays("w", [0.0, 1.0], [0.0, 1.5], 0.0, 1.0)
    assert c.max_rel_err == 0.5 / 1.5 and c.max_abs_err == 0.5


def test_compare_arrays_measures_integer_expectations_in_float64():
    """|−128| is 128 (int8's own abs would wrap to −128 and make the tolerance negative)."""
    c = compare_arrays("i", np.array([-127.0]), np.array([-128], np.int8), 1e-3, 0.0)
    assert c.max_rel_err == 1 / 128 and c.tol_ratio == 1 / (1e-3 * 128) and not c.passed


# -- registry, spec, input checks -----------------------------------------------------------
def test_takes_class_indices_is_the_losses_per_sample_flag_and_refuses_unknown_names():
    assert takes_class_indices("cross_entropy") and takes_class_indices("nll")
    assert not takes_class_indices("mse")
    assert [n for n in LOSSES if takes_class_indices(n)] == list(CLASS_INDEX_LOSSES)
    with pytest.raises(ValueError, match=r"^unknown loss 'hinge'; valid: "):
        takes_class_indices("hinge")


def test_bad_after_hidden_message_spells_the_accepted_forms():
    with pytest.raises(TypeError, match="each None or a list of layers, got 5$"):
        ModelSpec((3, 5, 2), **LAYERED, after_hidden=5)


def test_opposite_infinities_are_refused_as_not_finite_without_a_floating_point_warning():
    """inf + (−inf) is NaN in the fast sum: that must not surface as an 'invalid value' warning."""
    net = Network(ModelSpec((2, 3, 2), **LAYERED, seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"x must be finite, got inf at index \(0, 0\)"):
            net.forward(np.array([[np.inf, -np.inf]]))


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_fed_its_own_output_normalises_that_output(training):
    """``bn.forward(bn.forward(x))`` (one layer object used twice) equals normalising a copy of the first output:
    the output lives in the layer's work array, which the second pass writes into (found by a surviving mutant:
    ``np.square(centred, out=…)`` overwrote x before it was read again)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 3))
    a, b = BatchNorm1d(3), BatchNorm1d(3)
    first = a.forward(x, training)
    np.testing.assert_array_equal(b.forward(x, training), first)
    expected = b.forward(first.copy(), training)
    np.testing.assert_array_equal(a.forward(first, training), expected)
