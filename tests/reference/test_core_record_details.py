"""Small contracts of the harness's records and reference ops, pinned where mutation testing found them
unpinned (issue 26)."""

from __future__ import annotations

import numpy as np
import pytest
from scratchnet_reference.core.boundary import Call, intact_record
from scratchnet_reference.core.compare import combination
from scratchnet_reference.core.records import vector_agreement
from scratchnet_reference.core.reference_ops import _tensor

from scratchnet import ModelSpec


def test_two_zero_gradients_agree_fully():
    """Equal zero vectors: cosine 1 and norm ratio 1 (not undefined), as for any two equal gradients."""
    assert vector_agreement(np.zeros(3), np.zeros(3)) == {"cosine": 1.0, "norm_ratio": 1.0}


def test_reference_ops_compute_in_float64_whatever_the_learners_dtype():
    """The op-level reference runs torch in float64 on a copy: a float32 (or integer) input is widened, and
    the learner's array is never the tensor's memory."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = _tensor(x)
    assert str(t.dtype) == "torch.float64" and not t.requires_grad
    t.add_(1)
    assert x[0, 0] == 0


@pytest.mark.parametrize("changed", [False, True])
def test_the_inputs_record_is_exact(changed):
    """The ``inputs`` check compares the arguments bit for bit: its record's tolerances are 0 and 0."""
    combo = combination(ModelSpec((3, 4, 2), hidden="tanh"), "modular", "cpu", "mine")
    call = Call(what="forward(x)", result=None, changed={"x": 2.0} if changed else {})
    rec = intact_record(combo, [call], {"device_name": "cpu", "versions": "numpy x"})
    assert (rec.atol, rec.rtol) == (0.0, 0.0) and rec.passed is not changed


def test_an_argument_holding_nan_that_comes_back_unchanged_is_not_modified():
    """The inputs check compares NaN with NaN as equal in float arrays: a learner's function that leaves an
    argument with NaN in it alone has not modified it."""
    from scratchnet_reference.core.boundary import _change

    before = np.array([np.nan, 1.0, -np.inf])
    assert _change(before, before.copy()) == 0.0
    assert _change(before, np.array([np.nan, 2.0, -np.inf])) > 0


def test_a_bias_returned_as_a_column_or_row_gets_the_hint():
    """A 1-D bias gradient returned as (n, 1) or (1, n) is named as a column/row vector."""
    from scratchnet_reference.core.adapter import _shape_hint

    for got in ((5, 1), (1, 5)):
        assert "a column/row vector? return biases and their gradients as 1-D" in _shape_hint("b", got, (5,))
    assert _shape_hint("b", (5, 2), (5,)) == ""


def test_an_unknown_op_with_no_close_name_lists_every_known_op():
    from scratchnet_reference.core.reference_ops import OPS, reference_op

    with pytest.raises(ValueError) as info:
        reference_op("zzqqxxjj")
    assert str(info.value).endswith(f"; known: {', '.join(OPS)}")
