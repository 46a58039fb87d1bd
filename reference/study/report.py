"""The multi-class study's report: tables, plots and a summary whose every statement is computed
from the tables (nothing is written in advance; where the data disagree with the folklore, the
summary says so, with the numbers).

Files (all written atomically with :mod:`scratchnet_reference.reports.files`):

* ``results.csv`` / ``results.md`` — one row per cell × budget: the best learning rate, final
  train/test accuracy and loss (mean ± std over seeds), epochs and updates to the target
  accuracy, divergences, loss rises, output-sum statistics, gradient magnitudes and the
  lockstep verification;
* ``runs.csv`` — one row per run × budget (every learning rate and seed);
* ``summary.md`` — the answers, computed;
* ``curves_accuracy.png``, ``curves_loss.png``, ``lr_sweep.png``, ``gradients.png``,
  ``headline.png``, ``outputs.png``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .experiment import (
    BUDGETS,
    CONTROL_FRACTION,
    Run,
    StudyConfig,
    checkpoint_epochs,
    combo_name,
    results_frame,
    runs_frame,
    update_budget,
)

__all__ = ["StudySummary", "write_study", "summary_markdown", "markdown_table", "PLOTS"]

PLOTS = ("curves_accuracy.png", "curves_loss.png", "lr_sweep.png", "gradients.png", "headline.png", "outputs.png")
HIDDEN_COLORS = {"sigmoid": "#1f77b4", "tanh": "#ff7f0e", "relu": "#2ca02c"}
COMBO_COLORS = {"softmax+cross_entropy": "#1f77b4", "sigmoid+mse": "#d62728",
                "sigmoid+binary_cross_entropy": "#9467bd", "softmax+mse": "#8c564b"}
CONTROL_TEXT = f"{CONTROL_FRACTION:g}×"
MODE_LABELS = {"full_batch": "full batch", "mini_batch": "mini-batch", "stochastic": "stochastic"}


@dataclass
class StudySummary:
    files: list[str]
    verified: bool
    console: str
    results: Any
    runs: Any


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------

def f3(v: float) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def fnum(v: float) -> str:
    """Counts such as epochs and updates: whole numbers stay whole."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.0f}" if float(v) == round(float(v)) else f"{v:.1f}"


def fsci(v: float) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2e}"


def fg(v: float) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:g}"


def pct(v: float) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def mean_std(mean: float, std: float) -> str:
    return f3(mean) if std is None or math.isnan(std) else f"{f3(mean)} ± {f3(std)}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Selections from the tables
# --------------------------------------------------------------------------------------------

def longest_budget(gd_mode: str, config: StudyConfig, n_train: int) -> str:
    """The budget whose checkpoint is the run's end (full batch: equal_updates, stochastic:
    equal_epochs; mini-batch: both coincide)."""
    cp = checkpoint_epochs(gd_mode, config, n_train)
    return max(BUDGETS, key=lambda b: (cp[b], b == "equal_epochs"))


def _row(results, **match) -> Mapping[str, Any] | None:
    sel = results
    for k, v in match.items():
        sel = sel[sel[k] == v]
    return None if sel.empty else sel.iloc[0]


def _run_for(runs: Sequence[Run], cell_match: Mapping[str, str], lr: float, seed: int = 0) -> Run | None:
    for run in runs:
        c = run.cell
        if (c.combo, c.gd_mode, c.hidden) == (cell_match["combo"], cell_match["gd_mode"], cell_match["hidden"]) \
                and run.lr == lr and run.seed == seed:
            return run
    return None


def end_of_run_rows(runs_df, config: StudyConfig, n_train: int):
    """``runs_df`` restricted to each run's longest checkpoint (the whole run)."""
    keep = [longest_budget(m, config, n_train) for m in runs_df["gd_mode"]]
    return runs_df[runs_df["budget"].to_numpy() == np.array(keep, dtype=object)]


# --------------------------------------------------------------------------------------------
# Summary (Markdown), every statement computed
# --------------------------------------------------------------------------------------------

def _setup_section(data: Any, config: StudyConfig, n_runs: int, wall: float) -> list[str]:
    n = data.n_train
    u = update_budget(config, n)
    rows = []
    for mode in config.modes:
        cp = checkpoint_epochs(mode, config, n)
        per = {"full_batch": 1, "mini_batch": -(-n // config.batch_size), "stochastic": n}[mode]
        rows.append([MODE_LABELS[mode], {"full_batch": str(n), "mini_batch": str(config.batch_size),
                                         "stochastic": "1"}[mode], per,
                     f"{cp['equal_epochs']} / {cp['equal_epochs'] * per}",
                     f"{cp['equal_updates']} / {cp['equal_updates'] * per}"])
    lines = [
        f"Data: {data.description}. Network {data.n_features}-{config.hidden_units}-{data.n_classes}, float64, "
        f"PyTorch's default initialisation, plain SGD (`{{\"name\": \"sgd\", \"lr\": …}}`), scratchnet's `fit`.",
        "",
        f"Grid: {len(config.combos)} output+loss pairs × {len(config.modes)} GD modes × {len(config.hidden)} hidden "
        f"activations × 4 learning rates per cell (half-decade steps placed around a pilot sweep's optimum: "
        f"`LR_START` in reference/study/experiment.py); seeds {', '.join(map(str, config.seeds))} "
        f"everywhere and {', '.join(map(str, config.headline_seeds))} for the headline cells (hidden "
        f"{config.headline_hidden}); {n_runs} runs in {wall:.0f} s (profile {config.profile}).",
        "",
        f"Budget: equal epochs is equal arithmetic but not equal updates, so every run is measured at two "
        f"checkpoints: **equal_epochs** (E = {config.epochs} epochs in every mode) and **equal_updates** "
        f"(U = {u} updates, the mini-batch run's count; stochastic takes the whole epoch closest to U).",
        "",
        markdown_table(["GD mode", "batch", "updates / epoch", "equal_epochs: epochs / updates",
                        "equal_updates: epochs / updates"], rows),
        "",
        "Learning rate: chosen per cell and checkpoint as the one with the highest training accuracy "
        "(mean over seeds; ties: lower training loss), among rates where no seed diverged — never on the test "
        f"set. Target accuracy for 'epochs/updates to target': {config.target_accuracy:.0%} on the training set, "
        "measured at epoch ends (a stochastic run's resolution is one epoch).",
    ]
    return lines


def _headline_section(results, config: StudyConfig) -> tuple[list[str], list[str]]:
    lines = [f"## Headline: softmax+cross_entropy vs sigmoid+mse (hidden {config.headline_hidden}, "
             f"seeds {', '.join(map(str, config.headline_seeds))})", ""]
    head = results[results["headline"]]
    rows, console = [], []
    for budget in BUDGETS:
        for mode in config.modes:
            for output, loss in config.headline_combos:
                r = _row(head, budget=budget, gd_mode=mode, combo=combo_name(output, loss))
                if r is None:
                    continue
                rows.append([budget, MODE_LABELS[mode], r["combo"], fg(r["best_lr"]), fnum(r["epochs"]),
                             fnum(r["updates"]), mean_std(r["train_acc"], r["train_acc_std"]),
                             mean_std(r["test_acc"], r["test_acc_std"]),
                             f"{f3(r['test_acc_min'])}–{f3(r['test_acc_max'])}", fnum(r["epochs_to_target"]),
                             fnum(r["updates_to_target"]), r["target_reached"], fsci(r["lockstep_max_ratio"])])
                console.append(f"{budget:13s} {MODE_LABELS[mode]:11s} {r['combo']:22s} lr={fg(r['best_lr']):>5s} "
                               f"test acc {mean_std(r['test_acc'], r['test_acc_std'])}")
    lines.append(markdown_table(["budget", "GD mode", "output+loss", "best lr", "epochs", "updates", "train acc",
                                 "test acc", "test acc min–max", "epochs to target", "updates to target",
                                 "reached", "lockstep max tol_ratio"], rows))
    lines.append("")
    a, b = (combo_name(*c) for c in config.headline_combos[:2]) if len(config.headline_combos) >= 2 else ("", "")
    for budget in BUDGETS:
        for mode in config.modes:
            ra = _row(head, budget=budget, gd_mode=mode, combo=a)
            rb = _row(head, budget=budget, gd_mode=mode, combo=b)
            if ra is None or rb is None:
                continue
            diff = ra["test_acc"] - rb["test_acc"]
            if math.isnan(diff):
                lines.append(f"- {budget}, {MODE_LABELS[mode]}: no comparison (a cell diverged at every rate).")
                continue
            overlap = not (ra["test_acc_min"] > rb["test_acc_max"] or rb["test_acc_min"] > ra["test_acc_max"])
            lead = a if diff > 0 else b
            lines.append(f"- {budget}, {MODE_LABELS[mode]}: test accuracy {a} {f3(ra['test_acc'])} vs {b} "
                         f"{f3(rb['test_acc'])} — {lead} ahead by {f3(abs(diff))}; the seed ranges "
                         f"{'overlap' if overlap else 'do not overlap'} ({f3(ra['test_acc_min'])}–"
                         f"{f3(ra['test_acc_max'])} vs {f3(rb['test_acc_min'])}–{f3(rb['test_acc_max'])}).")
    lines.append("")
    return lines, console


def reached_text(reached) -> str:
    """How many cells reached the target, with the seed count each count rests on, from the
    ``target_reached`` column (``"k/n"``: k of the cell's n seeds reached it): ``"in 8 of 9 cells on
    every seed (7 with 1 seed, 1 with 3 seeds); in 1 more on 1 of 3 seeds"``."""
    from collections import Counter

    parts = reached.astype(str).str.split("/", expand=True).astype(int)
    k, n = parts[0].to_numpy(), parts[1].to_numpy()
    every = (k == n) & (n > 0)
    seeds = sorted(Counter(n[every].tolist()).items())
    per_cell = f" ({', '.join(f'{count} with {_seeds(s)}' for s, count in seeds)})" if seeds else ""
    text = f"in {int(every.sum())} of {len(k)} cells on every seed{per_cell}"
    some = Counter(zip(k[(k > 0) & ~every].tolist(), n[(k > 0) & ~every].tolist()))
    for (got, of), count in sorted(some.items()):
        text += f"; in {count} more on {got} of {_seeds(of)}"
    return text


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _can_mse_section(results, config: StudyConfig) -> list[str]:
    lines = ["## 1. Can sigmoid outputs with squared error do multi-class?", ""]
    combos = [combo_name(o, l) for o, l in config.combos]
    rows = []
    for combo in combos:
        row = [combo]
        for budget in BUDGETS:
            for mode in config.modes:
                sel = results[(results["combo"] == combo) & (results["budget"] == budget)
                              & (results["gd_mode"] == mode)]
                row.append(f3(sel["test_acc"].max()) if len(sel) and sel["test_acc"].notna().any() else "—")
        rows.append(row)
    header = ["output+loss"] + [f"{b}: {MODE_LABELS[m]}" for b in BUDGETS for m in config.modes]
    lines += ["Best test accuracy over the hidden activations (best learning rate each):", "",
              markdown_table(header, rows), ""]
    mse, ce = combo_name("sigmoid", "mse"), combo_name("softmax", "cross_entropy")
    for budget in BUDGETS:
        sub = results[results["budget"] == budget]
        m, c = sub[sub["combo"] == mse], sub[sub["combo"] == ce]
        if m.empty or c.empty or not m["test_acc"].notna().any() or not c["test_acc"].notna().any():
            continue
        bm, bc = m.loc[m["test_acc"].idxmax()], c.loc[c["test_acc"].idxmax()]
        lines.append(f"- {budget}: the best sigmoid+mse cell ({MODE_LABELS[bm['gd_mode']]}, hidden {bm['hidden']}, "
                     f"lr {fg(bm['best_lr'])}) reaches test accuracy {f3(bm['test_acc'])}; the best softmax+"
                     f"cross_entropy cell ({MODE_LABELS[bc['gd_mode']]}, hidden {bc['hidden']}, lr "
                     f"{fg(bc['best_lr'])}) {f3(bc['test_acc'])} (difference {f3(bc['test_acc'] - bm['test_acc'])}). "
                     f"At its best learning rate, sigmoid+mse reached {config.target_accuracy:.0%} training accuracy "
                     f"{reached_text(m['target_reached'])}; softmax+cross_entropy {reached_text(c['target_reached'])}.")
    edge = results[results["best_lr_at_edge"]]
    lines.append("")
    if edge.empty:
        lines.append("Every cell's best learning rate lies inside its grid.")
    else:
        cells = "; ".join(f"{r['combo']} {MODE_LABELS[r['gd_mode']]} {r['hidden']} ({r['budget']}, lr "
                          f"{fg(r['best_lr'])} of {r['lr_grid']})" for _, r in edge.iterrows())
        lines.append(f"{len(edge)} of {len(results)} cell × budget rows have their best learning rate at the edge of "
                     f"the grid (a wider sweep might improve them): {cells}.")
    lines.append("")
    return lines


@dataclass
class GradientFactors:
    """sigmoid+mse's output gradient at initialisation against softmax+cross_entropy's, taken apart.
    MSE's mean runs over the C classes, so ``∂ℓ/∂z = 2(σ − y)·σ'(z)/C`` per sample, against
    softmax+cross_entropy's ``p − y``: ``mse / ce = (1/C) × (C·mse / ce)``. sigmoid+binary_cross_entropy,
    which starts from the same weights (same seeds, same initialisation) and whose ``∂ℓ/∂z =
    (σ − y)/C`` has no ``σ'``, splits the second factor once more:

    ``mse / ce = (1/C) × (C·bce / ce) × (mse / bce)`` — the reduction over the classes, the error
    ``|σ − y|`` of C independent sigmoids against softmax's ``|p − y|``, and ``2σ'(z)`` (weighted by
    ``|σ − y|``), the factor the vanishing-gradient argument is about (σ' ≤ 1/4, so at most ½).
    ``bce`` is ``None`` where the study did not run sigmoid+binary_cross_entropy."""

    n_classes: int
    hidden: str
    seeds: tuple[int, ...]
    mse: float
    ce: float
    bce: float | None = None

    @property
    def total(self) -> float:
        return self.mse / self.ce

    @property
    def reduction(self) -> float:
        return 1.0 / self.n_classes

    @property
    def rest(self) -> float:
        """Everything but the reduction: ``C·mse / ce``."""
        return self.n_classes * self.mse / self.ce

    @property
    def error(self) -> float:
        return math.nan if self.bce is None else self.n_classes * self.bce / self.ce

    @property
    def derivative(self) -> float:
        return math.nan if self.bce is None else self.mse / self.bce

    def sentence(self) -> str:
        start = (f"- At initialisation (hidden {self.hidden}, seed{'s' if len(self.seeds) > 1 else ''} "
                 f"{', '.join(map(str, self.seeds))}: the same weights for every pair), sigmoid+mse's per-sample "
                 f"output gradient is {self.total:.2g}× softmax+cross_entropy's = {self.reduction:.2g} (1/C: MSE's "
                 f"mean over the C = {self.n_classes} classes, a constant the learning rate absorbs) × ")
        if self.bce is None:
            return start + (f"{self.rest:.2g} (the rest: 2σ'(z)·|σ − y| of {self.n_classes} sigmoids against "
                            "softmax's |p − y|; σ' alone would need sigmoid+binary_cross_entropy, not run here).")
        larger = ("the 1/C reduction shrinks it more than σ' does" if self.reduction < self.derivative
                  else "σ' shrinks it more than the 1/C reduction does")
        return start + (f"{self.error:.2g} (C × sigmoid+binary_cross_entropy's / softmax+cross_entropy's: the error "
                        f"|σ − y| of {self.n_classes} independent sigmoids against softmax's |p − y|) × "
                        f"{self.derivative:.2g} (sigmoid+mse's / sigmoid+binary_cross_entropy's: the factor 2σ'(z), "
                        f"the vanishing-gradient part; σ'(z) ≤ 1/4): {larger}.")


def init_gradient_factors(runs_df, hidden: str, n_classes: int) -> GradientFactors | None:
    """:class:`GradientFactors` from ``runs_df``'s ``grad_z_init`` (a run's value at initialisation
    does not depend on its learning rate, GD mode or budget), averaged over the seeds the pairs
    all ran; ``None`` without sigmoid+mse and softmax+cross_entropy."""
    combos = {"mse": combo_name("sigmoid", "mse"), "ce": combo_name("softmax", "cross_entropy"),
              "bce": combo_name("sigmoid", "binary_cross_entropy")}
    sel = runs_df[(runs_df["hidden"] == hidden) & runs_df["combo"].isin(combos.values())]
    per_seed = sel.groupby(["combo", "seed"])["grad_z_init"].first()
    ran = {key: set(per_seed[combo].index) for key, combo in combos.items()
           if combo in per_seed.index.get_level_values(0)}
    if "mse" not in ran or "ce" not in ran:
        return None
    keys = [key for key in combos if key in ran and (key != "bce" or ran["bce"] & ran["mse"] & ran["ce"])]
    seeds = tuple(sorted(set.intersection(*(ran[key] for key in keys))))
    if not seeds:
        return None
    means = {key: float(np.mean([per_seed[(combos[key], seed)] for seed in seeds])) for key in keys}
    if not all(np.isfinite(v) and v > 0 for v in means.values()):
        return None
    return GradientFactors(n_classes=n_classes, hidden=hidden, seeds=seeds, **means)


def _gradient_section(results, runs_df, config: StudyConfig, n_classes: int) -> list[str]:
    h = config.headline_hidden
    lines = ["## 2. Vanishing gradients: (σ(z) − y)·σ'(z), measured", "",
             "`N·|∂L/∂z|` is the mean magnitude of the output-layer gradient each training sample contributes "
             "(the loss as trained, torch's mean reduction — MSE and BCE also divide by the 10 classes, a constant "
             "the learning-rate sweep can absorb), over the whole training set at an epoch end; 'misclassified' "
             "averages only over the training samples the network gets wrong. Hidden "
             f"{h}, best learning rate, mean over seeds; 'lr × |∂L/∂W|' is the step the best learning rate takes "
             "on the output weights at initialisation (full-batch gradient norm).", ""]
    rows = []
    for budget in BUDGETS:
        for mode in config.modes:
            for output, loss in config.combos:
                r = _row(results, budget=budget, gd_mode=mode, hidden=h, combo=combo_name(output, loss))
                if r is None:
                    continue
                rows.append([budget, MODE_LABELS[mode], r["combo"], fsci(r["grad_z_init"]),
                             fsci(r["grad_z_wrong_init"]), fsci(r["grad_z"]), fsci(r["grad_z_wrong"]), fg(r["best_lr"]),
                             fsci(r["best_lr"] * r["grad_w_out_init"]), fnum(r["updates_to_target"])])
    lines.append(markdown_table(["budget", "GD mode", "output+loss", "N·|∂L/∂z| at init", "misclassified at init",
                                 "N·|∂L/∂z| at end", "misclassified at end", "best lr", "lr × |∂L/∂W| at init",
                                 "updates to target"], rows))
    lines.append("")
    decomposition = init_gradient_factors(runs_df, h, n_classes)
    if decomposition is not None:
        lines.append(decomposition.sentence())
    mse, ce = combo_name("sigmoid", "mse"), combo_name("softmax", "cross_entropy")
    for budget in BUDGETS:
        for mode in config.modes:
            rm = _row(results, budget=budget, gd_mode=mode, hidden=h, combo=mse)
            rc = _row(results, budget=budget, gd_mode=mode, hidden=h, combo=ce)
            if rm is None or rc is None:
                continue
            ratio_init = rm["grad_z_init"] / rc["grad_z_init"]
            ratio_wrong = rm["grad_z_wrong"] / rc["grad_z_wrong"]
            wrong_text = (f"{ratio_wrong:.2g}× on the misclassified samples at the end" if np.isfinite(ratio_wrong)
                          else f"{fsci(rm['grad_z_wrong'])} vs {fsci(rc['grad_z_wrong'])} on the misclassified samples "
                               "at the end (— = none misclassified)")
            lr_ratio = rm["best_lr"] / rc["best_lr"]
            speed = rm["updates_to_target"] / rc["updates_to_target"]
            speed_text = (f"it needed {speed:.2g}× the updates to reach {config.target_accuracy:.0%} training accuracy"
                          if np.isfinite(speed) else
                          f"updates to {config.target_accuracy:.0%} training accuracy: {fnum(rm['updates_to_target'])} "
                          f"(sigmoid+mse) vs {fnum(rc['updates_to_target'])} (softmax+cross_entropy)")
            lines.append(f"- {budget}, {MODE_LABELS[mode]}: sigmoid+mse's per-sample output gradient is "
                         f"{ratio_init:.2g}× softmax+cross_entropy's at initialisation and {wrong_text}; its best "
                         f"learning rate is {lr_ratio:.2g}× softmax+cross_entropy's; {speed_text}.")
    lines.append("")
    return lines


def _sum_section(results, config: StudyConfig) -> list[str]:
    h = config.headline_hidden
    lines = ["## 3. Sigmoid outputs do not sum to 1 — does it matter?", "",
             "On the test set at the checkpoint, hidden " + h + ", best learning rate, mean over seeds: the mean "
             "sum of the 10 outputs, the share of images with no output above 0.5 and with two or more, and the "
             "expected calibration error (ECE, 10 bins) of the top output read as a probability. The prediction "
             "is the arg-max in every case.", ""]
    rows = []
    budget = "equal_epochs"
    for mode in config.modes:
        for output, loss in config.combos:
            r = _row(results, budget=budget, gd_mode=mode, hidden=h, combo=combo_name(output, loss))
            if r is None:
                continue
            rows.append([MODE_LABELS[mode], r["combo"], f3(r["test_acc"]), f3(r["out_sum_mean"]), pct(r["out_none"]),
                         pct(r["out_multi"]), f3(r["ece"])])
    lines.append(f"Budget {budget}:")
    lines.append("")
    lines.append(markdown_table(["GD mode", "output+loss", "test acc", "mean output sum", "no output > 0.5",
                                 "≥ 2 outputs > 0.5", "ECE"], rows))
    lines.append("")
    mse, ce = combo_name("sigmoid", "mse"), combo_name("softmax", "cross_entropy")
    for mode in config.modes:
        rm = _row(results, budget=budget, gd_mode=mode, hidden=h, combo=mse)
        rc = _row(results, budget=budget, gd_mode=mode, hidden=h, combo=ce)
        if rm is None or rc is None:
            continue
        lines.append(f"- {MODE_LABELS[mode]}: sigmoid+mse outputs sum to {f3(rm['out_sum_mean'])} on average; "
                     f"{pct(rm['out_none'])} of test images have no output above 0.5 and {pct(rm['out_multi'])} more "
                     f"than one; its arg-max test accuracy is {f3(rm['test_acc'])} vs {f3(rc['test_acc'])} for "
                     f"softmax+cross_entropy; calibration error of the top output {f3(rm['ece'])} vs {f3(rc['ece'])}.")
    lines.append("")
    return lines


def _count(sel, mask, with_lrs: bool = True) -> str:
    hit = sel[mask]
    text = f"{len(hit)}/{len(sel)}"
    return f"{text} ({_lrs(hit['lr'])})" if with_lrs and len(hit) else text


def _with_best(whole, results):
    """``whole`` with each run's cell's best learning rate (at the run's longest checkpoint)."""
    best = results[["combo", "gd_mode", "hidden", "budget", "best_lr"]]
    merged = whole.merge(best, on=["combo", "gd_mode", "hidden", "budget"], how="left")
    merged.index = whole.index
    return merged


def _rise_section(runs_df, results, config: StudyConfig, n_train: int, n_classes: int) -> list[str]:
    lines = ["## 4. Does the loss increase with full-batch gradient descent?", "",
             "Every run's loss on the whole training set over the whole run: after every update in full batch "
             "(scratchnet's History), after every epoch in the other modes (so rises inside an epoch are not seen). "
             "'rose' = went up at least once (relative 1e-9); 'rose > 1%' = by more than 1% at least once; "
             "'ended > 1% above min' = the final loss is more than 1% above the lowest it reached; 'chance level' = "
             f"final training accuracy below 2/{n_classes} = {2 / n_classes:.0%} (or NaN). Cells: runs / all runs "
             "(learning rates).", ""]
    whole = _with_best(end_of_run_rows(runs_df, config, n_train), results)
    rows = []
    for output, loss in config.combos:
        combo = combo_name(output, loss)
        for mode in config.modes:
            sel = whole[(whole["combo"] == combo) & (whole["gd_mode"] == mode)]
            if sel.empty:
                continue
            rows.append([combo, MODE_LABELS[mode], _count(sel, sel["loss_rises"] > 0, False),
                         _count(sel, sel["loss_rises_1pct"] > 0), _count(sel, sel["ended_above_min"]),
                         _count(sel, sel["ended_above_start"]), _count(sel, sel["chance_level"]),
                         _count(sel, sel["diverged"]), fsci(sel["max_rise"].max())])
    lines.append(markdown_table(["output+loss", "GD mode", "rose", "rose > 1%", "ended > 1% above min",
                                 "ended above start", "chance level at end", "diverged (NaN/inf)",
                                 "largest single rise (relative)"], rows))
    lines.append("")
    for combo in (combo_name("sigmoid", "mse"), combo_name("softmax", "cross_entropy")):
        for mode in config.modes:
            sel = whole[(whole["combo"] == combo) & (whole["gd_mode"] == mode)]
            if sel.empty:
                continue
            big = sel[sel["loss_rises_1pct"] > 0]
            chance = sel[sel["chance_level"]]
            fell = chance[~chance["ended_above_start"]]
            above_best = big[big["lr"] > big["best_lr"]]
            at_best = sel[(sel["lr"] == sel["best_lr"]) & (sel["loss_rises_1pct"] > 0)]
            n_best = int((sel["lr"] == sel["best_lr"]).sum())
            lines.append(
                f"- {combo}, {MODE_LABELS[mode]}: the loss rose by more than 1% in {len(big)} of {len(sel)} runs"
                + (f" (lr {_lrs(big['lr'])}; {len(above_best)} of them above their cell's best rate)" if len(big)
                   else "")
                + f", and in {len(at_best)} of the {n_best} runs at the best rate; {_runs(len(chance))} ended at "
                f"chance-level accuracy" + (f" (lr {_lrs(chance['lr'])}), {len(fell)} of them with a final loss "
                                            "below the initial one" if len(chance) else "") + ".")
    fb = whole[(whole["combo"] == combo_name("sigmoid", "mse")) & (whole["gd_mode"] == "full_batch")]
    ce = whole[(whole["combo"] == combo_name("softmax", "cross_entropy")) & (whole["gd_mode"] == "full_batch")]
    if len(fb):
        big = fb[fb["loss_rises_1pct"] > 0]
        if big.empty:
            lines.append(f"- Verdict on the claim: the full-batch sigmoid+mse loss never rose by more than 1% in "
                         f"any of its {len(fb)} runs (lr {_lrs(fb['lr'])}; hidden {', '.join(config.hidden)}) — the "
                         "reported increase is not reproduced on this data with these settings.")
        else:
            above = big[big["lr"] > big["best_lr"]]
            ce_big = ce[ce["loss_rises_1pct"] > 0]
            lines.append(f"- Verdict on the claim: the full-batch sigmoid+mse loss rose by more than 1% in "
                         f"{len(big)} of {len(fb)} runs, {len(above)} of them at a learning rate above their cell's "
                         "best; "
                         f"softmax+cross_entropy's full-batch loss did so in {len(ce_big)} of {len(ce)} runs"
                         + (f" ({len(ce_big[ce_big['lr'] > ce_big['best_lr']])} above the best rate)" if len(ce_big)
                            else "") + ".")
    lines.append("")
    return lines


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _lrs(values) -> str:
    vals = sorted(set(float(v) for v in values))
    return ", ".join(fg(v) for v in vals) if vals else "—"


def _verification_section(runs_df, results, config: StudyConfig) -> tuple[list[str], bool]:
    per_run = runs_df.drop_duplicates(["combo", "gd_mode", "hidden", "lr", "seed"])
    n = len(per_run)
    status = per_run["lockstep_status"]
    skipped = status == "skipped"
    failed = per_run[status == "fail"]
    unstable = per_run[status == "unstable"]
    nonfinite = per_run[status == "unverified"]
    passed = per_run[status == "pass"]
    verified = failed.empty
    lines = ["## 5. Verification against PyTorch", ""]
    if skipped.all():
        lines += ["Lockstep verification was skipped (--lockstep-steps 0).", ""]
        return lines, verified
    worst_pass = passed["lockstep_max_ratio"].max() if len(passed) else math.nan
    lines.append(f"Every run also trained the identical torch model in lockstep (`core.lockstep`: same spec, "
                 f"same initial state, same SGD settings and GD mode) for its first {config.lockstep_steps} steps: "
                 f"{len(passed)} of {n} runs passed (largest tol_ratio {fsci(worst_pass)}; 1 = the tolerance), "
                 f"{len(unstable)} broke the tolerance through amplified rounding, {len(failed)} failed otherwise"
                 + (f", {len(nonfinite)} could not be judged by any oracle (unverified)" if len(nonfinite) else "")
                 + ".")
    lines.append("")
    if len(unstable):
        lines.append(f"Amplified rounding ('unstable'): when the tolerance breaks, the same steps are rerun in "
                     "scratchnet from the initial weights nudged by one ulp; if that moves scratchnet's own weights at "
                     f"least {CONTROL_TEXT} as far as torch's differ, the learning rate — not a derivative — makes "
                     "the trajectories part:")
        lines.append("")
        for _, r in unstable.iterrows():
            above = r["lr"] > _best_for(results, r)
            lines.append(f"- {r['combo']} {MODE_LABELS[r['gd_mode']]} hidden {r['hidden']} lr {fg(r['lr'])} seed "
                         f"{r['seed']}: tol_ratio {fsci(r['lockstep_max_ratio'])}; weights differ from torch's by "
                         f"{fsci(r['lockstep_distance'])}, a 1-ulp nudge moves scratchnet's own by "
                         f"{fsci(r['control_distance'])}; this rate is "
                         f"{'above' if above else 'not above'} the cell's best ({fg(_best_for(results, r))}).")
        lines.append("")
    if len(failed):
        lines.append("Failed verifications: " + "; ".join(
            f"{r['combo']} {MODE_LABELS[r['gd_mode']]} {r['hidden']} lr {fg(r['lr'])} seed {r['seed']} "
            f"(tol_ratio {fsci(r['lockstep_max_ratio'])}{', ' + r['lockstep_note'] if r['lockstep_note'] else ''})"
            for _, r in failed.iterrows()) + ".")
        lines.append("")
    exact = per_run[per_run["lockstep_replay"] == "exact"]
    replay_modes = per_run[per_run["gd_mode"] != "mini_batch"]
    lines.append(f"Full-batch and stochastic runs replay the study's own first steps: in {len(exact)} of "
                 f"{len(replay_modes)} of them the lockstep's scratchnet losses equal the study's step losses "
                 "(relative difference ≤ 1e-12). `core.lockstep.GD_MODES` sets its own mini-batch size "
                 f"(about n/3), so mini-batch runs were verified at batch size {config.batch_size} on a subset of the "
                 f"study's first shuffled samples ({_first(per_run, 'mini_batch')}); replaying the exact mini-batch "
                 "schedule would need a `batch_size=` argument to `lockstep`.")
    lines.append("")
    return lines, verified


def _best_for(results, r) -> float:
    row = _row(results, combo=r["combo"], gd_mode=r["gd_mode"], hidden=r["hidden"], budget=r["budget"])
    return math.nan if row is None else float(row["best_lr"])


def _first(per_run, mode: str) -> str:
    sel = per_run[per_run["gd_mode"] == mode]
    return sel["lockstep_replay"].iloc[0] if len(sel) else "none"


#: ``lockstep_replay`` values (what the lockstep verification replayed) in words
REPLAY_WORDS = {"exact": "the run's own first steps", "skipped": "not checked",
                "different steps": "steps that differ from the run's own (see section 5)"}


def _replay_words(value: str) -> str:
    if value.startswith("subset of "):
        return (f"a {value} of the run's first shuffled samples at batch size {{batch}}, not the run's own "
                "schedule")
    if value.startswith("first "):
        return f"the run's own {value}"
    return REPLAY_WORDS.get(value, value)


def verification_scope(runs_df, config: StudyConfig) -> str:
    """How the runs were checked against PyTorch, from the verification's own records (the
    ``lockstep_replay`` column: what each run's lockstep replayed), per GD mode."""
    per_run = runs_df.drop_duplicates(["combo", "gd_mode", "hidden", "lr", "seed"])
    if per_run.empty or (per_run["lockstep_status"] == "skipped").all():
        return "The runs were not checked against PyTorch (--lockstep-steps 0)."
    parts = []
    for mode in config.modes:
        sel = per_run[per_run["gd_mode"] == mode]
        if sel.empty:
            continue
        counts = sel["lockstep_replay"].astype(str).value_counts()
        batch = sel["lockstep_batch"].iloc[0]
        what = "; ".join(f"{_replay_words(value).format(batch=batch)}"
                         + (f" ({n} of {len(sel)} runs)" if len(counts) > 1 else f" ({n} runs)")
                         for value, n in counts.items())
        parts.append(f"{MODE_LABELS[mode]}: {what}")
    return (f"Every run was checked against PyTorch by training the identical torch model in lockstep for its first "
            f"{config.lockstep_steps} steps (section 5); what the lockstep replayed, by GD mode — "
            + "; ".join(parts) + ".")


def summary_markdown(results, runs_df, data: Any, config: StudyConfig, wall: float,
                     files: Sequence[str]) -> tuple[str, bool, str]:
    """``(markdown, all verified, console text)``."""
    n_runs = len(runs_df.drop_duplicates(["combo", "gd_mode", "hidden", "lr", "seed"]))
    lines = [f"# The multi-class study on {data.name}", "",
             "Can sigmoid outputs with squared error predict 1 of n classes, and how do they compare with softmax + "
             "cross-entropy? Every number below is computed from `results.csv` / `runs.csv` in this folder. "
             + verification_scope(runs_df, config), ""]
    lines += _setup_section(data, config, n_runs, wall)
    lines.append("")
    head, console = _headline_section(results, config)
    lines += head
    lines += _can_mse_section(results, config)
    lines += _gradient_section(results, runs_df, config, data.n_classes)
    lines += _sum_section(results, config)
    lines += _rise_section(runs_df, results, config, data.n_train, data.n_classes)
    verification, verified = _verification_section(runs_df, results, config)
    lines += verification
    lines += ["## Files", "", *(f"- `{name}`" for name in files), "",
              "Regenerate: `python -m scratchnet_reference study" + (" --quick" if config.profile == "quick" else "")
              + "` (`scratchnet-conformance study --help` for the options).", ""]
    return "\n".join(lines), verified, "\n".join(console)


def results_markdown(results, config: StudyConfig) -> str:
    header = ["budget", "output+loss", "GD mode", "hidden", "best lr", "lr grid", "epochs", "updates", "train acc",
              "test acc", "train loss", "test loss", "epochs to target", "updates to target", "diverged lrs",
              "loss rose at lrs", "lockstep max tol_ratio"]
    rows = []
    for _, r in results.iterrows():
        rows.append([r["budget"], r["combo"], MODE_LABELS[r["gd_mode"]], r["hidden"],
                     fg(r["best_lr"]) + (" (edge)" if r["best_lr_at_edge"] else ""), r["lr_grid"], fnum(r["epochs"]),
                     fnum(r["updates"]), mean_std(r["train_acc"], r["train_acc_std"]),
                     mean_std(r["test_acc"], r["test_acc_std"]), fsci(r["train_loss"]), fsci(r["test_loss"]),
                     fnum(r["epochs_to_target"]), fnum(r["updates_to_target"]), r["diverged_lrs"] or "—",
                     r["loss_rose_lrs"] or "—", fsci(r["lockstep_max_ratio"]) + ("" if r["lockstep_status"] == "pass"
                                                                                 else f" ({r['lockstep_status']})")])
    return (f"# Multi-class study: results per cell (profile {config.profile})\n\n"
            f"Mean ± standard deviation over seeds at the best learning rate; target = "
            f"{config.target_accuracy:.0%} training accuracy. See summary.md for the setup.\n\n"
            + markdown_table(header, rows) + "\n")


# --------------------------------------------------------------------------------------------
# Plots (matplotlib, Agg canvas, no pyplot state)
# --------------------------------------------------------------------------------------------

def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _png(fig, title: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    info = PngInfo()
    info.add_itxt("Title", title)
    info.add_itxt("Software", "scratchnet_reference.study.report")
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True, pnginfo=info)
    return buf.getvalue()


def _best_lr(results, combo: str, mode: str, hidden: str, budget: str) -> float:
    r = _row(results, combo=combo, gd_mode=mode, hidden=hidden, budget=budget)
    return math.nan if r is None else float(r["best_lr"])


def _updates_axis(run: Run) -> np.ndarray:
    return run.curve["epoch"] * run.steps_per_epoch


def _mark_budgets(ax, config: StudyConfig, n_train: int, mode: str, per_epoch: int) -> None:
    cp = checkpoint_epochs(mode, config, n_train)
    for budget, style in (("equal_epochs", ":"), ("equal_updates", "--")):
        ax.axvline(max(cp[budget] * per_epoch, 1), color="#888", linestyle=style, linewidth=0.8)


def plot_curves_accuracy(runs, results, config: StudyConfig, data: Any) -> bytes:
    combos = [combo_name(o, l) for o, l in config.combos]
    fig = _figure(4.2 * len(config.modes), 2.6 * len(combos) + 0.6)
    axes = fig.subplots(len(combos), len(config.modes), squeeze=False, sharex=True, sharey=True)
    for i, combo in enumerate(combos):
        for j, mode in enumerate(config.modes):
            ax = axes[i][j]
            budget = longest_budget(mode, config, data.n_train)
            per_epoch = 1
            for hidden in config.hidden:
                lr = _best_lr(results, combo, mode, hidden, budget)
                run = _run_for(runs, {"combo": combo, "gd_mode": mode, "hidden": hidden}, lr, config.plot_seed)
                if run is None:
                    continue
                x = _updates_axis(run)[1:]
                color = HIDDEN_COLORS.get(hidden, None)
                ax.plot(x, run.curve["train_acc"][1:], color=color, linewidth=1.3, label=f"{hidden} (lr {lr:g})")
                ax.plot(x, run.curve["test_acc"][1:], color=color, linewidth=1.0, linestyle="--")
                per_epoch = run.steps_per_epoch
            ax.set_xscale("log")
            ax.set_ylim(0, 1.02)
            ax.axhline(config.target_accuracy, color="#bbb", linewidth=0.6)
            _mark_budgets(ax, config, data.n_train, mode, per_epoch)
            ax.set_title(f"{combo} · {MODE_LABELS[mode]}", fontsize=9)
            ax.legend(fontsize=6.5, loc="lower right", title="hidden (best lr)", title_fontsize=6.5)
            if i == len(combos) - 1:
                ax.set_xlabel("updates (log)")
            if j == 0:
                ax.set_ylabel("accuracy")
    fig.suptitle(f"{data.name}: train (solid) and test (dashed) accuracy, best learning rate per cell, seed "
                 f"{config.plot_seed}; dotted line: equal_epochs checkpoint, dashed: equal_updates", fontsize=10)
    return _png(fig, "accuracy curves")


def plot_curves_loss(runs, results, config: StudyConfig, data: Any) -> bytes:
    from matplotlib import colormaps

    combos = [combo_name(o, l) for o, l in config.combos]
    hidden = config.headline_hidden if config.headline_hidden in config.hidden else config.hidden[0]
    fig = _figure(4.2 * len(config.modes), 2.6 * len(combos) + 0.6)
    axes = fig.subplots(len(combos), len(config.modes), squeeze=False, sharex=True)
    cmap = colormaps["viridis"]
    for i, combo in enumerate(combos):
        for j, mode in enumerate(config.modes):
            ax = axes[i][j]
            cell_runs = sorted((r for r in runs if r.cell.combo == combo and r.cell.gd_mode == mode
                                and r.cell.hidden == hidden and r.seed == config.plot_seed), key=lambda r: r.lr)
            per_epoch = 1
            for k, run in enumerate(cell_runs):
                y = run.trace["loss"]
                x = np.arange(len(y)) * run.steps_per_epoch
                color = cmap(k / max(len(cell_runs) - 1, 1) * 0.9)
                ok = np.isfinite(y) & (y > 0)
                ax.plot(np.maximum(x[ok], 0.8), y[ok], color=color, linewidth=1.1, label=f"lr {run.lr:g}")
                if run.diverged:
                    ax.plot(max(x[ok][-1], 0.8) if ok.any() else 1, y[ok][-1] if ok.any() else 1, "x", color=color)
                per_epoch = run.steps_per_epoch
            ax.set_xscale("log")
            ax.set_yscale("log")
            _mark_budgets(ax, config, data.n_train, mode, per_epoch)
            ax.set_title(f"{combo} · {MODE_LABELS[mode]}", fontsize=9)
            ax.legend(fontsize=6.5, loc="lower left")
            if i == len(combos) - 1:
                ax.set_xlabel("updates (log; 0.8 = before training)")
            if j == 0:
                ax.set_ylabel("training loss (whole train set)")
    fig.suptitle(f"{data.name}: training loss for every learning rate (hidden {hidden}, seed {config.plot_seed}); "
                 "× = diverged", fontsize=10)
    return _png(fig, "loss curves")


def plot_lr_sweep(runs_df, results, config: StudyConfig, data: Any) -> bytes:
    combos = [combo_name(o, l) for o, l in config.combos]
    whole = end_of_run_rows(runs_df, config, data.n_train)
    fig = _figure(4.0 * len(config.modes), 2.4 * len(combos) + 0.6)
    axes = fig.subplots(len(combos), len(config.modes), squeeze=False, sharey=True)
    for i, combo in enumerate(combos):
        for j, mode in enumerate(config.modes):
            ax = axes[i][j]
            for hidden in config.hidden:
                sel = whole[(whole["combo"] == combo) & (whole["gd_mode"] == mode) & (whole["hidden"] == hidden)]
                if sel.empty:
                    continue
                agg = sel.groupby("lr").agg(train=("train_acc", "mean"), test=("test_acc", "mean"),
                                            div=("diverged", "any")).reset_index()
                color = HIDDEN_COLORS.get(hidden)
                ax.plot(agg["lr"], agg["train"].fillna(0), "o-", color=color, markersize=3.5, linewidth=1.1,
                        label=hidden)
                ax.plot(agg["lr"], agg["test"].fillna(0), "--", color=color, linewidth=0.9)
                for _, r in agg[agg["div"]].iterrows():
                    ax.plot(r["lr"], 0.0, "x", color=color, markersize=6)
                best = _best_lr(results, combo, mode, hidden, longest_budget(mode, config, data.n_train))
                if np.isfinite(best):
                    row = agg[agg["lr"] == best]
                    ax.plot(best, row["train"].iloc[0], "*", color=color, markersize=10, markeredgecolor="black",
                            markeredgewidth=0.4)
            ax.set_xscale("log")
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(f"{combo} · {MODE_LABELS[mode]}", fontsize=9)
            ax.legend(fontsize=6.5, loc="lower left")
            if i == len(combos) - 1:
                ax.set_xlabel("learning rate")
            if j == 0:
                ax.set_ylabel("accuracy at end of run")
    fig.suptitle(f"{data.name}: learning-rate sweep — train (solid) / test (dashed) accuracy at the end of each run "
                 "(mean over seeds); ★ best rate, × diverged", fontsize=10)
    return _png(fig, "learning-rate sweep")


def plot_gradients(runs, results, config: StudyConfig, data: Any) -> bytes:
    hidden = config.headline_hidden if config.headline_hidden in config.hidden else config.hidden[0]
    combos = [combo_name(o, l) for o, l in config.combos]
    panels = (("grad_z", "N·|∂L/∂z_out|, all training samples"),
              ("grad_z_wrong", "N·|∂L/∂z_out|, misclassified samples only"),
              ("lr_grad_w", "lr × ‖∂L/∂W_out‖ (full-batch gradient)"))
    fig = _figure(4.4 * len(panels), 2.7 * len(config.modes) + 0.6)
    axes = fig.subplots(len(config.modes), len(panels), squeeze=False)
    headline = {combo_name(*c) for c in config.headline_combos}
    for i, mode in enumerate(config.modes):
        budget = longest_budget(mode, config, data.n_train)
        for j, (key, title) in enumerate(panels):
            ax = axes[i][j]
            for combo in combos:
                lr = _best_lr(results, combo, mode, hidden, budget)
                run = _run_for(runs, {"combo": combo, "gd_mode": mode, "hidden": hidden}, lr, config.plot_seed)
                if run is None:
                    continue
                x = _updates_axis(run)
                y = run.curve["grad_w_out"] * run.lr if key == "lr_grad_w" else run.curve[key]
                ok = np.isfinite(y) & (y > 0)
                bold = combo in headline
                ax.plot(x[ok], y[ok], color=COMBO_COLORS.get(combo), linewidth=1.8 if bold else 0.9,
                        alpha=1.0 if bold else 0.75, label=f"{combo} (lr {lr:g})")
            ax.set_xscale("symlog", linthresh=1)
            ax.set_yscale("log")
            ax.set_title(f"{MODE_LABELS[mode]}: {title}", fontsize=8.5)
            if i == len(config.modes) - 1:
                ax.set_xlabel("updates (symlog)")
            if j == 0:
                ax.legend(fontsize=6.5, loc="lower left")
    fig.suptitle(f"{data.name}: output-layer gradient over training (hidden {hidden}, best learning rate, seed "
                 f"{config.plot_seed}) — the vanishing-gradient claim, measured", fontsize=10)
    return _png(fig, "gradient magnitudes")


def plot_headline(runs_df, results, config: StudyConfig, data: Any) -> bytes:
    head = runs_df[runs_df["headline"]]
    combos = [combo_name(*c) for c in config.headline_combos]
    fig = _figure(5.2 * len(BUDGETS), 6.4)
    axes = fig.subplots(2, len(BUDGETS), squeeze=False)
    width = 0.8 / max(len(combos), 1)
    for j, budget in enumerate(BUDGETS):
        for k, combo in enumerate(combos):
            for m, mode in enumerate(config.modes):
                r = _row(results, combo=combo, gd_mode=mode, budget=budget, hidden=config.headline_hidden)
                if r is None or not np.isfinite(r["best_lr"]):
                    continue
                sel = head[(head["combo"] == combo) & (head["gd_mode"] == mode) & (head["budget"] == budget)
                           & (head["lr"] == r["best_lr"])]
                xpos = m + (k - (len(combos) - 1) / 2) * width
                color = COMBO_COLORS.get(combo)
                for row, col in enumerate(("test_acc", "updates_to_target")):
                    ax = axes[row][j]
                    vals = sel[col].to_numpy(dtype=np.float64)
                    vals = vals[np.isfinite(vals)]
                    if len(vals) == 0:
                        continue
                    ax.errorbar(xpos, vals.mean(), yerr=vals.std(ddof=1) if len(vals) > 1 else 0, fmt="o", color=color,
                                capsize=4, markersize=6, label=combo if m == 0 else None)
                    ax.scatter(np.full(len(vals), xpos + width * 0.25), vals, s=10, color=color, alpha=0.6)
        for row, label in enumerate(("test accuracy", f"updates to {config.target_accuracy:.0%} train acc")):
            ax = axes[row][j]
            ax.set_xlim(-0.5, len(config.modes) - 0.5)
            ax.set_xticks(range(len(config.modes)), [MODE_LABELS[m] for m in config.modes])
            if not ax.get_lines() and not ax.collections:
                ax.text(0.5, 0.5, "target not reached by any seed", transform=ax.transAxes, ha="center",
                        color="#666")
            ax.set_ylabel(label)
            if row == 1:
                ax.set_yscale("log")
            ax.set_title(f"{budget}", fontsize=9)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.suptitle(f"{data.name}: headline cells (hidden {config.headline_hidden}), best learning rate, mean ± std over "
                 f"seeds {', '.join(map(str, config.headline_seeds))} (dots: single seeds)", fontsize=10)
    return _png(fig, "headline")


def plot_outputs(runs, results, config: StudyConfig, data: Any) -> bytes:
    hidden = config.headline_hidden if config.headline_hidden in config.hidden else config.hidden[0]
    mode = "mini_batch" if "mini_batch" in config.modes else config.modes[0]
    budget = longest_budget(mode, config, data.n_train)
    fig = _figure(11, 4.0)
    ax_sum, ax_rel = fig.subplots(1, 2)
    for combo in (combo_name(o, l) for o, l in config.combos):
        lr = _best_lr(results, combo, mode, hidden, budget)
        run = _run_for(runs, {"combo": combo, "gd_mode": mode, "hidden": hidden}, lr, config.plot_seed)
        if run is None or not np.all(np.isfinite(run.final_test_output)):
            continue
        out = run.final_test_output
        color = COMBO_COLORS.get(combo)
        sums = out.sum(axis=1)
        ax_sum.hist(sums, bins=np.linspace(0, max(2.0, float(sums.max())), 60), histtype="step", color=color,
                    linewidth=1.4, label=f"{combo}: mean {sums.mean():.3f}")
        conf = out.max(axis=1)
        correct = out.argmax(axis=1) == data.y_test
        edges = np.linspace(0, 1, 11)
        which = np.clip(np.digitize(conf, edges) - 1, 0, 9)
        xs, ys = [], []
        for b in range(10):
            mask = which == b
            if mask.sum() >= 3:
                xs.append(conf[mask].mean())
                ys.append(correct[mask].mean())
        ax_rel.plot(xs, ys, "o-", color=color, markersize=3.5, linewidth=1.2, label=combo)
    ax_sum.set_xlabel("sum of the 10 outputs (test images)")
    ax_sum.set_ylabel("images")
    ax_sum.set_title("Do the outputs sum to 1?", fontsize=9)
    ax_sum.legend(fontsize=7)
    ax_rel.plot([0, 1], [0, 1], color="#999", linewidth=0.8, linestyle=":")
    ax_rel.set_xlabel("top output (read as a probability)")
    ax_rel.set_ylabel("accuracy in the bin")
    ax_rel.set_title("Reliability of the top output (10 bins, ≥ 3 images)", fontsize=9)
    ax_rel.legend(fontsize=7)
    fig.suptitle(f"{data.name}: test outputs at the end of training ({MODE_LABELS[mode]}, hidden {hidden}, best "
                 f"learning rate, seed {config.plot_seed})", fontsize=10)
    return _png(fig, "outputs")


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def write_study(runs: Sequence[Run], data: Any, config: StudyConfig, out: Path | str,
                wall_time_s: float = math.nan) -> StudySummary:
    """Build the tables, plots and summary of ``runs`` and write them to ``out``."""
    from ..reports.files import ReportFolder
    from ..reports.metadata import collect_metadata

    out = Path(out)
    runs_df = runs_frame(runs, data, config)
    results = results_frame(runs_df, config)
    meta = collect_metadata(None, {"profile": config.profile, "dataset": data.description,
                                   "seed": ", ".join(map(str, sorted(set(config.seeds) | set(config.headline_seeds)))),
                                   "wall_time_s": f"{wall_time_s:.1f}"})
    meta = {k: v for k, v in meta.items() if k in ("profile", "dataset", "seed", "date", "git_commit", "scratchnet",
                                                   "numpy", "torch", "python", "wall_time_s")}
    files = ["results.csv", "results.md", "runs.csv", "summary.md", *PLOTS]
    with ReportFolder(out, meta) as folder:  # complete or refused: manifest.json is written last
        folder.write_csv("results.csv", results)
        folder.write_csv("runs.csv", runs_df)
        folder.write_text("results.md", results_markdown(results, config))
        plot_runs = list(runs)
        for name, make in (("curves_accuracy.png", lambda: plot_curves_accuracy(plot_runs, results, config, data)),
                           ("curves_loss.png", lambda: plot_curves_loss(plot_runs, results, config, data)),
                           ("lr_sweep.png", lambda: plot_lr_sweep(runs_df, results, config, data)),
                           ("gradients.png", lambda: plot_gradients(plot_runs, results, config, data)),
                           ("headline.png", lambda: plot_headline(runs_df, results, config, data)),
                           ("outputs.png", lambda: plot_outputs(plot_runs, results, config, data))):
            folder.write_bytes(name, make())
        text, verified, console = summary_markdown(results, runs_df, data, config, wall_time_s, files)
        folder.write_text("summary.md", text)
    return StudySummary(files=files, verified=verified, console=console, results=results, runs=runs_df)
