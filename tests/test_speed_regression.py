"""The speed regression check (``python -m benchmarks.speed_check``, run by ``.ci/run``) can fail.

Its decision rule is tested on given numbers; then a 4× slowdown is planted in scratchnet's step
(the real step run four times) and the real measurement must flag it against a baseline
measured just before. The check compares scratchnet/torch ratios measured in one process, never absolute
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


def test_a_planted_4x_slowdown_fails_the_check(monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("threadpoolctl")
    real = speed_check.make_scratchnet

    def four_times_slower(case):
        net, step = real(case)

        def slow_step():
            for _ in range(3):
                step()
            return step()

        return net, slow_step

    row = "tiny 8-8-8-2 b1 float32 sgd"
    # The baseline is this machine's ratio now, not the committed one: a committed ratio measured on
    # another day can sit 15 % above today's (0.214 vs 0.18). And 4×, not 3×: the tiny row's ratio
    # moves by up to 1.5× between 0.2 s measurements here, so a planted 3× came back within the 2×
    # limit in 2 of ~20 runs (measured against the committed and the fresh baseline alike).
    with speed_check.threads_set(speed_check.THREADS):
        baseline = speed_check.measure_ratio(speed_check.ROWS[row], budget_s=0.2)
    monkeypatch.setattr(speed_check, "make_scratchnet", four_times_slower)
    [verdict] = speed_check.check({row: baseline}, budget_s=0.2)
    assert verdict.failed, verdict.line()
    assert all(r > speed_check.LIMIT * baseline for r in verdict.measured)
