"""The one mapping table from scratchnet's names to torch's.

Activations map to ``torch.nn`` modules, losses to a *modular* torch form (the loss on the
output activation's values, autograd through both — what a learner writes) and, for the fused
pairs, to torch's *fused* stable form on the logits. Optimizers map to ``torch.optim``
classes; parameter names map one to one (scratchnet already uses ``layers.{k}.weight``).

Every entry of :mod:`scratchnet.registry` must appear here; ``tests/reference`` checks it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .torch_import import torch_module

__all__ = ["ACTIVATION_MODULES", "MODULAR_LOSSES", "FUSED_LOSSES", "OPTIMIZER_CLASSES",
           "torch_activation", "torch_param_name", "scratch_param_name", "modular_loss",
           "fused_loss", "torch_optimizer", "FLAVOURS", "dense_target", "TORCH_FUSED_OPS"]

FLAVOURS = ("modular", "fused")


def _nn(name: str, **fixed: Any) -> Callable[..., Any]:
    return lambda **params: getattr(torch_module().nn, name)(**fixed, **params)


#: scratchnet activation name -> factory(**params) -> torch.nn.Module
ACTIVATION_MODULES: dict[str, Callable[..., Any]] = {
    "identity": _nn("Identity"),
    "sigmoid": _nn("Sigmoid"),
    "tanh": _nn("Tanh"),
    "relu": _nn("ReLU"),
    "leaky_relu": _nn("LeakyReLU"),
    "elu": _nn("ELU"),
    "softplus": _nn("Softplus"),
    "gelu": _nn("GELU"),
    "silu": _nn("SiLU"),
    "softmax": _nn("Softmax", dim=1),
    "log_softmax": _nn("LogSoftmax", dim=1),
}


def torch_activation(spec: Mapping[str, Any]) -> Any:
    params = dict(spec)
    return ACTIVATION_MODULES[params.pop("name")](**params)


def torch_param_name(name: str) -> str:
    """scratchnet name -> the torch twin's parameter or buffer name (identical): ``layers.{k}.weight``
    of an ``nn.Linear`` in the ``ModuleList`` ``layers``; ``batch_norms.{k}.weight``/``bias``/
    ``running_mean``/``running_var`` of the ``nn.BatchNorm1d`` after hidden layer ``k`` in the
    ``ModuleDict`` ``batch_norms`` (keys are the layer numbers, as ``nn.Sequential`` numbers its
    children). torch's ``num_batches_tracked`` has no scratchnet counterpart (it only counts)."""
    return name


def scratch_param_name(name: str) -> str:
    return name


# -- losses -------------------------------------------------------------------------------
# A torch loss function takes (tensor, target, params, reduction) where target is either an
# int64 index tensor (class labels) or a dense float tensor, exactly as scratchnet prepared it.

def dense_target(target: Any, n_classes: int, dtype: Any, smoothing: float) -> Any:
    """Labels -> one-hot rows, then label smoothing y' = (1 − ε)y + ε/C (torch's definition)."""
    torch = torch_module()
    y = target if target.is_floating_point() else torch.nn.functional.one_hot(target, n_classes).to(dtype)
    return y * (1 - smoothing) + smoothing / n_classes if smoothing else y


def _reduce(per_sample: Any, reduction: str) -> Any:
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


def _ce_on_probabilities(p, target, params, reduction):
    """What a learner writes after ``nn.Softmax``: ``−Σ y log p`` per row, mean over rows."""
    torch = torch_module()
    y = dense_target(target, p.shape[1], p.dtype, params["label_smoothing"])
    return _reduce(-(y * torch.log(p)).sum(dim=1), reduction)


def _nll_on_log_probabilities(logp, target, params, reduction):
    F = torch_module().nn.functional
    if not target.is_floating_point() and not params["label_smoothing"]:
        return F.nll_loss(logp, target, reduction=reduction)
    y = dense_target(target, logp.shape[1], logp.dtype, params["label_smoothing"])
    return _reduce(-(y * logp).sum(dim=1), reduction)


def _functional(name: str, **param_names: str) -> Callable[..., Any]:
    def loss(out, target, params, reduction):
        F = torch_module().nn.functional
        kwargs = {torch_name: params[ours] for torch_name, ours in param_names.items()}
        if not target.is_floating_point():
            target = F.one_hot(target, out.shape[1]).to(out.dtype)
        return getattr(F, name)(out, target, reduction=reduction, **kwargs)
    return loss


#: loss name -> f(output activation values, target, params, reduction) -> scalar tensor
MODULAR_LOSSES: dict[str, Callable[..., Any]] = {
    "mse": _functional("mse_loss"),
    "l1": _functional("l1_loss"),
    "huber": _functional("huber_loss", delta="delta"),
    "smooth_l1": _functional("smooth_l1_loss", beta="beta"),
    "cross_entropy": _ce_on_probabilities,
    "nll": _nll_on_log_probabilities,
    "binary_cross_entropy": _functional("binary_cross_entropy"),
}


def _cross_entropy_on_logits(z, target, params, reduction):
    F = torch_module().nn.functional
    return F.cross_entropy(z, target, reduction=reduction, label_smoothing=params["label_smoothing"])


def _log_softmax_nll(z, target, params, reduction):
    F = torch_module().nn.functional
    return _nll_on_log_probabilities(F.log_softmax(z, dim=1), target, params, reduction)


def _bce_with_logits(z, target, params, reduction):
    F = torch_module().nn.functional
    if not target.is_floating_point():
        target = F.one_hot(target, z.shape[1]).to(z.dtype)
    return F.binary_cross_entropy_with_logits(z, target, reduction=reduction)


def _cross_entropy_on_sigmoid_logits(z, target, params, reduction):
    """``−Σ y log σ(z)`` with torch's stable ``logsigmoid``."""
    F = torch_module().nn.functional
    y = dense_target(target, z.shape[1], z.dtype, params["label_smoothing"])
    return _reduce(-(y * F.logsigmoid(z)).sum(dim=1), reduction)


#: (output activation, loss) -> f(logits, target, params, reduction): torch's stable forms
FUSED_LOSSES: dict[tuple[str, str], Callable[..., Any]] = {
    ("softmax", "cross_entropy"): _cross_entropy_on_logits,
    ("log_softmax", "nll"): _log_softmax_nll,
    ("sigmoid", "binary_cross_entropy"): _bce_with_logits,
    ("sigmoid", "cross_entropy"): _cross_entropy_on_sigmoid_logits,
}


#: The pairs of :data:`FUSED_LOSSES` that are torch's own fused ops; the others are written by hand
#: from torch's stable pieces (``logsigmoid``), as a learner would.
TORCH_FUSED_OPS = frozenset({("softmax", "cross_entropy"), ("log_softmax", "nll"), ("sigmoid", "binary_cross_entropy")})


def modular_loss(loss: Mapping[str, Any]) -> Callable[..., Any]:
    return MODULAR_LOSSES[loss["name"]]


def fused_loss(output: str, loss: Mapping[str, Any]) -> Callable[..., Any] | None:
    return FUSED_LOSSES.get((output, loss["name"]))


# -- optimizers ---------------------------------------------------------------------------
#: scratchnet optimizer name -> torch.optim class name. ``foreach=False`` everywhere: torch's
#: single-tensor code path, the arithmetic scratchnet mirrors (the default on CPU).
OPTIMIZER_CLASSES: dict[str, str] = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}


def torch_optimizer(spec: Mapping[str, Any], params: Any) -> Any:
    kwargs = dict(spec)
    name = kwargs.pop("name")
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    return getattr(torch_module().optim, OPTIMIZER_CLASSES[name])(params, foreach=False, **kwargs)


def to_tensor(array: np.ndarray, device: str, dtype: Any = None) -> Any:
    """A torch tensor holding exactly the bits of ``array`` (labels become int64), in memory of its
    own: nothing written into ``array`` later reaches it."""
    torch = torch_module()
    t = torch.from_numpy(np.array(array, order="C", copy=True))
    if t.is_floating_point() and dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.int64)
    return t.to(device)
