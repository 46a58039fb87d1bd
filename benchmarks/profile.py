"""Where the time of one training step goes: every operation of the step, timed where it sits
in the step and alone.

    python -m benchmarks.profile                       # 784-256-128-10 relu, softmax+CE, SGD, float32, B=128
    python -m benchmarks.profile --batch 32 --threads 1
    python -m benchmarks.profile --report              # B = 128 and 32, 1 and 2 threads -> reports/bench/profile.md

After one real step, the step is re-enacted as the calls ``net.train_step`` makes, on the step's
own arrays and in its order: per layer the forward product ``x·Wᵀ``, ``+ b`` and the activation;
the fused softmax + cross-entropy; from the last layer down the activation's VJP (in place, as the
network does), ``∂W``, ``∂b`` (float64 accumulation) and ``∂x``; then SGD on every parameter.
Each part is timed two ways, medians over ``reps``:

* ``in step`` — the whole sequence run ``reps`` times, each part with its own clock reading: the
  part's cost where it sits, on the caches the operations before it leave (with two BLAS threads,
  part of every product's operands and output lives in the other core's cache);
* ``alone`` — the part repeated ``reps`` times in a row, on caches it warmed itself.

``in step − alone`` is what the part's place in the step costs. ``step`` is the real
``train_step``, run after each sequence and timed the same way; ``rest = step − Σ in step`` is
mostly the Python between the calls (and, with a minus sign, the clock readings of the parts). BLAS
threads are set with threadpoolctl for the whole run, and the sgemm peak (best of 30 ``np.dot``
of two 1024 × 1024 matrices, before and after) is measured with the same threads.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .step import MLP, OPTIMIZERS, Case, _data, make_scratchnet, measure_peak

__all__ = ["Part", "step_parts", "profile_step", "main"]


class Part(NamedTuple):
    name: str
    run: Callable[[], object]
    flops: float            # of a matrix product; 0 for elementwise parts


def _layout(a: np.ndarray) -> str:
    return "C" if a.flags.c_contiguous else ("F" if a.flags.f_contiguous else "strided")


def step_parts(net, target: np.ndarray, lr: float) -> list[Part]:
    """The calls of one SGD ``train_step`` of ``net`` (fused output head), in order, on its arrays."""
    from scratchnet.fused import fused_loss_and_grad

    if not net._fused:
        raise ValueError(f"the profile re-enacts fused output heads only, got {net.spec.describe()}")
    layers, last = net.layers, len(net.layers) - 1
    delta: dict[int, np.ndarray] = {}      # δ = ∂L/∂z of each layer, produced by one part, read by the next
    parts: list[Part] = []
    for k, layer in enumerate(layers):
        m, kk, n = layer.x.shape[0], layer.in_features, layer.out_features
        parts += [
            Part(f"L{k} fwd  z = x·Wᵀ  ({m}×{kk})·({kk}×{n})  Wᵀ {_layout(layer.weight.T)}-order",
                 lambda x=layer.x, w=layer.weight, z=layer._z_buf: np.dot(x, w.T, out=z), 2.0 * m * kk * n),
            Part(f"L{k} fwd  z += b", lambda z=layer._z_buf, b=layer.bias: np.add(z, b, out=z), 0.0),
            Part(f"L{k} fwd  {layer.activation.name}",
                 lambda act=layer.activation, z=layer._z_buf, a=layer._a_buf: act.forward_into(z, a), 0.0),
        ]
    out = layers[-1]

    def loss() -> None:
        delta[last] = fused_loss_and_grad(net.spec.output["name"], net.loss_fn, out.z, out.a, target)[1]

    parts.append(Part("loss    fused softmax + CE (value, δ)", loss, 0.0))
    for k in range(last, -1, -1):
        layer = layers[k]
        m, kk, n = layer.x.shape[0], layer.in_features, layer.out_features
        if k < last:
            def vjp(k=k, layer=layer, g=layers[k + 1]._dx_buf) -> None:
                delta[k] = layer.activation.backward_into(layer.z, layer.a, g, out=g)
            parts.append(Part(f"L{k} bwd  {layer.activation.name}' (in place)", vjp, 0.0))
        how = "δᵀ·x" if layer.grad_weight.flags.c_contiguous else "xᵀ·δ into ∂Wᵀ"
        parts.append(Part(f"L{k} bwd  ∂W: {how}  (K = batch = {m})",
                          lambda k=k, layer=layer: layer.weight_gradient_into(delta[k]), 2.0 * m * kk * n))

        def bias_grad(k=k, gb=layer.grad_bias) -> None:
            gb[...] = delta[k].sum(axis=0, dtype=np.float64)
        parts.append(Part(f"L{k} bwd  ∂b = Σ δ (float64 accumulation)", bias_grad, 0.0))
        if k > 0:
            parts.append(Part(f"L{k} bwd  ∂x = δ·W  ({m}×{n})·({n}×{kk})",
                              lambda k=k, w=layer.weight, dx=layer._dx_buf: np.dot(delta[k], w, out=dx),
                              2.0 * m * kk * n))
    for p in net.parameters():
        work = np.empty_like(p.value)
        parts.append(Part(f"opt     sgd {p.name} {p.value.shape}",
                          lambda p=p, w=work: p.value.__isub__(np.multiply(p.grad, lr, out=w)), 0.0))
    return parts


def _in_sequence(parts: Sequence[Part], step: Callable[[], object], reps: int,
                 warm: int = 10) -> tuple[np.ndarray, float]:
    """Median seconds of each part over ``reps`` runs of the whole sequence, and of the real
    step, run after each sequence (so both are measured over the same seconds of the machine)."""
    clock = time.perf_counter_ns
    times = np.empty((reps + warm, len(parts) + 1))
    for r in range(reps + warm):
        for i, part in enumerate(parts):
            t0 = clock()
            part.run()
            times[r, i] = clock() - t0
        t0 = clock()
        step()
        times[r, -1] = clock() - t0
    medians = np.median(times[warm:], axis=0) * 1e-9
    return medians[:-1], float(medians[-1])


def _alone(f: Callable[[], object], reps: int, warm: int = 10) -> float:
    """Median seconds of ``f`` repeated ``reps`` times in a row."""
    for _ in range(warm):
        f()
    times = np.empty(reps)
    for i in range(reps):
        t0 = time.perf_counter_ns()
        f()
        times[i] = time.perf_counter_ns() - t0
    return float(np.median(times)) * 1e-9


def profile_step(case: Case, reps: int) -> tuple[list[tuple[str, float, float, float]], float]:
    """``([(part, seconds in step, seconds alone, flops)], seconds of the real step)``."""
    net, step = make_scratchnet(case)
    step()
    _, labels = _data(case)                        # the step's own batch (its x is in net.layers[0].x)
    target = net.loss_fn.prepare_target(labels, case.sizes[-1], net.dtype)
    parts = step_parts(net, target, OPTIMIZERS[case.optimizer]["lr"])
    in_step, step_s = _in_sequence(parts, step, reps)
    alone = [_alone(p.run, reps) for p in parts]
    return [(p.name, s, a, p.flops) for p, s, a in zip(parts, in_step, alone)], step_s


def profile_table(case: Case, threads: int | None, reps: int) -> list[str]:
    """The profile of one step of ``case`` with ``threads`` BLAS threads (None: numpy's), as text lines."""
    from threadpoolctl import threadpool_limits

    from .step import blas_info

    with threadpool_limits(limits=threads, user_api="blas"):
        threads = blas_info()["threads"]
        peak = measure_peak(case.dtype, 1024, 30)
        rows, step_s = profile_step(case, reps)
        peak = max(peak, measure_peak(case.dtype, 1024, 30))

    def line(name: str, s: float, a: float | None, flops: float) -> str:
        text = f"{name:58s} {s * 1e6:9.1f} " + (f"{a * 1e6:8.1f} {(s - a) * 1e6:+8.1f}" if a is not None else " " * 17)
        text += f" {100 * s / step_s:6.1f}%"
        return text + (f" {flops / s / 1e9:8.1f} {100 * flops / s / 1e9 / peak:6.1f}%" if flops else "")

    products = [(s, a) for _, s, a, f in rows if f]
    others = [(s, a) for _, s, a, f in rows if not f]
    return [
        f"{case.name}: {threads} BLAS thread(s), {case.dtype} gemm peak {peak:.1f} GFLOP/s, medians of {reps}",
        f"{'part':58s} {'in step':>9s} {'alone':>8s} {'place':>8s} {'% step':>7s} {'GFLOP/s':>8s} {'% peak':>7s}",
        *(line(name, s, a, flops) for name, s, a, flops in rows),
        line("Σ matrix products", sum(s for s, _ in products), sum(a for _, a in products), case.true_flops),
        line("Σ elementwise parts", sum(s for s, _ in others), sum(a for _, a in others), 0.0),
        line("rest: step − Σ in step (Python between the calls)", step_s - sum(r[1] for r in rows), None, 0.0),
        line("step    net.train_step (whole)", step_s, None, case.true_flops),
    ]


#: The configurations of the committed report (``--report``): where issue 16's targets are missed.
REPORT = ((128, 1), (128, 2), (32, 1), (32, 2))


def write_report(out_dir: Path, reps: int) -> Path:
    """``profile.md`` with the tables of :data:`REPORT`, headed by what they were measured on."""
    from .step import _atomic_write, blas_info, header_common, source_commit

    source_commit()
    load_start = os.getloadavg()
    tables = [profile_table(Case(sizes=MLP, batch=b), t, reps) for b, t in REPORT]
    meta = header_common(blas_info(), (load_start, os.getloadavg()))
    md = ["# Where the time of one step goes (python -m benchmarks.profile --report)", ""]
    md += [f"- **{k}**: {v}" for k, v in meta.items()]
    md += ["", __doc__.split("\n\n", 2)[2].strip(), ""]
    for table in tables:
        md += ["```", *table, "```", ""]
    path = out_dir / "profile.md"
    _atomic_write(path, "\n".join(md))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: numpy's)")
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--report", action="store_true",
                        help=f"the committed report instead: (batch, threads) in {REPORT} -> OUT/profile.md")
    parser.add_argument("--out", type=Path, default=Path("reports/bench"), help="output directory of --report")
    args = parser.parse_args(argv)
    if args.report:
        print("wrote", write_report(args.out, args.reps))
        return 0
    print(*profile_table(Case(sizes=MLP, batch=args.batch, dtype=args.dtype), args.threads, args.reps), sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
