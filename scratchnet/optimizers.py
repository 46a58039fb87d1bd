"""Gradient-descent optimizers with ``torch.optim`` semantics, step for step.

Each optimizer holds a list of :class:`Parameter` (an array and the gradient buffer that
backward fills) and updates the arrays in place in :meth:`Optimizer.step`. The arithmetic
follows torch's single-tensor implementations operation by operation, so a lockstep run
against ``torch.optim`` differs only by rounding. State buffers are allocated once, on the
first step; later steps allocate nothing that survives them.

SGD (``t`` counts steps from 1)::

    g ← ∇θ + λθ                                   (weight_decay λ)
    b ← g  if t = 1  else  μ·b + (1 − τ)·g        (momentum μ, dampening τ)
    g ← g + μ·b  if nesterov  else  b
    θ ← θ − η·g

Adam / AdamW::

    θ ← θ·(1 − ηλ)                                (AdamW only: decoupled weight decay)
    g ← ∇θ + λθ                                   (Adam only: L2 penalty)
    m ← m + (1 − β₁)(g − m)                       (torch's lerp)
    v ← β₂·v + (1 − β₂)·g²
    v̂ ← max(v̂, v)  if amsgrad  else  v
    θ ← θ − η/(1 − β₁ᵗ) · m / (√v̂ / √(1 − β₂ᵗ) + ε)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ._checks import check_bool, check_real

__all__ = ["Parameter", "Optimizer", "SGD", "Adam", "AdamW"]


@dataclass(eq=False)
class Parameter:
    """A named trainable array and its gradient buffer (same shape and dtype)."""

    name: str
    value: np.ndarray
    grad: np.ndarray


def _describe(a: object) -> str:
    return f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__


class Optimizer:
    """Base class: ``step()`` applies one update to every parameter from its ``grad``."""

    name: ClassVar[str]

    def __init__(self, params: list[Parameter], lr: float):
        if hasattr(params, "parameters") and not isinstance(params, (list, tuple)):
            raise TypeError(f"params must be a list of Parameter, got a {type(params).__name__}: "
                            f"pass its .parameters()")
        if isinstance(params, (Parameter, np.ndarray)) or not hasattr(params, "__iter__"):
            raise TypeError(f"params must be a list of Parameter (e.g. network.parameters()), "
                            f"got {type(params).__name__}")
        self.params = list(params)
        if not self.params:
            raise ValueError("params must hold at least one Parameter, got an empty list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise TypeError(f"params[{i}] must be a Parameter (name, value, grad) — pass "
                                f"network.parameters() — got {type(p).__name__}")
            if not (isinstance(p.value, np.ndarray) and isinstance(p.grad, np.ndarray)
                    and p.value.dtype.kind == "f" and p.grad.shape == p.value.shape
                    and p.grad.dtype == p.value.dtype):
                raise ValueError(f"params[{i}] ({p.name!r}) needs float arrays value and grad of one shape "
                                 f"and dtype, got value {_describe(p.value)} and grad {_describe(p.grad)}")
        self.lr = check_real(lr, "lr", low=0.0, low_open=True)
        self.t = 0

    @property
    def hyperparams(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this optimizer (``lr`` included)."""
        raise NotImplementedError

    def step(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparams.items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and
    (L2) weight decay — ``torch.optim.SGD``."""

    name = "sgd"

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.momentum = check_real(momentum, "momentum", low=0.0)
        self.dampening = check_real(dampening, "dampening")
        self.weight_decay = check_real(weight_decay, "weight_decay", low=0.0)
        if check_bool(nesterov, "nesterov") and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0, got "
                             f"momentum={self.momentum!r}, dampening={self.dampening!r}")
        self.nesterov = bool(nesterov)
        self.buffers: list[np.ndarray | None] = [None] * len(self.params)
        self._scratch = [np.empty_like(p.value) for p in self.params]

    @property
    def hyperparams(self):
        return {"lr": self.lr, "momentum": self.momentum, "dampening": self.dampening,
                "nesterov": self.nesterov, "weight_decay": self.weight_decay}

    def step(self) -> None:
        self.t += 1
        lr, mu, wd = self.lr, self.momentum, self.weight_decay
        for i, p in enumerate(self.params):
            g, work = p.grad, self._scratch[i]
            if wd:
                g = np.add(g, np.multiply(p.value, wd, out=work), out=work)     # g + λθ
            if mu:
                buf = self.buffers[i]
                if buf is None:
                    buf = self.buffers[i] = g.copy()
                else:
                    buf *= mu
                    buf += (1 - self.dampening) * g
                g = g + mu * buf if self.nesterov else buf
            p.value -= np.multiply(g, lr, out=work)                            # θ − η·g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with optional L2 weight decay and AMSGrad — ``torch.optim.Adam``."""

    name = "adam"
    decoupled: ClassVar[bool] = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False):
        super().__init__(params, lr)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (check_real(betas[0], "betas[0]", low=0.0, high=1.0, high_open=True),
                      check_real(betas[1], "betas[1]", low=0.0, high=1.0, high_open=True))
        self.eps = check_real(eps, "eps", low=0.0)
        self.weight_decay = check_real(weight_decay, "weight_decay", low=0.0)
        self.amsgrad = check_bool(amsgrad, "amsgrad")
        self.m = [np.zeros_like(p.value) for p in self.params]
        self.v = [np.zeros_like(p.value) for p in self.params]
        self.v_max = [np.zeros_like(p.value) for p in self.params] if self.amsgrad else None
        self._scratch = [np.empty_like(p.value) for p in self.params]

    @property
    def hyperparams(self):
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps,
                "weight_decay": self.weight_decay, "amsgrad": self.amsgrad}

    def step(self) -> None:
        self.t += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1 ** self.t)
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** self.t)
        for i, p in enumerate(self.params):
            g = p.grad
            if self.weight_decay:
                if self.decoupled:
                    p.value *= 1 - self.lr * self.weight_decay
                else:
                    g = g + self.weight_decay * p.value
            m, v, denom = self.m[i], self.v[i], self._scratch[i]
            np.subtract(g, m, out=denom)
            denom *= 1 - beta1
            m += denom                                  # m ← m + (1 − β₁)(g − m)
            v *= beta2
            np.multiply(g, 1 - beta2, out=denom)
            denom *= g
            v += denom                                  # v ← β₂v + (1 − β₂)g²
            if self.v_max is not None:
                np.maximum(self.v_max[i], v, out=self.v_max[i])
                v = self.v_max[i]
            np.sqrt(v, out=denom)
            denom /= bias_correction2_sqrt
            denom += self.eps
            np.divide(m, denom, out=denom)
            denom *= step_size
            p.value -= denom


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter) — ``torch.optim.AdamW``;
    ``weight_decay`` defaults to 0.01 as in torch."""

    name = "adamw"
    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, amsgrad: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
