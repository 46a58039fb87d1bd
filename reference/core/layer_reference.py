"""torch's layer ops in float64, for the op-level checks of a learner's layer functions
(:mod:`scratchnet_reference.byo.layer_ops`) and the models of their classic mistakes: batch norm
(``F.batch_norm``, or with one planted change), inverted dropout replaying a given mask, ``F.conv2d``
(NCHW) and ``F.max_pool2d``; forwards on an op's inputs, backwards by autograd for an upstream
gradient. Inputs are the course's: ``x, gamma, beta, bn_param``; ``x, dropout_param`` (plus
``kept``, the mask to replay); ``x, w, b, conv_param``; ``x, pool_param``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .torch_import import torch_module

__all__ = ["LAYER_OPS", "OUTPUTS", "reference_forward", "reference_backward", "batch_norm", "conv_with",
           "pool_windows", "bn_backward_eps_outside", "bn_dx_without_statistics", "as_numpy"]

#: op -> (its forward, whether it is the backward)
LAYER_OPS: dict[str, tuple[str, bool]] = {
    "batchnorm_forward": ("batchnorm_forward", False), "batchnorm_backward": ("batchnorm_forward", True),
    "dropout_forward": ("dropout_forward", False), "dropout_backward": ("dropout_forward", True),
    "conv2d_forward": ("conv2d_forward", False), "conv2d_backward": ("conv2d_forward", True),
    "maxpool2d_forward": ("maxpool2d_forward", False), "maxpool2d_backward": ("maxpool2d_forward", True),
}
#: output names of each op's result (a forward's ``out`` plus, for batch norm, the running statistics)
OUTPUTS: dict[str, tuple[str, ...]] = {
    "batchnorm_forward": ("out", "running_mean", "running_var"), "batchnorm_backward": ("dx", "dgamma", "dbeta"),
    "dropout_forward": ("out",), "dropout_backward": ("dx",),
    "conv2d_forward": ("out",), "conv2d_backward": ("dx", "dw", "db"),
    "maxpool2d_forward": ("out",), "maxpool2d_backward": ("dx",),
}

# --------------------------------------------------------------------------------------------
# torch's results (float64)
# --------------------------------------------------------------------------------------------

def _t(a: np.ndarray, grad: bool = False) -> Any:
    t = torch_module().tensor(np.array(a, dtype=np.float64, order="C"))
    return t.requires_grad_(True) if grad else t


def as_numpy(t: Any) -> np.ndarray:
    return t.detach().numpy().copy()


def batch_norm(inp: Mapping[str, Any], *, eps: float | None = None, momentum: float | None = None,
        unbiased_norm: bool = False, eps_outside: bool = False, grad: bool = False) -> dict[str, Any]:
    """Batch norm by torch's own ``F.batch_norm``, or with one planted change (the mistakes' models)."""
    torch = torch_module()
    F = torch.nn.functional
    p = inp["bn_param"]
    eps = p["eps"] if eps is None else eps
    x, gamma, beta = _t(inp["x"], grad), _t(inp["gamma"], grad), _t(inp["beta"], grad)
    rm, rv = _t(p["running_mean"]), _t(p["running_var"])
    training = p["mode"] == "train"
    if not (unbiased_norm or eps_outside or momentum is not None):
        out = F.batch_norm(x, rm, rv, gamma, beta, training=training, momentum=p["momentum"], eps=eps)
    else:
        m = p["momentum"] if momentum is None else momentum
        if training:
            mu, var = x.mean(0), x.var(0, unbiased=unbiased_norm)
            sigma = var.sqrt() + eps if eps_outside else (var + eps).sqrt()
            out = (x - mu) / sigma * gamma + beta
            with torch.no_grad():
                rm.mul_(1 - m).add_(m * mu)
                rv.mul_(1 - m).add_(m * x.var(0, unbiased=True))
        else:
            sigma = rv.sqrt() + eps if eps_outside else (rv + eps).sqrt()
            out = (x - rm) / sigma * gamma + beta
    return {"out": out, "running_mean": rm, "running_var": rv, "x": x, "gamma": gamma, "beta": beta}


def reference_forward(op: str, inp: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """torch's outputs of forward ``op`` on ``inp`` (for dropout: the mask ``inp["kept"]`` replayed)."""
    torch = torch_module()
    F = torch.nn.functional
    if op == "batchnorm_forward":
        return {k: as_numpy(v) for k, v in batch_norm(inp).items() if k in OUTPUTS[op]}
    if op == "dropout_forward":
        p = inp["dropout_param"]
        if p["mode"] != "train":
            return {"out": np.asarray(inp["x"], dtype=np.float64).copy()}
        return {"out": inp["x"] * inp["kept"] / (1 - p["p"])}
    if op == "conv2d_forward":
        c = inp["conv_param"]
        out = F.conv2d(_t(inp["x"]), _t(inp["w"]), _t(inp["b"]), stride=c["stride"], padding=c["pad"])
        return {"out": as_numpy(out)}
    if op == "maxpool2d_forward":
        q = inp["pool_param"]
        return {"out": as_numpy(F.max_pool2d(_t(inp["x"]), (q["pool_height"], q["pool_width"]), stride=q["stride"]))}
    raise ValueError(f"op must be a forward of {sorted(set(f for f, _ in LAYER_OPS.values()))}, got {op!r}")


def reference_backward(forward: str, inp: Mapping[str, Any], dout: np.ndarray) -> dict[str, np.ndarray]:
    """torch's gradients of ``Σ dout ⊙ forward(inp)`` with respect to the forward's inputs."""
    torch = torch_module()
    F = torch.nn.functional
    g = _t(dout)
    if forward == "batchnorm_forward":
        r = batch_norm(inp, grad=True)
        dx, dgamma, dbeta = torch.autograd.grad(r["out"], (r["x"], r["gamma"], r["beta"]), g)
        return {"dx": as_numpy(dx), "dgamma": as_numpy(dgamma), "dbeta": as_numpy(dbeta)}
    if forward == "dropout_forward":
        p = inp["dropout_param"]
        scale = inp["kept"] / (1 - p["p"]) if p["mode"] == "train" else 1.0
        return {"dx": dout * scale}
    if forward == "conv2d_forward":
        c = inp["conv_param"]
        x, w, b = _t(inp["x"], True), _t(inp["w"], True), _t(inp["b"], True)
        out = F.conv2d(x, w, b, stride=c["stride"], padding=c["pad"])
        return dict(zip(("dx", "dw", "db"), map(as_numpy, torch.autograd.grad(out, (x, w, b), g))))
    if forward == "maxpool2d_forward":
        q = inp["pool_param"]
        x = _t(inp["x"], True)
        out = F.max_pool2d(x, (q["pool_height"], q["pool_width"]), stride=q["stride"])
        return {"dx": as_numpy(torch.autograd.grad(out, x, g)[0])}
    raise ValueError(f"forward must be one of {sorted(set(f for f, _ in LAYER_OPS.values()))}, got {forward!r}")


def conv_with(inp: Mapping[str, Any], stride: int | None = None, pad: int | None = None,
               flip: bool = False) -> np.ndarray:
    c = inp["conv_param"]
    stride, pad = c["stride"] if stride is None else stride, c["pad"] if pad is None else pad
    if stride < 1 or pad < 0:
        return np.full((0,), np.nan)                   # no such convolution: no model here
    w = inp["w"][:, :, ::-1, ::-1] if flip else inp["w"]
    F = torch_module().nn.functional
    return as_numpy(F.conv2d(_t(inp["x"]), _t(np.ascontiguousarray(w)), _t(inp["b"]), stride=stride, padding=pad))


def pool_windows(inp: Mapping[str, Any], dout: np.ndarray, ties: bool) -> np.ndarray:
    """max pooling's backward sending each window's gradient to every element (``ties=False``) or
    to every element equal to the window's maximum (``ties=True``)."""
    x, q = inp["x"], inp["pool_param"]
    ph, pw, s = q["pool_height"], q["pool_width"], q["stride"]
    dx = np.zeros_like(x, dtype=np.float64)
    for i in range(dout.shape[2]):          # over output positions, vectorised over N and C
        for j in range(dout.shape[3]):
            win = x[:, :, i * s:i * s + ph, j * s:j * s + pw]
            where = (win == win.max(axis=(2, 3), keepdims=True)) if ties else np.ones_like(win, dtype=bool)
            dx[:, :, i * s:i * s + ph, j * s:j * s + pw] += where * dout[:, :, i:i + 1, j:j + 1]
    return dx


def bn_backward_eps_outside(output: str) -> Callable[[Mapping[str, Any], np.ndarray], np.ndarray]:
    """The compact backward with σ = σ_B + ε: what a backward consistent with the ε-outside forward gives."""
    def plant(inp: Mapping[str, Any], dout: np.ndarray) -> np.ndarray:
        x, gamma, eps = inp["x"], inp["gamma"], inp["bn_param"]["eps"]
        sigma = x.std(axis=0) + eps
        xhat = (x - x.mean(axis=0)) / sigma
        n = x.shape[0]
        dgamma = (dout * xhat).sum(axis=0)
        if output == "dgamma":
            return dgamma
        return gamma / sigma / n * (n * dout - dout.sum(axis=0) - xhat * dgamma)
    return plant


def bn_dx_without_statistics(inp: Mapping[str, Any], dout: np.ndarray) -> np.ndarray:
    x, p = inp["x"], inp["bn_param"]
    return dout * inp["gamma"] / np.sqrt(x.var(axis=0) + p["eps"])
