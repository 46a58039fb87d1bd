"""The conformance matrix, derived from the registry — never written out by hand.

A *case* is one hidden activation × output activation × loss × reduction × dtype; torch
flavours (modular, fused) are compared inside each case. Pairs whose loss is undefined on the
output's range are listed separately, as cases that must be *refused*. Training
configurations are every optimizer setting × gradient-descent mode. Adding an activation,
loss or optimizer to :mod:`scratchnet.registry` grows all three with no other edit.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from scratchnet import ModelSpec, registry
from scratchnet.spec import REDUCTIONS  # the names of the reductions a spec accepts

__all__ = ["Case", "DTYPES", "OPTIMIZER_CONFIGS", "output_loss_pairs", "refused_pairs", "cases",
           "training_configs", "make_batch", "AFTER", "TRAINING_AFTER", "LAYERED_MODELS", "MODES",
           "LAYERED_TRAINING", "layered_cases", "layered_training_configs"]

DTYPES = ("float64", "float32")

#: Optimizer settings exercised by the lockstep training checks (torch.optim keyword names).
OPTIMIZER_CONFIGS: dict[str, dict[str, Any]] = {
    "sgd": {"name": "sgd", "lr": 0.1},
    "sgd_momentum": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.1},
    "sgd_nesterov": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
    "sgd_weight_decay": {"name": "sgd", "lr": 0.1, "momentum": 0.5, "weight_decay": 0.01},
    "adam": {"name": "adam", "lr": 0.01, "weight_decay": 0.001},
    "adamw": {"name": "adamw", "lr": 0.01, "weight_decay": 0.05},
    "adam_amsgrad": {"name": "adam", "lr": 0.01, "amsgrad": True},
}


MODES = ("train", "eval")

#: Drop probability of the matrix's dropout layers (torch's default 0.5 would leave a 6-wide layer
#: with whole rows dropped too often to say much about the rest).
MATRIX_DROPOUT_P = 0.25


def _after_arrangements() -> dict[str, tuple[Any, ...]]:
    """Every layer of the registry alone, then all of them in registry order."""
    def layer(name: str) -> Any:
        return {"name": name, "p": MATRIX_DROPOUT_P} if name == "dropout" else name

    names = list(registry.LAYERS)
    arrangements = {name: (layer(name),) for name in names}
    arrangements["+".join(names)] = tuple(layer(n) for n in names)
    return arrangements


#: name -> the layers placed after every hidden layer
AFTER: dict[str, tuple[Any, ...]] = _after_arrangements()

#: (hidden, output, loss, reduction) of the models the layers are checked on: the three fused
#: pairs, a regression loss with each reduction, and an unfused classification pair; hidden
#: activations with a kink, saturating and smooth.
LAYERED_MODELS: tuple[tuple[str, str, str, str], ...] = (
    ("relu", "softmax", "cross_entropy", "mean"),
    ("tanh", "log_softmax", "nll", "mean"),
    ("leaky_relu", "sigmoid", "binary_cross_entropy", "mean"),
    ("gelu", "identity", "mse", "mean"),
    ("sigmoid", "identity", "huber", "sum"),
    ("elu", "softmax", "mse", "mean"),
)

#: The arrangement the layered lockstep runs train: every layer (the longest of :data:`AFTER`).
TRAINING_AFTER: str = max(AFTER, key=lambda name: len(AFTER[name]))

#: Lockstep training with every layer after every hidden layer: (optimizer config, GD mode). The
#: stochastic mode is left out: batch norm refuses batches of one row in training mode (as torch does).
LAYERED_TRAINING: tuple[tuple[str, str], ...] = (
    ("sgd_momentum", "full_batch"), ("sgd_momentum", "mini_batch"), ("adam", "full_batch"), ("adam", "mini_batch"))


@dataclass(frozen=True)
class Case:
    hidden: str
    output: str
    loss: str
    reduction: str
    dtype: str
    #: a key of :data:`AFTER` ("" for a dense-only network) and the mode both sides run in
    after: str = ""
    mode: str = "train"

    @property
    def id(self) -> str:
        base = f"{self.hidden}-{self.output}-{self.loss}-{self.reduction}-{self.dtype}"
        return f"{base}-{self.after}-{self.mode}" if self.after else base

    def spec(self, sizes: tuple[int, ...] = (5, 6, 4), seed: int = 0, **changes: Any) -> ModelSpec:
        """A spec for this case (one hidden layer per default)."""
        if self.after:
            changes.setdefault("after_hidden", [list(AFTER[self.after])] * (len(sizes) - 2))
        return ModelSpec(sizes, hidden=self.hidden, output=self.output, loss=self.loss,
                         reduction=self.reduction, dtype=self.dtype, seed=seed, **changes)


def output_loss_pairs() -> list[tuple[str, str]]:
    """Every (output activation, loss) the loss is defined on."""
    return [(o, l) for o in registry.ACTIVATIONS for l in registry.LOSSES if o in registry.outputs_for(l)]


def refused_pairs() -> list[tuple[str, str]]:
    """Every (output activation, loss) that must be refused at construction."""
    return [(o, l) for o in registry.ACTIVATIONS for l in registry.LOSSES if o not in registry.outputs_for(l)]


def cases(dtypes: tuple[str, ...] = DTYPES) -> Iterator[Case]:
    """hidden × (output, loss) × reduction × dtype, from the registry; then :func:`layered_cases`."""
    for hidden, (output, loss), reduction, dtype in itertools.product(
            registry.ACTIVATIONS, output_loss_pairs(), REDUCTIONS, dtypes):
        yield Case(hidden, output, loss, reduction, dtype)
    yield from layered_cases(dtypes)


def layered_cases(dtypes: tuple[str, ...] = DTYPES) -> Iterator[Case]:
    """:data:`LAYERED_MODELS` × :data:`AFTER` × mode × dtype."""
    for (hidden, output, loss, reduction), after, mode, dtype in itertools.product(
            LAYERED_MODELS, AFTER, MODES, dtypes):
        yield Case(hidden, output, loss, reduction, dtype, after, mode)


def layered_training_configs() -> Iterator[tuple[str, str]]:
    """(optimizer config name, GD mode) pairs trained with batch norm and dropout."""
    return iter(LAYERED_TRAINING)


def training_configs() -> Iterator[tuple[str, str]]:
    """(optimizer config name, GD mode) pairs."""
    from .lockstep import GD_MODES

    return itertools.product(OPTIMIZER_CONFIGS, GD_MODES)


def make_batch(spec: ModelSpec, n: int, seed: int = 0, scale: float = 1.0,
               target: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """A seeded batch for ``spec``: inputs ``N(0, scale²)`` and targets of the kind the loss
    takes — ``labels`` (class indices), ``one_hot``, ``soft`` (random distributions), or
    ``dense`` (values in [0, 1], for regression losses and BCE)."""
    rng = np.random.default_rng(seed)
    c = spec.sizes[-1]
    x = rng.normal(0.0, scale, (n, spec.sizes[0]))
    labels = rng.integers(0, c, n)
    if target == "labels":
        return x, labels
    if target == "one_hot":
        return x, np.eye(c)[labels]
    if target == "soft":
        w = rng.exponential(size=(n, c))
        return x, w / w.sum(axis=1, keepdims=True)
    if target == "dense":
        return x, rng.uniform(0.0, 1.0, (n, c))
    raise ValueError(f"target must be 'labels', 'one_hot', 'soft' or 'dense', got {target!r}")
