"""The regression gate: identical reports pass; each planted regression fails naming its row;
broken baselines are errors, never passes."""

from __future__ import annotations

import dataclasses
import math
import re

import pandas as pd
import pytest
from scratchnet_reference.reports.files import read_csv, write_csv
from scratchnet_reference.reports.gate import DEFAULT_FLOORS, GateError, compare_matrices, format_offenders, gate

from .conftest import SMALL_OUTPUTS, replace_in, reseal


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
    assert gate(reseal(run), baseline_dir).passed


def test_pass_to_fail_names_the_row(records, baseline_dir, write):
    target = _first(records, check="gradient", output="softmax", loss="cross_entropy", flavour="fused",
                    dtype="float32", param="layers.1.weight")
    target = replace_in(records, target, tol_ratio=4.2, status="fail", passed=False)
    result = gate(write(records), baseline_dir)
    assert _problems(result) == [("pass → fail", "tanh,tanh → softmax + cross_entropy (mean, fused)", "float32")]
    assert "gradient_ratio 4.2" in result.offenders["detail"].iloc[0]


def test_pass_to_unverified_is_a_regression(records, baseline_dir, write):
    """A record no oracle could judge turns its row ``unverified``: a regression from ``pass``."""
    where = dict(check="loss", output="softmax", loss="cross_entropy", flavour="fused", dtype="float64")
    targets = [r for r in records if all(getattr(r, k) == v for k, v in where.items())]
    assert len(targets) == 3  # one loss record per batch: random, kink, large logits
    for target in targets:
        replace_in(records, target, status="unverified", oracle="", note="torch produced NaN/inf")
    row = ("hidden", "output", "loss", "reduction", "flavour", "dtype", "device", "optimizer")
    n = sum(all(getattr(r, k) == getattr(targets[0], k) for k in row) for r in records)  # the row's records
    result = gate(write(records), baseline_dir)
    assert _problems(result) == [("pass → unverified", "tanh,tanh → softmax + cross_entropy (mean, fused)",
                                  "float64")]
    assert re.fullmatch(rf"loss_ratio \S+ → empty \(3 of {n} records unverified: no oracle could judge them\)",
                        result.offenders["detail"].iloc[0])


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
    # still passing, but far above the baseline's ~1e-6 and the float64 floor
    target = replace_in(records, target, tol_ratio=0.5)
    result = gate(write(records), baseline_dir)
    assert _problems(result) == [("tol_ratio grew", "tanh,tanh → sigmoid + binary_cross_entropy (mean, modular)",
                                  "float64")]
    assert result.offenders["detail"].iloc[0].startswith("forward_ratio")
    assert gate(write(records, "again"), baseline_dir, factor=1e5).passed  # configurable factor


def test_growth_below_the_floor_is_noise(records, baseline_dir, write):
    # the loss ratios 0 → a few rounding steps: far below each dtype's floor
    records = [dataclasses.replace(r, tol_ratio=DEFAULT_FLOORS[r.dtype] / 2) if r.check == "loss" else r
               for r in records]
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
                worst_ratio=ratio, n_records=1, n_failed=int(status == "fail"), n_unverified=0, status=status)


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
    for factor in (0.5, 1):  # ×1 would flag every unchanged ratio: a growth ≥ ×1
        with pytest.raises(ValueError, match="factor"):
            compare_matrices(pd.DataFrame([_row(0.0)]), pd.DataFrame([_row(0.0)]), factor=factor)


# -- broken baselines -----------------------------------------------------------------------------

def test_missing_baseline_is_an_error(small_records, write, tmp_path):
    with pytest.raises(GateError, match="does not exist"):
        gate(write(small_records), tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GateError, match="baseline is corrupt or unfinished: .* has no manifest.json"):
        gate(write(small_records, "again"), tmp_path / "empty")
    neither = write(small_records, "neither")
    for name in ("matrix.csv", "records.csv"):
        (neither / name).unlink()
    with pytest.raises(GateError, match="neither matrix.csv nor records.csv"):
        gate(write(small_records, "run"), reseal(neither))


def _damaged(text: str, damage: str) -> str | bytes:
    lines = text.splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    return {
        "truncated_lines": lambda: "".join(lines[: len(lines) - 3]),
        "truncated_mid_row": lambda: text[: len(text) - 4],
        "garbage": lambda: b"\x89PNG\x00\xff\xfe garbage",
        "empty": lambda: "",
        "bad_status": lambda: text.replace(",pass\n", ",maybe\n", 1),
        "missing_column": lambda: "".join(",".join(line.rstrip("\n").split(",")[:-1]) + "\n" for line in lines),
        "duplicate_row": lambda: text + body[-1],
        "bad_number": lambda: text.replace(",float64,cpu,", ",float64,cpu,not-a-number", 1),
        "header_only": lambda: header,
        "old_format": lambda: "# table: matrix\n# rows: 1\n" + text,
    }[damage]()


DAMAGES = ["truncated_lines", "truncated_mid_row", "garbage", "empty", "bad_status", "missing_column",
           "duplicate_row", "bad_number", "header_only", "old_format"]


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_baseline_file_fails_its_manifest(small_records, baseline_dir, write, damage):
    path = baseline_dir / "matrix.csv"
    damaged = _damaged(path.read_text(), damage)
    path.write_bytes(damaged if isinstance(damaged, bytes) else damaged.encode())
    with pytest.raises(GateError, match="baseline is corrupt or unfinished: .*matrix.csv does not match manifest"):
        gate(write(small_records), baseline_dir)


@pytest.mark.parametrize("damage", [d for d in DAMAGES if d != "truncated_lines"])  # fewer whole rows: a valid file
def test_damaged_and_resealed_baseline_is_still_an_error(small_records, baseline_dir, write, damage):
    """The same damage with a manifest recomputed over it: the reading and value checks catch it."""
    path = baseline_dir / "matrix.csv"
    damaged = _damaged(path.read_text(), damage)
    path.write_bytes(damaged if isinstance(damaged, bytes) else damaged.encode())
    reseal(baseline_dir)
    with pytest.raises(GateError, match="baseline"):
        gate(write(small_records), baseline_dir)


def test_baseline_of_records_only_is_read(small_records, write, tmp_path):
    base = write(small_records, "records-only")
    (base / "matrix.csv").unlink()
    assert gate(write(small_records), reseal(base)).passed


def test_every_output_of_the_small_run_is_in_the_baseline(baseline_dir):
    matrix, _ = read_csv(baseline_dir / "matrix.csv")
    assert set(matrix[matrix["kind"] == "case"]["output"]) == set(SMALL_OUTPUTS)


# -- values: the planted faults of issue 14 ("the gate passes NaN") -------------------------------

def _plant(folder, edit, na_rep: str = "") -> None:
    """Edit ``folder``'s matrix.csv as a DataFrame (``na_rep``: how an empty cell is written), then
    seal the folder again so that the value checks, not the hashes, meet the fault."""
    matrix, _ = read_csv(folder / "matrix.csv")
    matrix = edit(matrix) if callable(edit) else matrix
    (folder / "matrix.csv").write_text(matrix.to_csv(index=False, float_format="%.17g", na_rep=na_rep,
                                                     lineterminator="\n"))
    reseal(folder)


def _first_case(matrix):
    return matrix.index[(matrix["kind"] == "case") & (matrix["dtype"] == "float64")][0]


@pytest.mark.parametrize("cell, na_rep", [(math.nan, "NaN"), (math.nan, ""), (-0.5, ""), (math.inf, "")],
                         ids=["NaN", "empty", "negative", "inf_in_a_pass"])
@pytest.mark.parametrize("column", ["forward_ratio", "worst_ratio"])
def test_a_corrupt_ratio_cell_is_an_error_naming_the_row(small_records, baseline_dir, write, cell, na_rep, column):
    run = write(small_records)

    def edit(m):
        m.loc[_first_case(m), column] = cell
        return m

    _plant(run, edit, na_rep)
    with pytest.raises(GateError, match=r"report file is corrupt: .*matrix.csv: row \d+ 'tanh,tanh → ") as error:
        gate(run, baseline_dir)
    expected = {-0.5: "cannot be negative", math.inf: "only a failed row may be infinite"}.get(cell)
    assert expected is None or expected in str(error.value)


def test_every_ratio_set_to_nan_is_an_error(small_records, baseline_dir, write):
    run = write(small_records)
    _plant(run, lambda m: m.assign(**{c: math.nan for c in ("forward_ratio", "loss_ratio", "gradient_ratio",
                                                             "training_ratio", "worst_ratio")}), "NaN")
    with pytest.raises(GateError, match="forward_ratio is empty, but the row did not fail and none of its records "
                                        "is unverified"):
        gate(run, baseline_dir)


def test_nan_in_the_baseline_and_x1000_in_the_run_is_an_error(records, small_records, baseline_dir, write):
    _plant(baseline_dir, lambda m: m.assign(forward_ratio=math.nan, worst_ratio=m[["loss_ratio", "gradient_ratio",
                                                                                    "training_ratio"]].max(axis=1)))
    records = [dataclasses.replace(r, tol_ratio=r.tol_ratio * 1000) if r.check == "forward" else r for r in records]
    with pytest.raises(GateError, match="baseline file is corrupt: .*forward_ratio is empty"):
        gate(write(records), baseline_dir)


@pytest.mark.parametrize("column", ["worst_ratio", "n_failed", "n_records", "n_unverified", "status",
                                    "gradient_ratio"])
def test_a_removed_column_the_gate_reads_is_an_error(small_records, baseline_dir, write, column):
    run = write(small_records)
    _plant(run, lambda m: m.drop(columns=[column]))
    with pytest.raises(GateError, match=rf"missing column\(s\) \['{column}'\]"):
        gate(run, baseline_dir)


def test_worst_ratio_and_status_must_agree_with_their_row(small_records, baseline_dir, write):
    run = write(small_records)
    _plant(run, lambda m: m.assign(worst_ratio=m["worst_ratio"] / 2))
    with pytest.raises(GateError, match="worst_ratio is .*, but the largest of its ratio columns is "):
        gate(run, baseline_dir)
    run = write(small_records, "status")
    _plant(run, lambda m: m.assign(n_failed=1))
    with pytest.raises(GateError, match="status pass contradicts n_failed 1"):
        gate(run, baseline_dir)


def test_a_row_whose_checks_all_turned_unverified_is_a_regression(records, baseline_dir, write):
    where = dict(output="softmax", loss="cross_entropy", flavour="fused", dtype="float64")
    records = [dataclasses.replace(r, status="unverified", tol_ratio=math.inf)  # torch's own arithmetic broke down
               if all(getattr(r, k) == v for k, v in where.items()) and not r.optimizer else r for r in records]
    result = gate(write(records), baseline_dir)
    assert _problems(result) == [("pass → unverified", "tanh,tanh → softmax + cross_entropy (mean, fused)",
                                  "float64")]
    assert "nothing was compared" in result.offenders["detail"].iloc[0]


def test_one_check_turned_unverified_is_a_regression(records, baseline_dir, write):
    records = [dataclasses.replace(r, status="unverified", tol_ratio=math.nan)
               if r.check == "gradient" and r.output == "sigmoid" and r.loss == "mse" and r.dtype == "float32" else r
               for r in records]
    result = gate(write(records), baseline_dir)
    assert _problems(result) == [("pass → unverified", "tanh,tanh → sigmoid + mse (mean, modular)", "float32")]
    assert result.offenders["detail"].iloc[0].startswith("gradient_ratio ") and "→ empty" in \
        result.offenders["detail"].iloc[0]


def test_growth_of_exactly_the_factor_is_caught():
    base = pd.DataFrame([_row(2.0 ** -7)])  # binary-exact, far above the float64 floor
    run = pd.DataFrame([_row(10 * 2.0 ** -7)])
    assert (run["forward_ratio"] / base["forward_ratio"]).iloc[0] == 10.0
    result = compare_matrices(run, base, factor=10)
    assert _problems(result) == [("tol_ratio grew", "tanh → a + mse (mean, modular)", "float64")]
    assert "≥ ×10" in result.offenders["detail"].iloc[0]
    assert compare_matrices(pd.DataFrame([_row(9.99 * 2.0 ** -7)]), base, factor=10).passed


def test_drift_below_the_floor_is_not_a_regression_but_crossing_it_is():
    """×10 from 1e-6 to 1e-5 stays below the float64 floor 1e-4 (rounding noise: see the gate's
    docstring for the measurement); the same ×10 that ends at ≥ 10 × floor is caught."""
    floor = DEFAULT_FLOORS["float64"]
    assert compare_matrices(pd.DataFrame([_row(floor / 10)]), pd.DataFrame([_row(floor / 100)])).passed
    assert compare_matrices(pd.DataFrame([_row(floor * 9)]), pd.DataFrame([_row(0.0)])).passed
    crossed = compare_matrices(pd.DataFrame([_row(floor * 10)]), pd.DataFrame([_row(floor / 100)]))
    assert _problems(crossed) == [("tol_ratio grew", "tanh → a + mse (mean, modular)", "float64")]
