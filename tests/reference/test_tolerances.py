"""The tolerance table's rules, pinned by value: the training tolerance grows by the documented
``1 + TRAINING_GROWTH·t`` (not shrinks, not faster), the absolute floor scales with the magnitude, an
unknown key is refused by name."""

from __future__ import annotations

import pytest
from scratchnet_reference.core.tolerances import (
    FD_TOLERANCES,
    TOLERANCES,
    TRAINING_GROWTH,
    Tolerance,
    tolerance,
    training_tolerance,
)


def test_training_growth_is_the_documented_half_per_step():
    assert TRAINING_GROWTH == 0.5


@pytest.mark.parametrize("key", sorted(TOLERANCES), ids="-".join)
@pytest.mark.parametrize("step", [0, 1, 2, 7, 40])
def test_training_tolerance_grows_by_one_plus_half_t(key, step):
    """rtol(t) = rtol·(1 + 0.5·t) and atol(t) = atol·(1 + 0.5·t): equal to the table at step 0, twice it
    at step 2, 21× at step 40 — a tolerance that shrank with the step, grew faster or slower, or grew
    only one of the two would differ here."""
    base = TOLERANCES[key]
    grown = training_tolerance(*key, step)
    factor = 1 + 0.5 * step
    assert grown.rtol == pytest.approx(base.rtol * factor, rel=1e-15)
    assert grown.atol == pytest.approx(base.atol * factor, rel=1e-15)
    assert isinstance(grown, Tolerance)


def test_training_tolerance_never_shrinks_and_is_monotone():
    previous = None
    for step in range(0, 50):
        tol = training_tolerance("float32", "training_step", step)
        assert tol.rtol >= TOLERANCES[("float32", "training_step")].rtol
        if previous is not None:
            assert tol.rtol > previous.rtol and tol.atol > previous.atol
        previous = tol


def test_tolerance_returns_the_table_entry():
    for key, value in TOLERANCES.items():
        assert tolerance(*key) is value


@pytest.mark.parametrize("dtype, check", [("float16", "forward"), ("float32", "gradients"), ("", "")])
def test_an_unknown_tolerance_is_refused_by_name(dtype, check):
    with pytest.raises(ValueError) as info:
        tolerance(dtype, check)
    message = str(info.value)
    assert message.startswith(f"no tolerance for dtype {dtype!r} and check {check!r}; known: ")
    assert str(sorted(TOLERANCES)) in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(ValueError, match="no tolerance for dtype"):
        training_tolerance(dtype, check, 3)


@pytest.mark.parametrize("scale, factor", [(0.0, 1.0), (0.25, 1.0), (1.0, 1.0), (3.0, 3.0), (1e4, 1e4)])
def test_the_absolute_floor_scales_with_magnitudes_above_one(scale, factor):
    tol = Tolerance(rtol=1e-5, atol=2e-6)
    assert tol.atol_for(scale) == 2e-6 * factor


def test_fd_tolerances_are_the_documented_ones():
    """float64: what central differences in float64 resolve (rtol 1e-5, atol 1e-6); float32: the
    float32 gradient comparison's own tolerance."""
    assert FD_TOLERANCES["float64"] == Tolerance(rtol=1e-5, atol=1e-6)
    assert FD_TOLERANCES["float32"] is TOLERANCES[("float32", "gradient")]


def test_float32_tolerances_are_looser_than_float64():
    for (dtype, check), tol in TOLERANCES.items():
        if dtype == "float32":
            other = TOLERANCES[("float64", check)]
            assert tol.rtol > other.rtol and tol.atol > other.atol
