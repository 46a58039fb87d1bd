"""The log axes of the plots fit their data: a failing run's ratios far above the tolerance and
the tolerance line itself are on the axis (they used to be cut at 10)."""

from __future__ import annotations

import math

import numpy as np
from scratchnet_reference.reports.plots import FLOOR, _log_limits


def test_a_failing_runs_ratios_are_on_the_axis():
    lo, hi = _log_limits(np.array([3e-6, 2.2e10, math.inf, math.nan]))
    assert lo <= 3e-6 and hi >= 2.2e10 and lo < 1 < hi


def test_a_passing_run_keeps_the_tolerance_line_and_the_floor():
    lo, hi = _log_limits(np.array([0.0, 1e-12, 1e-3]))
    assert lo == FLOOR and hi == 10.0
