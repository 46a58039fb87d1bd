"""The study: quick mode end to end, the summary's numbers against the tables, the tables
against the raw runs, the budget arithmetic, the measured gradient against scratchnet's own
backward pass, and the missing-scikit-learn message."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scratchnet_reference import cli
from scratchnet_reference.reports.files import read_csv, verify_folder
from scratchnet_reference.study.experiment import (
    COMBOS,
    LR_GRID,
    LR_LADDER,
    StudyConfig,
    checkpoint_epochs,
    full_config,
    output_delta,
    quick_config,
    rise_stats,
    update_budget,
)
from scratchnet_reference.study.report import PLOTS

import scratchnet as sn

from .test_idx import write_fake_mnist

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODE_LABELS = {"full_batch": "full batch", "mini_batch": "mini-batch", "stochastic": "stochastic"}


def _tables(folder):
    results, meta = read_csv(folder / "results.csv")
    runs, _ = read_csv(folder / "runs.csv")
    return results, runs, meta


def test_quick_study_writes_tables_plots_and_summary(quick_study):
    code, out, err, folder = quick_study
    assert code == 0, out + err
    assert "progress: 100%" in err                     # the progress bar, on stderr
    assert out.splitlines()[-1].startswith("study: 12 runs in ")
    for name in ("results.csv", "results.md", "runs.csv", "summary.md", *PLOTS):
        assert (folder / name).is_file(), name
    for name in PLOTS:
        data = (folder / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5_000, name
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []   # no temp files left
    results, runs, meta = _tables(folder)
    assert meta["profile"] == "quick" and verify_folder(folder).files["results.csv"]["rows"] == len(results)
    # headline cells only: 2 output+loss × 3 GD modes × 1 hidden × 2 budgets; 12 runs × 2 budgets
    assert len(results) == 12 and len(runs) == 24
    assert set(results["combo"]) == {"softmax+cross_entropy", "sigmoid+mse"}
    assert (runs["lockstep_status"] == "pass").all() and (runs["lockstep_max_ratio"] < 1).all()
    # every mode replays the run's own batches, so the verified steps are the study's own
    assert (runs["lockstep_replay"] == "exact").all()
    assert (runs.loc[runs["gd_mode"] == "mini_batch", "lockstep_batch"] == 32).all()
    assert runs.loc[runs["gd_mode"] == "mini_batch", "lockstep_schedule"].str.contains("batch size 32").all()
    assert runs["lockstep_schedule"].str.startswith("the run's first").all()


def test_quick_study_is_deterministic(quick_study, tmp_path):
    """The same command twice gives the same numbers (seeded split, weights and batch order)."""
    *_, folder = quick_study
    code = cli.main(["study", "--quick", "--out", str(tmp_path), "--no-progress", "--lockstep-steps", "0"])
    assert code == 0
    a, _ = read_csv(folder / "runs.csv")
    b, _ = read_csv(tmp_path / "runs.csv")
    cols = ["train_acc", "test_acc", "train_loss", "test_loss", "grad_z", "ece", "loss_rises"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert (b["lockstep_status"] == "skipped").all()


def test_results_table_agrees_with_the_runs(quick_study):
    """Every results row is the mean over seeds of its best learning rate's runs, and that rate has
    the highest training accuracy of the cell's grid."""
    *_, folder = quick_study
    results, runs, _ = _tables(folder)
    for _, row in results.iterrows():
        cell = runs[(runs["combo"] == row["combo"]) & (runs["gd_mode"] == row["gd_mode"])
                    & (runs["hidden"] == row["hidden"]) & (runs["budget"] == row["budget"])]
        by_lr = cell.groupby("lr")["train_acc"].mean()
        assert by_lr[row["best_lr"]] == by_lr.max()
        best = cell[cell["lr"] == row["best_lr"]]
        for col in ("train_acc", "test_acc", "train_loss", "test_loss", "ece", "out_sum_mean"):
            assert row[col] == pytest.approx(best[col].mean(), rel=1e-12), col
        assert row["epochs"] == best["epochs"].iloc[0] and row["updates"] == best["updates"].iloc[0]
        assert row["lockstep_max_ratio"] == cell["lockstep_max_ratio"].max()


def _markdown_rows(text: str, heading: str) -> list[list[str]]:
    section = text.split(heading, 1)[1]
    rows = [line for line in section.split("\n\n", 2)[1].splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in rows[2:]]


def test_summary_numbers_match_the_table(quick_study):
    """The summary's headline table and its statements carry the numbers of results.csv and
    runs.csv (recomputed here with pandas, not with the report's code)."""
    *_, folder = quick_study
    results, runs, _ = _tables(folder)
    summary = (folder / "summary.md").read_text()
    table = _markdown_rows(summary, "## Headline")
    assert len(table) == len(results[results["headline"]])
    for cells in table:
        budget, mode, combo = cells[0], cells[1], cells[2]
        row = results[(results["budget"] == budget) & (results["combo"] == combo)
                      & (results["gd_mode"].map(MODE_LABELS) == mode)].iloc[0]
        assert cells[3] == f"{row['best_lr']:g}"
        assert cells[4] == str(row["epochs"]) and cells[5] == str(row["updates"])
        assert cells[6].split(" ± ")[0] == f"{row['train_acc']:.3f}"
        assert cells[7].split(" ± ")[0] == f"{row['test_acc']:.3f}"
        assert cells[12] == f"{row['lockstep_max_ratio']:.2e}"
        comparison = f"- {budget}, {mode}: test accuracy softmax+cross_entropy "
        assert comparison in summary
    # statement 4: loss rises over whole runs (full batch: its equal_updates checkpoint)
    whole = runs[((runs["gd_mode"] == "full_batch") & (runs["budget"] == "equal_updates"))
                 | ((runs["gd_mode"] != "full_batch") & (runs["budget"] == "equal_epochs"))]
    for combo in ("sigmoid+mse", "softmax+cross_entropy"):
        for mode, label in MODE_LABELS.items():
            sel = whole[(whole["combo"] == combo) & (whole["gd_mode"] == mode)]
            n_rose = int((sel["loss_rises_1pct"] > 0).sum())
            assert f"- {combo}, {label}: the loss rose by more than 1% in {n_rose} of {len(sel)} runs" in summary
            row = [c.strip() for c in summary.split(f"| {combo} | {label} | ", 1)[1].split("\n")[0].split("|")]
            assert row[0] == f"{int((sel['loss_rises'] > 0).sum())}/{len(sel)}"
            assert row[4] == f"{int(sel['chance_level'].sum())}/{len(sel)}" or row[4].startswith(
                f"{int(sel['chance_level'].sum())}/{len(sel)} (")
    # statement 5: verification
    per_run = runs.drop_duplicates(["combo", "gd_mode", "hidden", "lr", "seed"])
    worst = per_run["lockstep_max_ratio"].max()
    assert f"{len(per_run)} of {len(per_run)} runs passed (largest tol_ratio {worst:.2e}" in summary
    # statement 3: the output sums of sigmoid+mse per mode
    for mode, label in MODE_LABELS.items():
        row = results[(results["budget"] == "equal_epochs") & (results["combo"] == "sigmoid+mse")
                      & (results["gd_mode"] == mode)].iloc[0]
        assert f"- {label}: sigmoid+mse outputs sum to {row['out_sum_mean']:.3f} on average" in summary


def test_budgets_give_equal_epochs_and_equal_updates():
    config = full_config()
    n = 1347
    assert update_budget(config, n) == 30 * 43
    assert checkpoint_epochs("full_batch", config, n) == {"equal_epochs": 30, "equal_updates": 1290}
    assert checkpoint_epochs("mini_batch", config, n) == {"equal_epochs": 30, "equal_updates": 30}
    assert checkpoint_epochs("stochastic", config, n) == {"equal_epochs": 30, "equal_updates": 1}
    jobs = config.jobs()
    # 4 output+loss × 3 modes × 3 hidden × 4 lrs, plus 2 more seeds for the 2 × 3 headline cells
    assert len(jobs) == 4 * 3 * 3 * 4 + 2 * 3 * 4 * 2
    grids = [LR_GRID[(f"{o}+{l}", m, h)] for o, l in COMBOS for m in config.modes for h in config.hidden]
    for g in grids:  # four consecutive rungs of the half-decade ladder
        i = LR_LADDER.index(g[0])
        assert g == LR_LADDER[i:i + 4]
    assert len(quick_config().jobs()) == 12


def test_rise_stats():
    assert rise_stats(np.array([3.0, 2.0, 1.0]))["loss_rises"] == 0
    stats = rise_stats(np.array([3.0, 2.0, 2.5, 1.0, 4.0]))
    assert stats["loss_rises"] == 2 and stats["max_rise"] == pytest.approx(3.0)
    assert stats["ended_above_start"] and stats["final_over_min"] == pytest.approx(3.0)
    diverged = rise_stats(np.array([1.0, 0.5, np.inf]))
    assert diverged["ended_above_start"] and diverged["loss_rises"] == 1 and math.isinf(diverged["final_over_min"])


@pytest.mark.parametrize("output, loss", COMBOS)
def test_output_delta_is_the_gradient_training_uses(output, loss):
    """δ = ∂L/∂z measured by the study reproduces scratchnet's own output-weight gradient."""
    spec = sn.ModelSpec((6, 5, 4), hidden="tanh", output=output, loss=loss, seed=1)
    net = sn.Network(spec)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 6)), rng.integers(0, 4, size=9)
    value, grads = net.loss_and_grads(x, y)
    net.forward(x)
    got_value, delta = output_delta(net, net.loss_fn.prepare_target(y, 4, net.dtype))
    assert got_value == pytest.approx(value, rel=1e-14)
    np.testing.assert_allclose(delta.T @ net.layers[-1].x, grads["layers.1.weight"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(delta.sum(axis=0), grads["layers.1.bias"], rtol=1e-12, atol=1e-15)


def test_missing_scikit_learn_is_one_line_with_the_install_command(capsys, monkeypatch, tmp_path):
    for name in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(__import__("sys").modules, name, None)
    code = cli.main(["study", "--quick", "--out", str(tmp_path / "out")])
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "pip install 'scratchnet[study]'" in lines[0] and "scikit-learn" in lines[0]


def test_quick_study_on_local_mnist_files(tmp_path, capsys):
    """--mnist runs the same study on IDX files (tiny fake ones here; nothing is downloaded)."""
    write_fake_mnist(tmp_path / "mnist", n_train=80, n_test=30, gz=("images",))
    config = StudyConfig()
    assert config.hidden_units == 32
    code = cli.main(["study", "--quick", "--mnist", str(tmp_path / "mnist"), "--out", str(tmp_path / "out"),
                     "--no-progress", "--lockstep-steps", "2"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    results, meta = read_csv(tmp_path / "out" / "results.csv")
    assert "MNIST" in meta["dataset"] and set(results["dataset"]) == {"mnist"}
    assert "# The multi-class study on mnist" in (tmp_path / "out" / "summary.md").read_text()


@pytest.mark.parametrize("argv, expected", [
    (["study", "--epochs", "0"], "--epochs"),
    (["study", "--jobs", "two"], "--jobs"),
    (["study", "--lockstep-steps", "-1"], "--lockstep-steps"),
])
def test_bad_study_arguments_exit_2(capsys, argv, expected):
    code = cli.main(argv)
    _, err = capsys.readouterr()
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1


def test_rounding_control_measures_how_a_rate_amplifies_one_ulp():
    """The control behind the 'unstable' verdict: a stable rate keeps a one-ulp nudge at rounding
    size, an unstable one amplifies it by orders of magnitude."""
    from scratchnet_reference.core.protocol import initial_state
    from scratchnet_reference.study.experiment import rounding_control

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    spec = sn.ModelSpec((4, 8, 3), hidden="tanh", output="softmax", loss="cross_entropy", seed=0)
    state = initial_state(spec)
    full_batch = [np.arange(30)] * 20  # 20 full-batch steps
    stable = rounding_control(spec, state, x, y, 0.1, full_batch)
    unstable = rounding_control(spec, state, x, y, 30.0, full_batch)
    assert 0 < stable < 1e-14 and unstable > 1e4 * stable
