"""The study summary's claims rest on the data they cite: target counts carry the seeds they rest
on, the verification sentence says what each GD mode's lockstep replayed, and the output-gradient
ratio at initialisation is taken apart into MSE's 1/C reduction, the error term and σ'."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scratchnet_reference.study.experiment import quick_config
from scratchnet_reference.study.report import init_gradient_factors, reached_text, verification_scope


def test_reached_counts_say_how_many_seeds_each_rests_on():
    reached = pd.Series(["1/1"] * 7 + ["3/3", "1/3"])
    assert reached_text(reached) == ("in 8 of 9 cells on every seed (7 with 1 seed, 1 with 3 seeds); "
                                     "in 1 more on 1 of 3 seeds")
    assert reached_text(pd.Series(["0/1", "0/3"])) == "in 0 of 2 cells on every seed"
    assert reached_text(pd.Series(["2/3", "2/3", "1/3", "0/1"])) == (
        "in 0 of 4 cells on every seed; in 1 more on 1 of 3 seeds; in 2 more on 2 of 3 seeds")


def _runs(rows):
    return pd.DataFrame(rows, columns=["combo", "gd_mode", "hidden", "lr", "seed", "grad_z_init", "lockstep_replay",
                                       "lockstep_batch", "lockstep_status"])


def test_gradient_ratio_is_taken_apart_into_reduction_error_and_sigma_prime():
    # mse/ce = 0.13: 1/C = 0.1 × (C·bce/ce) × (mse/bce)
    runs = _runs([("sigmoid+mse", m, "sigmoid", lr, s, g, "exact", 1, "pass")
                  for m in ("full_batch", "mini_batch") for lr in (1.0, 3.0) for s, g in ((0, 0.024), (1, 0.026))]
                 + [("sigmoid+binary_cross_entropy", "full_batch", "sigmoid", 1.0, 0, 0.05, "exact", 1, "pass"),
                    ("softmax+cross_entropy", "full_batch", "sigmoid", 1.0, 0, 0.18, "exact", 1, "pass"),
                    ("softmax+cross_entropy", "full_batch", "sigmoid", 1.0, 1, 0.20, "exact", 1, "pass"),
                    ("softmax+cross_entropy", "full_batch", "tanh", 1.0, 0, 9.0, "exact", 1, "pass")])
    f = init_gradient_factors(runs, "sigmoid", 10)
    assert f.seeds == (0,)  # the only seed all three pairs ran: same weights for each
    assert (f.mse, f.bce, f.ce) == (0.024, 0.05, 0.18)
    assert f.reduction == 0.1
    assert math.isclose(f.error, 10 * 0.05 / 0.18) and math.isclose(f.derivative, 0.024 / 0.05)
    assert math.isclose(f.reduction * f.error * f.derivative, f.total) and math.isclose(f.total, 0.024 / 0.18)
    text = f.sentence()
    assert "0.13× softmax+cross_entropy's = 0.1 (1/C: MSE's mean over the C = 10 classes" in text
    assert f"× {10 * 0.05 / 0.18:.2g} (C × sigmoid+binary_cross_entropy's" in text
    assert f"× {0.024 / 0.05:.2g} (sigmoid+mse's / sigmoid+binary_cross_entropy's: the factor 2σ'(z)" in text
    assert text.endswith("the 1/C reduction shrinks it more than σ' does.")
    # without sigmoid+binary_cross_entropy: the 1/C reduction and the rest, on both seeds
    g = init_gradient_factors(runs[runs["combo"] != "sigmoid+binary_cross_entropy"], "sigmoid", 10)
    assert g.seeds == (0, 1) and g.bce is None and math.isnan(g.derivative)
    assert math.isclose(g.mse, 0.025) and math.isclose(g.ce, 0.19) and math.isclose(g.reduction * g.rest, g.total)
    assert f"= 0.1 (1/C: MSE's mean over the C = 10 classes, a constant the learning rate absorbs) × {g.rest:.2g} " \
           "(the rest: 2σ'(z)·|σ − y|" in g.sentence()
    assert init_gradient_factors(runs[runs["combo"] != "softmax+cross_entropy"], "sigmoid", 10) is None


def test_verification_sentence_says_what_each_mode_replayed():
    config = quick_config()
    runs = _runs([("sigmoid+mse", "full_batch", "relu", 1.0, 0, 0.1, "exact", 400, "pass"),
                  ("sigmoid+mse", "mini_batch", "relu", 1.0, 0, 0.1, "subset of 93", 32, "pass"),
                  ("sigmoid+mse", "mini_batch", "relu", 3.0, 0, 0.1, "subset of 93", 32, "pass"),
                  ("sigmoid+mse", "stochastic", "relu", 1.0, 0, 0.1, "exact", 1, "pass")])
    text = verification_scope(runs, config)
    assert f"for its first {config.lockstep_steps} steps" in text
    assert "full batch: the run's own first steps (1 runs)" in text
    assert ("mini-batch: a subset of 93 of the run's first shuffled samples at batch size 32, not the run's own "
            "schedule (2 runs)") in text
    runs.loc[1, "lockstep_replay"] = "exact"
    text = verification_scope(runs, config)
    assert "mini-batch: the run's own first steps (1 of 2 runs); a subset of 93" in text
    skipped = runs.assign(lockstep_status="skipped")
    assert "not checked against PyTorch" in verification_scope(skipped, config)


def test_quick_study_summary_states_the_claims_from_its_tables(quick_study):
    code, _, _, folder = quick_study
    assert code == 0
    summary = (folder / "summary.md").read_text()
    results = pd.read_csv(folder / "results.csv", comment="#")
    runs = pd.read_csv(folder / "runs.csv", comment="#")
    config = quick_config()
    for budget in ("equal_epochs", "equal_updates"):
        sel = results[(results["budget"] == budget) & (results["combo"] == "sigmoid+mse")]
        if len(sel):
            assert (f"sigmoid+mse reached {config.target_accuracy:.0%} training accuracy "
                    f"{reached_text(sel['target_reached'])}") in summary
    assert "every run was checked against PyTorch (section 5)" not in summary
    assert "Every run was checked against PyTorch by training the identical torch model in lockstep" in summary
    for replay in runs["lockstep_replay"].unique():
        if replay.startswith("subset of "):
            assert f"a {replay} of the run's first shuffled samples" in summary
    factors = init_gradient_factors(runs, config.headline_hidden, 10)
    assert factors is not None  # the quick profile runs sigmoid+mse and softmax+cross_entropy
    assert factors.sentence() in summary
    assert np.isclose(factors.reduction * factors.rest, factors.total)
