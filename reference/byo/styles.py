"""Short adapters for the styles people really write networks in.

The harness speaks one dialect — batches as rows, ``layers.{k}.weight`` ``(out, in)`` and
``layers.{k}.bias`` ``(out,)`` like ``torch.nn.Linear``, ``loss_and_grads`` returning ∂L/∂θ —
and most hand-written networks speak another. What fitting them takes, once, here:

* **where the weights live** — :class:`Params` binds each harness name to an array of the
  user's network by a dotted path (``"weights"``, ``"params.W"``, a list index), stored ``(out, in)``
  or transposed ``(in, out)``, biases as ``(out,)``, ``(out, 1)`` or ``(1, out)`` columns/rows
  (reshaped to whatever the user's array is). It loads the harness's weights, reads them back,
  turns the user's gradients into the harness's layout and takes the plain SGD step.
* **layer objects that update the weights inside** ``backward(grad, learning_rate)`` — the gradient
  is never returned, only applied: :meth:`Params.read_update` snapshots the weights, runs the
  backward pass with a learning rate λ, reads ``∇ = (θ_before − θ_after) / λ`` and puts the weights
  back. λ = 2¹⁰ (a power of two: dividing by it is exact) keeps the rounding of ``θ − λ∇`` far below
  the comparison's tolerance even when ∇ is 10⁶ times smaller than θ.
* **column vectors, one sample at a time** — :func:`columns` turns rows into ``(d, 1)`` columns
  (class labels into one-hot columns with :func:`targets`), and :func:`mean_over_samples` averages
  the per-sample losses and gradients: the batch mean of a per-sample loss, as torch's
  ``reduction="mean"`` over the batch.
* **frameworks that fuse softmax into the loss** (``SoftmaxCrossEntropy`` returning ``p − y``) —
  build the network *without* its final softmax layer for softmax + cross-entropy (the loss's
  backward already is ∂L/∂z) and apply :func:`softmax` to the logits in ``forward``; keep the
  softmax layer for softmax + MSE, where its own backward is what is being checked.

:class:`Model` is a base class that uses a :class:`Params` for ``load_state_dict``,
``state_dict``, ``configure_optimizer`` (plain SGD) and ``step``; an adapter writes only
``forward`` and ``gradients``. :class:`Implementation` is the object ``make_implementation``
returns. See ``examples/adapter_template.py`` and the worked examples in ``examples/``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Param", "Params", "Model", "Implementation", "columns", "targets", "one_hot", "softmax",
           "mean_over_samples", "activation_names", "layer_op", "loss_op", "OpLayer", "OpLoss",
           "substituted", "READ_UPDATE_LR"]

#: the learning rate :meth:`Params.read_update` runs a self-updating backward pass with
READ_UPDATE_LR = 2.0 ** 10


def _split(path: str | int | Sequence[str | int]) -> tuple[str | int, ...]:
    if isinstance(path, int):
        return (path,)
    if isinstance(path, str):
        return tuple(int(part) if part.isdigit() else part for part in path.split("."))
    return tuple(path)


def _step(obj: Any, key: str | int) -> Any:
    if isinstance(key, int) or isinstance(obj, Mapping):
        return obj[key]
    return getattr(obj, key)


class Param:
    """One harness parameter bound to an array of the user's network: ``owner`` and a dotted
    ``path`` to it (``"weights"``, ``"params.W"``, ``"weights.0"``; attributes, mapping keys and
    list indices). ``transposed``: the user stores the weight ``(in, out)``. The path is resolved
    at every access, so a network that replaces its arrays (``self.weights = [...]``) stays bound."""

    def __init__(self, owner: Any, path: str | int | Sequence[str | int], transposed: bool = False):
        self.owner, self.path, self.transposed = owner, _split(path), transposed
        if not self.path:
            raise ValueError("path must name at least one attribute, key or index, got an empty path")

    def _parent(self) -> Any:
        obj = self.owner
        for key in self.path[:-1]:
            obj = _step(obj, key)
        return obj

    def user_array(self) -> np.ndarray:
        """The array as the user's network stores it."""
        return np.asarray(_step(self._parent(), self.path[-1]))

    def to_harness(self, array: Any, bias: bool) -> np.ndarray:
        """A user-layout array (the parameter or its gradient) in the harness's layout."""
        array = np.asarray(array)
        if bias:
            return array.reshape(-1).copy()
        return (array.T if self.transposed else array).copy()

    def get(self, bias: bool) -> np.ndarray:
        return self.to_harness(self.user_array(), bias)

    def set(self, value: Any, bias: bool) -> None:
        """Store a harness-layout ``value`` in the user's layout, shape and dtype (a new array)."""
        current = self.user_array()
        value = np.asarray(value)
        if not bias and self.transposed:
            value = value.T
        if value.size != current.size or (not bias and value.shape != current.shape):
            raise ValueError(f"{'.'.join(map(str, self.path))} is {current.shape}, cannot store a "
                             f"{'bias' if bias else 'weight'} of shape {np.shape(value)} in it")
        parent, key = self._parent(), self.path[-1]
        new = np.array(value.reshape(current.shape), dtype=current.dtype)
        if isinstance(key, int) or isinstance(parent, Mapping):
            parent[key] = new
        else:
            setattr(parent, key, new)


class Params:
    """The harness's ``{"layers.{k}.weight": …, "layers.{k}.bias": …}`` bound to the user's arrays,
    in layer order. Build it with :meth:`of_layers`, :meth:`of_lists` or :meth:`of_dict`."""

    def __init__(self, bindings: Mapping[str, Param]):
        self.bindings = dict(bindings)

    @classmethod
    def of_layers(cls, layers: Iterable[Any], weight: str, bias: str, transposed: bool = False) -> Params:
        """Layer objects, each with its own weight and bias (pass only the layers that have them):
        ``Params.of_layers(dense_layers, "weights", "bias")``, ``(…, "params.W", "params.b", transposed=True)``."""
        bindings = {}
        for k, layer in enumerate(layers):
            bindings[f"layers.{k}.weight"] = Param(layer, weight, transposed)
            bindings[f"layers.{k}.bias"] = Param(layer, bias)
        return cls(bindings)

    @classmethod
    def of_lists(cls, net: Any, weights: str, biases: str, n_layers: int | None = None,
                 transposed: bool = False) -> Params:
        """One list of weights and one of biases on ``net`` (``net.weights[k]``, ``net.biases[k]``)."""
        n_layers = len(_step(net, weights)) if n_layers is None else n_layers
        bindings = {}
        for k in range(n_layers):
            bindings[f"layers.{k}.weight"] = Param(net, (weights, k), transposed)
            bindings[f"layers.{k}.bias"] = Param(net, (biases, k))
        return cls(bindings)

    @classmethod
    def of_dict(cls, params: Mapping[str, Any], weight: str, bias: str, n_layers: int, start: int = 1,
                transposed: bool = False) -> Params:
        """One dict of named arrays: ``Params.of_dict(net.params, "W{}", "b{}", 3, transposed=True)``
        binds ``W1``, ``b1``, … ``W3``, ``b3`` (numbered from ``start``)."""
        bindings = {}
        for k in range(n_layers):
            bindings[f"layers.{k}.weight"] = Param(params, (weight.format(k + start),), transposed)
            bindings[f"layers.{k}.bias"] = Param(params, (bias.format(k + start),))
        return cls(bindings)

    @classmethod
    def of_attributes(cls, net: Any, weight: str, bias: str, n_layers: int, start: int = 1,
                      transposed: bool = False) -> Params:
        """Numbered attributes of one object, the most common hand-written network:
        ``Params.of_attributes(net, "W{}", "b{}", 2)`` binds ``net.W1``, ``net.b1``, ``net.W2``,
        ``net.b2`` (numbered from ``start``); also its gradients, ``"dW{}", "db{}"``."""
        bindings = {}
        for k in range(n_layers):
            bindings[f"layers.{k}.weight"] = Param(net, weight.format(k + start), transposed)
            bindings[f"layers.{k}.bias"] = Param(net, bias.format(k + start))
        return cls(bindings)

    @staticmethod
    def _is_bias(name: str) -> bool:
        return name.endswith(".bias")

    def load(self, state: Mapping[str, Any]) -> None:
        missing = sorted(set(self.bindings) - set(state))
        if missing:
            raise KeyError(f"state lacks {missing}; it has {sorted(state)}")
        for name, param in self.bindings.items():
            param.set(state[name], self._is_bias(name))

    def state(self) -> dict[str, np.ndarray]:
        """The user's arrays in the harness's names and layout (copies)."""
        return {name: param.get(self._is_bias(name)) for name, param in self.bindings.items()}

    def to_harness(self, arrays: Mapping[str, Any] | Sequence[Any]) -> dict[str, np.ndarray]:
        """Gradients in the user's layout — a mapping keyed by harness name, or a sequence in binding
        order (weight 0, bias 0, weight 1, …) — in the harness's layout."""
        if not isinstance(arrays, Mapping):
            arrays = list(arrays)
            if len(arrays) != len(self.bindings):
                raise ValueError(f"expected {len(self.bindings)} gradients (weight, bias per layer), got {len(arrays)}")
            arrays = dict(zip(self.bindings, arrays))
        return {name: param.to_harness(arrays[name], self._is_bias(name)) for name, param in self.bindings.items()}

    def from_lists(self, weights: Sequence[Any], biases: Sequence[Any]) -> dict[str, np.ndarray]:
        """Gradients as two lists, ``nabla_w`` and ``nabla_b``, in the harness's layout."""
        return self.to_harness([g for pair in zip(weights, biases) for g in pair])

    def read_update(self, backward: Callable[[float], Any], lr: float = READ_UPDATE_LR) -> dict[str, np.ndarray]:
        """The gradient a self-updating backward pass applies: ``backward(lr)`` must run it (every
        layer's ``backward(grad, lr)``); returns ``(θ_before − θ_after) / lr`` per parameter in the
        harness's layout and restores θ_before. Assumes plain ``θ ← θ − lr·∇`` inside backward."""
        before = self.state()
        try:
            backward(lr)
            after = self.state()
        finally:
            self.load(before)
        return {name: (before[name] - after[name]) / lr for name in self.bindings}

    def sgd_step(self, grads: Mapping[str, np.ndarray], lr: float) -> None:
        """θ ← θ − lr·∇ (harness-layout gradients)."""
        state = self.state()
        self.load({name: state[name] - lr * np.asarray(grads[name]) for name in self.bindings})


class Model:
    """Base class of an adapter's model: set ``self.params`` (a :class:`Params`) in ``__init__``
    and call :meth:`load_state_dict`; write ``forward(x)`` and ``gradients(x, y) -> (loss, grads)``
    (grads in the harness's names and layout). ``loss_and_grads``, ``state_dict``, plain-SGD
    ``configure_optimizer`` and ``step`` come from here."""

    params: Params
    lr: float | None = None
    last_grads: dict[str, np.ndarray] | None = None

    def gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        raise NotImplementedError(f"{type(self).__name__}.gradients(x, y) -> (loss, grads)")

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        loss, grads = self.gradients(x, y)
        self.last_grads = grads
        return float(loss), grads

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.params.load(state)

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.params.state()

    def configure_optimizer(self, spec: Mapping[str, Any]) -> None:
        options = {k: v for k, v in spec.items() if k not in ("name", "lr")}
        if spec["name"] != "sgd" or options:
            raise NotImplementedError(f"optimizer {spec['name']} {options or ''}".strip())
        self.lr = spec["lr"]

    def step(self) -> None:
        if self.last_grads is None or self.lr is None:
            raise RuntimeError("step() needs configure_optimizer() and loss_and_grads() first")
        self.params.sgd_step(self.last_grads, self.lr)


@dataclass
class Implementation:
    """What ``make_implementation()`` returns: ``build(spec, state)`` makes a model (a
    :class:`Model` subclass is such a callable); ``refuse(spec)`` may name a model the network
    does not do (reported as not implemented). ``ops``: the network's own ops in the op-interface
    names, exposed for diagnosis by substitution — then ``model(spec, state, ops=...)`` must build
    the network with the given ops (torch's) in place of those names."""

    name: str
    model: Callable[..., Any]
    capabilities: Mapping[str, Sequence[str]] = field(default_factory=dict)
    refuse: Callable[[Any], str] | None = None
    ops: dict[str, Callable[..., Any]] | None = None

    def build(self, spec: Any, state: Mapping[str, Any], ops: Mapping[str, Callable[..., Any]] | None = None) -> Any:
        reason = self.refuse(spec) if self.refuse else ""
        if reason:
            raise NotImplementedError(reason)
        state = {name: np.asarray(value) for name, value in state.items()}
        return self.model(spec, state, ops=dict(ops)) if ops else self.model(spec, state)


def activation_names(spec: Any) -> list[str]:
    """The activation after each dense layer: the hidden ones, then the output's."""
    return [h["name"] for h in spec.hidden] + [spec.output["name"]]


def one_hot(labels: Any, n_classes: int, dtype: Any = np.float64) -> np.ndarray:
    """Class labels ``(N,)`` as one-hot rows ``(N, n_classes)``."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} of shape {labels.shape}")
    return np.eye(n_classes, dtype=dtype)[labels]


def targets(y: Any, n_classes: int, dtype: Any = np.float64) -> np.ndarray:
    """The harness's targets as rows: labels ``(N,)`` become one-hot, rows ``(N, C)`` stay."""
    y = np.asarray(y)
    return one_hot(y, n_classes, dtype) if y.ndim == 1 else y.astype(dtype, copy=False)


def columns(rows: Any, dtype: Any = np.float64) -> list[np.ndarray]:
    """A batch of rows ``(N, d)`` as N column vectors ``(d, 1)`` (one sample at a time)."""
    rows = np.asarray(rows, dtype=dtype)
    return [row.reshape(-1, 1) for row in rows]


def softmax(z: Any) -> np.ndarray:
    """Softmax of each row of logits, ``exp(z − max z) / Σ exp(z − max z)`` (for the outputs of a
    network whose loss fuses softmax in)."""
    z = np.asarray(z)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def mean_over_samples(per_sample: Sequence[tuple[float, Mapping[str, np.ndarray]]]
                      ) -> tuple[float, dict[str, np.ndarray]]:
    """``[(loss_i, grads_i), …]`` of single samples → the batch mean of the losses and of each gradient."""
    if not per_sample:
        raise ValueError("per_sample is empty: expected one (loss, grads) per sample of the batch")
    n = len(per_sample)
    loss = sum(float(l_i) for l_i, _ in per_sample) / n
    names = per_sample[0][1].keys()
    return loss, {name: sum(g[name] for _, g in per_sample) / n for name in names}


# -- the op-level view of a network's own layers (``scratchnet-conformance ops``) --------------------

def layer_op(make_layer: Callable[[], Any], *backward_args: Any, per_sample: bool = False
             ) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]]:
    """An activation layer object as the op check's ``NAME(z)`` and ``NAME_backward(z, a, g)``: a fresh
    ``make_layer()`` per call, ``forward(z)`` then ``backward(g, *backward_args)`` (e.g. a learning rate
    of 0 for layers whose backward takes one). ``per_sample``: the layer takes one column ``(d, 1)`` at a
    time, so each row of the batch goes through on its own."""

    def one(z: np.ndarray, g: np.ndarray | None) -> np.ndarray:
        layer = make_layer()
        out = layer.forward(z)
        return out if g is None else layer.backward(g, *backward_args)

    def run(z: np.ndarray, g: np.ndarray | None) -> np.ndarray:
        z = np.asarray(z)
        if not per_sample:
            return one(z, g)
        gs = [None] * len(z) if g is None else [row.reshape(-1, 1) for row in np.asarray(g)]
        return np.stack([one(zr.reshape(-1, 1), gr)[:, 0] for zr, gr in zip(z, gs)])

    def forward(z: np.ndarray) -> np.ndarray:
        return run(z, None)

    def backward(z: np.ndarray, a: np.ndarray, g: np.ndarray) -> np.ndarray:
        return run(z, g)

    return forward, backward


class OpLayer:
    """An activation layer made of op functions ``forward(z)`` and ``backward(z, a, g)`` (batches as
    rows), standing in for one of the network's own layers when the diagnosis substitutes torch's op.
    ``columns``: the network passes column vectors ``(d, 1)``; extra arguments of ``backward``
    (a learning rate) are ignored."""

    def __init__(self, forward: Callable[[np.ndarray], np.ndarray],
                 backward: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], columns: bool = False):
        self.op_forward, self.op_backward, self.columns = forward, backward, columns

    def _t(self, x: np.ndarray) -> np.ndarray:
        return x.T if self.columns else x

    def forward(self, z: np.ndarray, *_: Any) -> np.ndarray:
        self.z = z
        self.a = self._t(np.asarray(self.op_forward(self._t(z))))
        return self.a

    def backward(self, g: np.ndarray, *_: Any) -> np.ndarray:
        return self._t(np.asarray(self.op_backward(self._t(self.z), self._t(self.a), self._t(g))))


class OpLoss:
    """A loss object (``forward(pred, y)``, ``backward()``) made of op functions ``value(p, y)`` and
    ``grad(p, y)``, standing in for the network's own loss under substitution."""

    def __init__(self, value: Callable[[np.ndarray, np.ndarray], float],
                 grad: Callable[[np.ndarray, np.ndarray], np.ndarray]):
        self.value, self.grad = value, grad

    def forward(self, p: np.ndarray, y: np.ndarray) -> float:
        self.p, self.y = p, y
        return float(self.value(p, y))

    __call__ = forward

    def backward(self) -> np.ndarray:
        return np.asarray(self.grad(self.p, self.y))


def substituted(ops: Mapping[str, Callable[..., Any]] | None, own: Mapping[str, Callable[..., Any]],
                forward: str, backward: str) -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    """``(forward op, backward op)`` when the diagnosis replaces either of the two names in ``ops``
    (the other one stays the network's own, from ``own``); ``None`` when neither is replaced."""
    if not ops or (forward not in ops and backward not in ops):
        return None
    merged = {**own, **ops}
    return merged[forward], merged[backward]


def loss_op(make_loss: Callable[[], Any]) -> tuple[Callable[[np.ndarray, np.ndarray], float],
                                                    Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """A loss object with ``forward(pred, y)`` and ``backward()`` as the op check's ``NAME(p, y)`` and
    ``NAME_grad(p, y)`` (for a fused loss: ``NAME(z, y)``, ``NAME_grad(z, y)``)."""

    def value(p: np.ndarray, y: np.ndarray) -> float:
        return float(make_loss().forward(p, y))

    def grad(p: np.ndarray, y: np.ndarray) -> np.ndarray:
        loss = make_loss()
        loss.forward(p, y)
        return loss.backward()

    return value, grad
