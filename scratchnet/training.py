"""Training loops: full-batch, mini-batch and stochastic gradient descent.

The batch order is its own public function, :func:`batch_schedule`, so another engine (the
PyTorch reference) can replay exactly the same index arrays. A mean-reduced loss on the last,
partial mini-batch is averaged over that batch's own size, as ``torch.utils.data.DataLoader``
with ``drop_last=False`` does.

:func:`fit` trains anything with the :class:`Trainable` interface (what
:class:`scratchnet.Network` provides); this module does not import ``Network``, which builds on
it (``Network.fit`` calls :func:`fit`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from . import registry
from ._checks import check_bool, check_callable, check_int
from .errors import DivergenceWarning
from .optimizers import Optimizer, Parameter
from .spec import ModelSpec

__all__ = ["History", "DivergenceWarning", "Trainable", "batch_schedule", "fit", "predicted_classes"]


class Trainable(Protocol):
    """What :func:`fit` needs of a network (:class:`scratchnet.Network` has it all)."""

    spec: ModelSpec

    def parameters(self) -> list[Parameter]:
        """The trainable arrays with their gradient buffers."""

    def _inputs(self, x: object) -> np.ndarray:
        """``x`` validated and converted to the model's ``(N, inputs)`` float array."""

    def _targets(self, y: object, n_rows: int) -> np.ndarray:
        """``y`` validated and prepared for the loss (``Loss.prepare_target``)."""

    def train_step(self, x: np.ndarray, target: np.ndarray, optimizer: Optimizer) -> tuple[float, np.ndarray]:
        """Forward, backward and ``optimizer.step()``; the loss before the update and the output."""


def predicted_classes(output: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Class decisions from output rows: the arg-max of each row, or ``output > 0.5`` for a
    single sigmoid-like output column; into ``out`` (an ``intp`` vector) when given."""
    if output.shape[1] == 1:
        if out is None:
            return (output[:, 0] > 0.5).astype(np.intp)
        return np.greater(output[:, 0], 0.5, out=out, casting="unsafe")
    return output.argmax(axis=1, out=out)


def batch_schedule(n_samples: int, batch_size: int | None, *, epochs: int = 1, shuffle: bool = True,
                   seed: int = 0) -> list[list[np.ndarray]]:
    """Index arrays for every step: ``schedule[epoch][step]``.

    ``batch_size=None`` (or ``>= n_samples``) is full-batch gradient descent, ``1`` is
    stochastic; otherwise each epoch is cut into ``ceil(n / batch_size)`` batches, the last
    one partial. With ``shuffle`` each epoch is a fresh permutation from
    ``numpy.random.default_rng(seed)``.
    """
    n = check_int(n_samples, "n_samples", low=1)
    check_bool(shuffle, "shuffle")
    bs = n if batch_size is None else min(check_int(batch_size, "batch_size", low=1), n)
    check_int(epochs, "epochs", low=0)
    rng = np.random.default_rng(check_int(seed, "seed", low=0))
    schedule = []
    for _ in range(epochs):
        order = rng.permutation(n) if shuffle else np.arange(n)
        schedule.append([order[i:i + bs] for i in range(0, n, bs)])
    return schedule


@dataclass
class History:
    """What a training run produced. ``step_loss[i]`` is the loss of step ``i`` before its
    update; ``epoch_loss`` the sample-weighted mean of an epoch's step losses;
    ``epoch_accuracy`` the fraction of that epoch's samples classified right before their
    update (classification targets only, else empty)."""

    step_loss: list[float] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    epoch_accuracy: list[float] = field(default_factory=list)
    diverged: bool = False

    @property
    def steps(self) -> int:
        return len(self.step_loss)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _class_labels(y: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """Integer class labels when the targets are classes (labels or one-hot rows), else None."""
    y = np.asarray(y)
    if y.ndim == 1 and y.dtype.kind in "iu":
        return y.astype(np.intp)
    if target.ndim == 2 and np.all((target == 0) | (target == 1)):
        if target.shape[1] == 1:
            return target[:, 0].astype(np.intp)
        if np.all(target.sum(axis=1) == 1):
            return target.argmax(axis=1)
    return None


def fit(network: Trainable, x: object, y: object, *, epochs: int = 1, batch_size: int | None = None,
        optimizer: Optimizer | registry.Spec = "sgd", shuffle: bool = True, seed: int | None = None,
        on_epoch_end: Callable[[int, History], Any] | None = None) -> History:
    """Train ``network`` in place and return its :class:`History`.

    * ``batch_size``: ``None`` full batch, ``1`` stochastic, else mini-batches (last partial).
    * ``optimizer``: an :class:`~scratchnet.optimizers.Optimizer` over
      ``network.parameters()``, or a spec such as ``{"name": "sgd", "lr": 0.1, "momentum": 0.9}``.
    * ``seed``: seeds the batch order (default: the spec's seed).
    * ``on_epoch_end(epoch, history)``: called after every epoch; return ``False`` to stop.

    A non-finite loss stops training with a :class:`DivergenceWarning`; the history so far is
    returned with ``diverged=True`` — divergence is a result, not a crash. The overflow and
    invalid-value warnings numpy raises on the way there are silenced inside each step (they
    would turn that result into an error under ``-W error``); parameters left non-finite by the
    very last update are reported the same way.
    """
    check_bool(shuffle, "shuffle")
    check_callable(on_epoch_end, "on_epoch_end", optional=True)
    xs = network._inputs(x)
    target = network._targets(y, xs.shape[0])
    if not isinstance(optimizer, (Optimizer, str, Mapping)):
        raise TypeError(f"optimizer must be an Optimizer over network.parameters(), a name or a "
                        f"{{'name': ..., **hyper-parameters}} mapping, got {optimizer!r}")
    if not isinstance(optimizer, Optimizer):
        optimizer = registry.make_optimizer(optimizer, network.parameters())
    elif optimizer.params[0] is not network.parameters()[0]:
        raise ValueError("optimizer must be built over network.parameters() of this network")
    labels = _class_labels(y, target)
    schedule = batch_schedule(xs.shape[0], batch_size, epochs=epochs, shuffle=shuffle,
                              seed=network.spec.seed if seed is None else seed)
    history = History()
    n = xs.shape[0]
    mean = network.spec.reduction == "mean"
    # Each batch is a slice (a view, no copy) of the epoch's data in batch order: the data itself
    # when the epoch's order is 0 … n−1, else a copy gathered once per epoch into reused buffers.
    # The same rows in the same order as indexing ``xs[idx]`` per step, so the same numbers.
    identity = np.arange(n)
    x_buffer = t_buffer = None
    predicted = np.empty(n, dtype=np.intp) if labels is not None else None
    for epoch, batches in enumerate(schedule):
        order = np.concatenate(batches)
        m = order.size
        if m == n and np.array_equal(order, identity):
            x_epoch, t_epoch, order = xs, target, None
        else:
            if x_buffer is None or x_buffer.shape[0] < m:
                x_buffer = np.empty((m, *xs.shape[1:]), xs.dtype)
                t_buffer = np.empty((m, *target.shape[1:]), target.dtype)
            if predicted is not None and predicted.size < m:
                predicted = np.empty(m, dtype=np.intp)
            x_epoch, t_epoch = x_buffer[:m], t_buffer[:m]
            np.take(xs, order, axis=0, out=x_epoch)
            np.take(target, order, axis=0, out=t_epoch)
        total, start = 0.0, 0
        with np.errstate(over="ignore", invalid="ignore"):
            for idx in batches:
                stop = start + len(idx)
                value, output = network.train_step(x_epoch[start:stop], t_epoch[start:stop], optimizer)
                history.step_loss.append(value)
                if not math.isfinite(value):
                    history.diverged = True
                    warnings.warn(f"loss became {value} at step {history.steps} (epoch {epoch}); "
                                  "training stopped", DivergenceWarning, stacklevel=2)
                    return history
                total += value * (stop - start) if mean else value
                if predicted is not None:
                    predicted_classes(output, out=predicted[start:stop])
                start = stop
        history.epoch_loss.append(total / m if mean else total)
        if predicted is not None:
            truth = labels if order is None else labels[order]
            history.epoch_accuracy.append(int(np.count_nonzero(predicted[:m] == truth)) / m)
        if on_epoch_end is not None and on_epoch_end(epoch, history) is False:
            break
    if not all(np.all(np.isfinite(p.value)) for p in network.parameters()):
        history.diverged = True
        warnings.warn(f"parameters became non-finite in the last update (step {history.steps}); "
                      "training stopped", DivergenceWarning, stacklevel=2)
    return history

