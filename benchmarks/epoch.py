"""Time one training epoch: scratchnet's ``fit``, the sum of its own steps, torch, scikit-learn.

    python -m benchmarks.epoch          # -> reports/bench/epoch.{csv,md}

The data: ``n = steps × batch`` rows (default 100 × 128) of 784 standard-normal float32 features
with labels of 10 classes, the network 784-256-128-10 relu with softmax + cross-entropy, plain
SGD (lr 0.01), batches in order (no shuffling). Four engines run one epoch each, in this one
process, block after block, the order rotated every block, with a pause before
each (the other engines' thread pools fall asleep, see ``benchmarks/README.md``):

* ``fit`` — ``net.fit(x, labels, epochs=1, batch_size=B, optimizer=opt, shuffle=False)``, the
  whole public call: argument checks, validating ``x`` and ``y``, the loop, the history;
* ``steps`` — the bare ``net.train_step`` calls of the same epoch on batches sliced beforehand:
  what ``fit`` would cost with zero overhead (``fit_over_steps`` = ``fit / steps``);
* ``products`` — the matrix products of those steps alone (``benchmarks.step.make_products``,
  once per batch, on that batch's data): an epoch with zero elementwise work, so
  ``products_over_sklearn`` is the lowest ``fit_over_sklearn`` a step computing these products
  with this BLAS and these layouts could reach;
* ``torch`` — the same model in torch eager (``torch.nn.Linear`` layers, ``F.cross_entropy``,
  ``torch.optim.SGD``), the idiomatic loop over the same batches;
* ``sklearn`` — ``MLPClassifier(hidden_layer_sizes=(256, 128), solver="sgd", batch_size=B,
  learning_rate_init=0.01, momentum=0, alpha=0, shuffle=False)``, one ``partial_fit`` (one
  epoch; the first call, which allocates, is made before timing). It computes in float32 for
  float32 data.

Each row is one thread setting (numpy's BLAS via threadpoolctl, ``torch.set_num_threads``; the
scikit-learn MLP uses numpy's BLAS too). Columns: median ms per epoch of each engine (IQR in
``*_iqr_ms``); ``fit_over_steps`` (target ≤ 1.05), ``fit_over_sklearn`` (target ≤ 0.6),
``fit_over_torch`` and ``products_over_sklearn``, each the median of the per-block ratios (the
engines of one block run within a second of each other, so the machine's drift cancels);
``others_cpu`` (CPUs other processes kept busy meanwhile) and ``attempt`` (which measurement was
kept: a noisy or disturbed one is repeated, see :func:`bench_epoch`); ``target`` / ``met``
(``disturbed`` when others kept more than half a CPU busy) and ``bounded_by`` (for a missed
``fit_over_sklearn``: ``products`` when the products alone miss it, else ``elementwise``; for a
missed ``fit_over_steps`` alone: ``fit overhead``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scratchnet import ModelSpec, Network
from scratchnet.registry import make_optimizer

from .step import (
    DISTURBED,
    MLP,
    SETTLE_S,
    OtherProcesses,
    blas_info,
    header_common,
    least_disturbed,
    make_products,
    source_commit,
    threads_set,
    write_reports,
)

__all__ = ["COLUMNS", "epoch_engines", "bench_epoch", "run", "main"]

LR = 0.01
COLUMNS = ["threads", "n", "batch", "epochs_timed", "others_cpu", "attempt", "fit_ms", "fit_iqr_ms", "steps_ms",
           "steps_iqr_ms", "products_ms", "products_iqr_ms", "torch_ms", "torch_iqr_ms", "sklearn_ms",
           "sklearn_iqr_ms", "fit_over_steps", "fit_over_sklearn", "fit_over_torch", "products_over_sklearn",
           "target", "met", "bounded_by"]
TARGETS = {"fit_over_steps": 1.05, "fit_over_sklearn": 0.6}


def _data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    return rng.standard_normal((n, MLP[0]), dtype=np.float32), rng.integers(0, MLP[-1], n)


def epoch_engines(n: int, batch: int) -> dict[str, Callable[[], Any]]:
    """``{engine: closure running one epoch}`` on the same data (see the module docstring)."""
    import torch
    import torch.nn.functional as F
    from sklearn.neural_network import MLPClassifier

    x, labels = _data(n)
    net = Network(ModelSpec(MLP, hidden="relu", output="softmax", loss="cross_entropy", dtype="float32", seed=0))
    opt = make_optimizer({"name": "sgd", "lr": LR}, net.parameters())
    step_net = Network(net.spec)
    step_opt = make_optimizer({"name": "sgd", "lr": LR}, step_net.parameters())
    target = step_net.loss_fn.prepare_target(labels, MLP[-1], step_net.dtype)
    batches = [(x[i:i + batch], target[i:i + batch]) for i in range(0, n, batch)]

    def fit() -> None:
        net.fit(x, labels, epochs=1, batch_size=batch, optimizer=opt, shuffle=False)

    def steps() -> None:
        for xb, tb in batches:
            step_net.train_step(xb, tb, step_opt)

    step_net.train_step(*batches[0], step_opt)
    one_step_products = make_products(step_net)

    def products() -> None:
        first = step_net.layers[0]
        for xb, _ in batches:
            first.x = xb                 # each batch's data, as the steps read it
            one_step_products()

    layers = [torch.nn.Linear(i, o) for i, o in zip(MLP[:-1], MLP[1:])]
    model = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1], torch.nn.ReLU(), layers[2])
    t_opt = torch.optim.SGD(model.parameters(), lr=LR)
    t_batches = [(torch.from_numpy(x[i:i + batch]), torch.from_numpy(labels[i:i + batch]))
                 for i in range(0, n, batch)]

    def torch_epoch() -> None:
        for xb, yb in t_batches:
            t_opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            t_opt.step()
            loss.item()

    mlp = MLPClassifier(hidden_layer_sizes=MLP[1:-1], activation="relu", solver="sgd", batch_size=batch,
                        learning_rate_init=LR, momentum=0.0, nesterovs_momentum=False, alpha=0.0,
                        shuffle=False, early_stopping=False, random_state=0)
    classes = np.arange(MLP[-1])

    def sklearn_epoch() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # ConvergenceWarning-style chatter, not results
            mlp.partial_fit(x, labels, classes=classes)

    return {"fit": fit, "steps": steps, "products": products, "torch": torch_epoch, "sklearn": sklearn_epoch}


def rotating(engines: dict[str, Callable[[], Any]], blocks: int, settle: float = SETTLE_S) -> dict[str, np.ndarray]:
    """Seconds of one call of every engine per block, the order rotated by one every block."""
    names = list(engines)
    times = {k: np.empty(blocks) for k in names}
    for r in range(blocks):
        for k in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(settle)
            t0 = time.perf_counter()
            engines[k]()
            times[k][r] = time.perf_counter() - t0
    return times


def bench_epoch(threads: int, n: int, batch: int, blocks: int, attempts: int = 3,
                retry_pause_s: float = 5.0) -> dict[str, Any]:
    """One row: every engine warmed up with one epoch, then ``blocks`` timed epochs each; like a
    step row, the least disturbed of up to ``attempts`` measurements
    (:func:`benchmarks.step.least_disturbed`)."""
    engines = epoch_engines(n, batch)
    for f in engines.values():
        f()
    def measure() -> tuple[float, float, dict[str, np.ndarray]]:
        with OtherProcesses() as others:
            times = rotating(engines, blocks)
        spread = max(float(np.subtract(*np.percentile(t, [75, 25])) / np.median(t)) for t in times.values())
        return others.cpus, spread, times

    attempt, others_cpu, times = least_disturbed(measure, attempts, retry_pause_s)
    row: dict[str, Any] = {"threads": threads, "n": n, "batch": batch, "epochs_timed": blocks,
                           "others_cpu": others_cpu, "attempt": attempt}
    for k, t in times.items():
        q1, med, q3 = np.percentile(t, [25, 50, 75])
        row[f"{k}_ms"], row[f"{k}_iqr_ms"] = med * 1e3, (q3 - q1) * 1e3
    # Ratios pair the epochs of one block (run within a second of each other): the median of the
    # per-block ratios, which the machine's drift over minutes does not move.
    for other in ("steps", "sklearn", "torch"):
        row[f"fit_over_{other}"] = float(np.median(times["fit"] / times[other]))
    row["products_over_sklearn"] = float(np.median(times["products"] / times["sklearn"]))
    row["target"] = "; ".join(f"{k}≤{v:g}" for k, v in TARGETS.items())
    missed = [k for k, v in TARGETS.items() if row[k] > v]
    row["met"] = "NO" if missed else "yes"
    row["bounded_by"] = "-"
    if "fit_over_sklearn" in missed:
        products_miss = row["products_over_sklearn"] > TARGETS["fit_over_sklearn"]
        row["bounded_by"] = "products" if products_miss else "elementwise"
    elif missed:
        row["bounded_by"] = "fit overhead"
    if others_cpu > DISTURBED:
        row["met"] = "disturbed"       # see benchmarks.step.judge
    return row


def run(out_dir: Path, thread_counts: Sequence[int], n: int, batch: int, blocks: int, verbose: bool = True):
    import pandas as pd

    source_commit()
    blas = blas_info()
    load_start = os.getloadavg()
    rows = []
    for t in thread_counts:
        with threads_set(t):
            row = bench_epoch(t, n, batch, blocks)
        rows.append(row)
        if verbose:
            print(f"{t} thread(s): fit {row['fit_ms']:.1f} ms, steps {row['steps_ms']:.1f}, torch "
                  f"{row['torch_ms']:.1f}, sklearn {row['sklearn_ms']:.1f}; fit/steps {row['fit_over_steps']:.3f}, "
                  f"fit/sklearn {row['fit_over_sklearn']:.3f}", flush=True)
    meta = header_common(blas, (load_start, os.getloadavg()))
    meta = {"benchmark": f"one epoch ({n // batch} steps of {batch}, 784-256-128-10 relu, softmax+CE, SGD, "
                         "float32, no shuffling): scratchnet fit, its bare steps, torch eager, scikit-learn "
                         "(python -m benchmarks.epoch)", **meta}
    df = pd.DataFrame(rows, columns=COLUMNS)
    paths = write_reports(df, meta, out_dir, "epoch", title="scratchnet fit vs its steps, torch and scikit-learn: "
                                                             "one epoch", note="Times are ms per epoch (median, IQR).")
    if verbose:
        print("wrote", *paths)
    return df


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.epoch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("reports/bench"), help="output directory")
    parser.add_argument("--steps", type=int, default=100, help="steps per epoch (default 100)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--blocks", type=int, default=15, help="timed epochs per engine and thread setting")
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="thread settings (default: 1 and all of numpy's BLAS threads)")
    args = parser.parse_args(argv)
    threads = args.threads or sorted({1, blas_info()["threads"]})
    run(args.out, threads, args.steps * args.batch, args.batch, args.blocks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
