"""The regression gate: identical reports pass; each planted regression fails naming its row;
broken baselines are errors, never passes."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
from scratchnet_reference.reports.files import read_csv, write_csv
from scratchnet_reference.reports.gate import DEFAULT_FLOORS, GateError, compare_matrices, format_offenders, gate

from .conftest import SMALL_OUTPUTS


def _problems(result) -> list[tuple[str, str, str]]:
    return [(p, r, d) for p, r, d in result.offenders[["problem", "row", "dtype"]].itertuples(index=False)]


def _first(records, **where):
    return next(r for r in records if all(getattr(r, k) == v for k, v in where.items()))


def test_identical_reports_pass(small_records, baseline_dir, write):
    result = gate(write(small_records), baseline_dir)
    assert result.passed, format_offenders(result)
    assert result.compared == result.baseline_rows == result.run_rows > 0


def test_row_order_and_extra_columns_are_ignored(baseline_dir, tmp_path):
    matrix, meta = read_csv(baseline_dir / "matrix.csv")
    shuffled = matrix.sample(frac=1.0, random_state=0).assign(extra="x", note="new column")
    shuffled = shuffled[list(reversed(shuffled.columns))]
    run = tmp_path / "shuffled"
    write_csv(shuffled, run / "matrix.csv", meta)
    assert gate(run, baseline_dir).passed


def test_pass_to_fail_names_the_row(records, baseline_dir, write):
    target = _first(records, check="gradient", output="softmax", loss="cross_entropy", flavour="fused",
                    dtype="float32", param="layers.1.weight")
    target.tol_ratio, target.status, target.passed = 4.2, "fail", False
    result = gate(write(records), baseline_dir)
    assert _problems(result) == [("pass → fail", "tanh,tanh → softmax + cross_entropy (mean, fused)", "float32")]
    assert "gradient_ratio 4.2" in result.offenders["detail"].iloc[0]


def test_pass_to_unverified_is_a_regression(records, baseline_dir, write):
    """A record no oracle could judge turns its row ``unverified``: a regression from ``pass``."""
    target = _first(records, check="loss", output="softmax", loss="cross_entropy", flavour="fused", dtype="float64")
    target.status, target.oracle, target.note = "unverified", "", "torch produced NaN/inf"
    result = gate(write(records), baseline_dir)
    assert _problems(result) == [("pass → unverified", "tanh,tanh → softmax + cross_entropy (mean, fused)",
                                  "float64")]
    assert "1 record(s) unverified" in result.offenders["detail"].iloc[0]


def test_missing_combination_fails(records, baseline_dir, write):
    kept = [r for r in records if not (r.output == "sigmoid" and r.loss == "mse" and r.dtype == "float64")]
    result = gate(write(kept), baseline_dir)
    assert _problems(result) == [("missing from run", "tanh,tanh → sigmoid + mse (mean, modular)", "float64")]


def test_missing_training_row_fails(records, baseline_dir, write):
    kept = [r for r in records if not (r.optimizer and r.dtype == "float32")]
    result = gate(write(kept), baseline_dir)
    [(problem, row, dtype)] = _problems(result)
    assert problem == "missing from run" and row.endswith("mini_batch") and dtype == "float32"


def test_new_unbaselined_combination_fails(records, baseline_dir, write):
    extra = [dataclasses.replace(r, hidden="relu,relu") for r in records
             if r.output == "softmax" and r.loss == "mse" and r.dtype == "float64"]
    result = gate(write(records + extra), baseline_dir)
    assert _problems(result) == [("not in baseline", "relu,relu → softmax + mse (mean, modular)", "float64")]


def test_tol_ratio_growth_beyond_the_factor_fails(records, baseline_dir, write):
    target = _first(records, check="forward", output="sigmoid", loss="binary_cross_entropy", flavour="modular",
                    dtype="float64")
    target.tol_ratio = 0.5  # still passing, but far above the baseline's ~1e-6 and the float64 floor
    result = gate(write(records), baseline_dir)
    assert _problems(result) == [("tol_ratio grew", "tanh,tanh → sigmoid + binary_cross_entropy (mean, modular)",
                                  "float64")]
    assert result.offenders["detail"].iloc[0].startswith("forward_ratio")
    assert gate(write(records, "again"), baseline_dir, factor=1e5).passed  # configurable factor


def test_growth_below_the_floor_is_noise(records, baseline_dir, write):
    for r in records:
        if r.check == "loss":  # 0 → a few rounding steps: far below each dtype's floor
            r.tol_ratio = DEFAULT_FLOORS[r.dtype] / 2
    assert gate(write(records), baseline_dir).passed


def test_growth_is_measured_against_the_floor():
    base = pd.DataFrame([_row(1e-7), _row(0.0, output="b"), _row(0.02, output="c")])
    run = pd.DataFrame([_row(1e-5), _row(5e-4, output="b"), _row(0.3, output="c")])
    result = compare_matrices(run, base, factor=10, floors={"float64": 1e-4})
    # 1e-7 → 1e-5 and 0 → 5e-4 stay within 10 × floor; 0.02 → 0.3 grew ×15
    assert list(result.offenders["output"]) == ["c"]
    assert compare_matrices(run, base, factor=10, floors=0.0).offenders["output"].tolist() == ["a", "b", "c"]


def _row(ratio: float, output: str = "a", device: str = "cpu", status: str = "pass") -> dict:
    return dict(kind="case", impl="scratchnet", hidden="tanh", output=output, loss="mse", reduction="mean",
                flavour="modular", optimizer="", gd_mode="", dtype="float64", device=device,
                forward_ratio=ratio, loss_ratio=math.nan, gradient_ratio=math.nan, training_ratio=math.nan,
                status=status)


def test_cuda_rows_are_compared_only_when_both_sides_have_them():
    cpu = [_row(1e-6)]
    cuda = [_row(1e-6, device="cuda"), _row(1e-6, output="b", device="cuda")]
    base = pd.DataFrame(cpu + cuda)
    only_cpu = compare_matrices(pd.DataFrame(cpu), base)
    assert only_cpu.passed and only_cpu.skipped_devices == ["cuda"]
    assert compare_matrices(base, pd.DataFrame(cpu)).passed  # a GPU run against a CPU baseline
    partial = compare_matrices(pd.DataFrame(cpu + cuda[:1]), base)
    assert _problems(partial) == [("missing from run", "tanh → b + mse (mean, modular)", "float64")]
    assert partial.offenders["device"].tolist() == ["cuda"]


def test_a_failing_baseline_row_that_still_fails_is_accepted():
    base = pd.DataFrame([_row(2.0, status="fail")])
    assert compare_matrices(pd.DataFrame([_row(2.5, status="fail")]), base).passed


def test_factor_must_be_at_least_one():
    with pytest.raises(ValueError, match="factor"):
        compare_matrices(pd.DataFrame([_row(0.0)]), pd.DataFrame([_row(0.0)]), factor=0.5)


# -- broken baselines -----------------------------------------------------------------------------

def test_missing_baseline_is_an_error(small_records, write, tmp_path):
    with pytest.raises(GateError, match="does not exist"):
        gate(write(small_records), tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GateError, match="neither matrix.csv nor records.csv"):
        gate(write(small_records, "again"), tmp_path / "empty")


@pytest.mark.parametrize("damage", ["truncated_lines", "truncated_mid_row", "garbage", "empty", "bad_status",
                                    "missing_column", "duplicate_row", "bad_number", "header_only"])
def test_corrupt_baseline_is_an_error(small_records, baseline_dir, write, damage):
    path = baseline_dir / "matrix.csv"
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    header = [line for line in lines if line.startswith("#")]
    body = lines[len(header):]
    if damage == "truncated_lines":
        text = "".join(lines[: len(lines) - 3])
    elif damage == "truncated_mid_row":
        text = text[: len(text) - 4]
    elif damage == "garbage":
        path.write_bytes(b"\x89PNG\x00\xff\xfe garbage")
        text = None
    elif damage == "empty":
        text = ""
    elif damage == "bad_status":
        text = text.replace(",pass\n", ",maybe\n", 1)
    elif damage == "missing_column":
        text = "".join(header + [",".join(line.rstrip("\n").split(",")[:-1]) + "\n" for line in body])
    elif damage == "duplicate_row":
        text = "".join([line.replace(f"# rows: {len(body) - 1}", f"# rows: {len(body)}") for line in header]
                       + body + body[-1:])
    elif damage == "bad_number":
        text = text.replace(",float64,cpu,", ",float64,cpu,not-a-number", 1)
    elif damage == "header_only":
        text = "".join(header)
    if text is not None:
        path.write_text(text)
    with pytest.raises(GateError, match="baseline"):
        gate(write(small_records), baseline_dir)


def test_baseline_of_records_only_is_read(small_records, write, tmp_path):
    base = write(small_records, "records-only")
    (base / "matrix.csv").unlink()
    assert gate(write(small_records), base).passed


def test_every_output_of_the_small_run_is_in_the_baseline(baseline_dir):
    matrix, _ = read_csv(baseline_dir / "matrix.csv")
    assert set(matrix[matrix["kind"] == "case"]["output"]) == set(SMALL_OUTPUTS)
