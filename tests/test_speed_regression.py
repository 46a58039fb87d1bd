"""The speed regression check (``python -m benchmarks.speed_check``, run by ``.ci/run``) can fail.

Its decision rule is tested on given numbers; then a 3× slowdown is planted in scratchnet's step
(the real step run three times) and the real measurement must flag it against the committed
baseline. The check compares scratchnet/torch ratios measured in one process, never absolute
times. The planted run sets torch's thread count; ``threads_set`` restores it afterwards.
"""

import pytest

from benchmarks import speed_check


def _verdict(ratios, baseline=0.5):
    it = iter(ratios)
    return speed_check.judge("row", baseline, lambda: next(it), limit=2.0, tries=2)


def test_one_slow_measurement_is_measured_again_and_passes_if_the_second_is_fine():
    v = _verdict([1.2, 0.6])
    assert not v.failed and v.measured == (1.2, 0.6)


def test_two_consecutive_slow_measurements_fail():
    v = _verdict([1.2, 1.1])
    assert v.failed and v.measured == (1.2, 1.1)
    assert "SLOWER" in v.line()


def test_a_row_within_the_limit_is_measured_once():
    v = _verdict([0.99, 5.0])
    assert not v.failed and v.measured == (0.99,)


def test_the_baseline_names_only_rows_of_the_check():
    baseline = speed_check.load_baseline()
    assert set(baseline) == set(speed_check.ROWS)
    assert all(0 < r < 5 for r in baseline.values())
    with pytest.raises(KeyError, match="not rows of the check"):
        speed_check.check({"no such row": 1.0})


def test_a_planted_3x_slowdown_fails_the_check(monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("threadpoolctl")
    real = speed_check.make_scratchnet

    def three_times_slower(case):
        net, step = real(case)

        def slow_step():
            step()
            step()
            return step()

        return net, slow_step

    monkeypatch.setattr(speed_check, "make_scratchnet", three_times_slower)
    row = "tiny 8-8-8-2 b1 float32 sgd"
    baseline = speed_check.load_baseline()[row]
    [verdict] = speed_check.check({row: baseline}, budget_s=0.2)
    assert verdict.failed, verdict.line()
    assert all(r > speed_check.LIMIT * baseline for r in verdict.measured)
