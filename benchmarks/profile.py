"""Where the time of one training step goes: every operation of the step timed on its own.

    python -m benchmarks.profile                       # 784-256-128-10 relu, softmax+CE, SGD, float32, B=128
    python -m benchmarks.profile --batch 32 --threads 1

After one real step (buffers warm), each operation the step performs is re-run on the same
arrays ``reps`` times in a row and its median taken: the matrix products (with their shape, the
operand layouts NumPy hands to BLAS and their GFLOP/s), the bias adds and sums, the activations,
the fused softmax + cross-entropy, and the SGD update of each parameter. ``step`` is the whole
``train_step`` timed the same way; ``rest`` is what the parts do not explain (Python calls,
cache misses between operations). BLAS threads are set with threadpoolctl for the whole run, and
the sgemm peak (best of 60 ``np.dot`` of two 1024 × 1024 matrices: short runs, so that one of
them finds the cores free on a shared machine) is measured with the same threads.
Parts run back to back on warm caches, so they add up to a little less than the step.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from .step import MLP, OPTIMIZERS, Case, make_scratchnet, measure_peak

__all__ = ["profile_step", "main"]


def _median_seconds(f: Callable[[], object], reps: int) -> float:
    f()
    times = np.empty(reps)
    for i in range(reps):
        t0 = time.perf_counter_ns()
        f()
        times[i] = time.perf_counter_ns() - t0
    return float(np.median(times)) * 1e-9


def _layout(a: np.ndarray) -> str:
    return "C" if a.flags.c_contiguous else ("F" if a.flags.f_contiguous else "strided")


def profile_step(case: Case, reps: int) -> list[tuple[str, float, float]]:
    """``[(part, seconds, flops)]`` for one step of ``case`` (flops 0 for non-BLAS parts)."""
    from scratchnet.fused import fused_loss_and_grad
    from scratchnet.registry import make_optimizer

    net, step = make_scratchnet(case)
    step()
    x, layers = net.layers[0].x, net.layers
    parts: list[tuple[str, Callable[[], object], float]] = []
    for k, layer in enumerate(layers):
        a_in = x if k == 0 else layers[k - 1].a
        w, z = layer.weight, layer.z
        m, kk, n = a_in.shape[0], a_in.shape[1], w.shape[0]
        parts.append((f"L{k} fwd   z = x·Wᵀ   ({m}×{kk})·({kk}×{n})  Wᵀ {_layout(w.T)}-order",
                      lambda a_in=a_in, w=w, z=z: np.dot(a_in, w.T, out=z), 2.0 * m * kk * n))
        parts.append((f"L{k} fwd   z += b", lambda z=z, b=layer.bias: z.__iadd__(b), 0.0))
        a_buf = layer._a_buf
        parts.append((f"L{k} fwd   {layer.activation.name}",
                      lambda act=layer.activation, z=z, a=a_buf: act.forward_into(z, a), 0.0))
    out = layers[-1]
    target = net.loss_fn.prepare_target(np.random.default_rng(1).integers(0, case.sizes[-1], case.batch),
                                        case.sizes[-1], net.dtype)
    if net._fused:
        parts.append(("loss      fused softmax + CE (value, δ)",
                      lambda: fused_loss_and_grad(net.spec.output["name"], net.loss_fn, out.z, out.a, target), 0.0))
    for k in range(len(layers) - 1, -1, -1):
        layer = layers[k]
        a_in = layer.x
        delta = np.ones_like(layer.z) * 1e-3
        m, kk, n = a_in.shape[0], a_in.shape[1], layer.weight.shape[0]
        if k < len(layers) - 1:
            g, o = np.ones_like(layer.z), np.empty_like(layer.z)
            parts.append((f"L{k} bwd   {layer.activation.name}'",
                          lambda act=layer.activation, layer=layer, g=g, o=o:
                          act.backward_into(layer.z, layer.a, g, out=o), 0.0))
        how = ("δᵀ·x", n, m, kk) if layer.grad_weight.flags.c_contiguous else ("xᵀ·δ into ∂Wᵀ", kk, m, n)
        parts.append((f"L{k} bwd   ∂W: {how[0]}  ({how[1]}×{how[2]})·({how[2]}×{how[3]})",
                      lambda d=delta, layer=layer: layer.weight_gradient_into(d), 2.0 * m * kk * n))
        parts.append((f"L{k} bwd   ∂b = Σ δ (float64 accumulation)",
                      lambda d=delta, gb=layer.grad_bias: gb.__setitem__(Ellipsis, d.sum(axis=0, dtype=np.float64)),
                      0.0))
        if k > 0:
            parts.append((f"L{k} bwd   ∂x = δ·W   ({m}×{n})·({n}×{kk})",
                          lambda d=delta, w=layer.weight, dx=layer._dx_buf: np.dot(d, w, out=dx), 2.0 * m * kk * n))
    opt = make_optimizer(OPTIMIZERS[case.optimizer], net.parameters())
    opt.step()
    for i, p in enumerate(net.parameters()):
        work = opt._scratch[i] if hasattr(opt, "_scratch") else np.empty_like(p.value)
        parts.append((f"opt       {case.optimizer} {p.name} {p.value.shape}",
                      lambda p=p, w=work, lr=opt.lr: p.value.__isub__(np.multiply(p.grad, lr, out=w)), 0.0))
    results = [(name, _median_seconds(f, reps), flops) for name, f, flops in parts]
    results.append(("step      net.train_step (whole)", _median_seconds(step, reps), case.true_flops))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: numpy's)")
    parser.add_argument("--reps", type=int, default=400)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    case = Case(sizes=MLP, batch=args.batch, dtype=args.dtype)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        from .step import blas_info

        threads = blas_info()["threads"]
        peak = measure_peak(args.dtype, 1024, 30)
        rows = profile_step(case, args.reps)
        peak = max(peak, measure_peak(args.dtype, 1024, 30))
    step_s = rows[-1][1]
    parts_s = sum(s for _, s, _ in rows[:-1])
    blas_s = sum(s for _, s, f in rows[:-1] if f)
    print(f"{case.name}: {threads} BLAS thread(s), {args.dtype} gemm peak {peak:.1f} GFLOP/s")
    print(f"{'part':78s} {'µs':>8s} {'% step':>7s} {'GFLOP/s':>8s} {'% peak':>7s}")
    for name, s, flops in rows:
        gf = flops / s / 1e9 if flops else float("nan")
        print(f"{name:78s} {s * 1e6:8.1f} {100 * s / step_s:6.1f}% "
              + (f"{gf:8.1f} {100 * gf / peak:6.1f}%" if flops else ""))
    print(f"{'BLAS products together':78s} {blas_s * 1e6:8.1f} {100 * blas_s / step_s:6.1f}% "
          f"{case.true_flops / blas_s / 1e9:8.1f} {100 * case.true_flops / blas_s / 1e9 / peak:6.1f}%")
    print(f"{'rest (step − parts)':78s} {(step_s - parts_s) * 1e6:8.1f} {100 * (step_s - parts_s) / step_s:6.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
