"""``Network``: a multi-layer perceptron with hand-written backpropagation.

Forward::

    a₀ = x,   zₖ = aₖ₋₁ Wₖᵀ + bₖ,   aₖ = fₖ(zₖ)          (k = 1 … K)

Backward starts from the output layer. For the fused pairs (softmax + cross_entropy,
log_softmax + nll, sigmoid + binary_cross_entropy) ``δ_K = ∂L/∂z_K = (p − y)/n`` comes
straight from the logits (:mod:`scratchnet.fused`); otherwise ``δ_K = f_K'ᵀ ∂L/∂a_K`` (the
output activation's vector-Jacobian product applied to the loss gradient). Then, layer by
layer::

    ∂L/∂Wₖ = δₖᵀ aₖ₋₁,   ∂L/∂bₖ = Σ_rows δₖ,   δₖ₋₁ = fₖ₋₁'ᵀ(δₖ Wₖ)

Parameter names follow ``torch.nn``: ``layers.{k}.weight`` ``(out, in)`` and
``layers.{k}.bias`` ``(out,)``, ``k`` counting dense layers from 0.

Layers after a hidden dense layer (``spec.after_hidden``: :class:`~scratchnet.normalization.BatchNorm1d`,
:class:`~scratchnet.dropout.Dropout`) sit between ``aₖ`` and the next layer's input, in order;
backward runs them in reverse between ``δₖ₊₁Wₖ₊₁`` and ``fₖ'ᵀ``. They are named like the
modules of a torch model holding ``ModuleDict``s ``batch_norms`` and ``dropouts`` keyed by ``k``:
``batch_norms.{k}.weight``/``bias`` (parameters) and ``batch_norms.{k}.running_mean``/``running_var``
(buffers: in :meth:`Network.state_dict`, not in :meth:`Network.parameters`). Like a torch module,
the network is in training mode (:meth:`Network.train`, the default) or evaluation mode
(:meth:`Network.eval`); only those layers tell the difference. Dropout masks come from
``numpy.random.default_rng(spec.seed)`` — the generator that drew the weights, continued.

``Network`` is the top of the core's import order: it composes :mod:`scratchnet.training`
(``fit`` on any object with the network's training interface) and
:mod:`scratchnet.serialization` (files from a spec and a state dict), neither of which imports
this module.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import registry, serialization, training
from ._checks import as_array, as_float_array, as_matrix
from .dropout import Dropout
from .errors import NonFiniteWarning
from .fused import fused_loss_and_grad
from .layers import Dense
from .optimizers import Optimizer, Parameter
from .spec import ModelSpec

__all__ = ["Network", "NonFiniteWarning", "MAX_PARAMETER_BYTES", "load"]

#: Largest memory a network may need for its parameters and their gradient buffers (16 GiB).
#: ``Network()`` refuses a bigger spec up front, naming the sizes and the bytes, instead of
#: failing inside numpy (a 4-10⁶-10⁶-3 float64 spec would need 14.6 TiB). Raise it if you must.
MAX_PARAMETER_BYTES = 16 * 2**30


def _format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Network:
    """A dense network built from a :class:`ModelSpec`, its weights drawn from ``spec.seed``.

    Shapes: inputs ``(N, sizes[0])``, outputs ``(N, sizes[-1])``. Targets: a 1-D integer label
    vector, or a 2-D ``(N, sizes[-1])`` array (one-hot, probability or regression rows).

    dtype: the model computes in ``spec.dtype`` end to end. Inputs and targets of another float
    (or integer) dtype are cast to it on the way in — float64 data meeting a float32 model is
    rounded to float32, as ``torch.Tensor.to(torch.float32)`` would.

    Example::

        >>> net = Network(ModelSpec((4, 8, 3), hidden="tanh", output="softmax", loss="cross_entropy"))
        >>> x = np.ones((5, 4)); y = np.array([0, 1, 2, 1, 0])
        >>> loss, grads = net.loss_and_grads(x, y)
        >>> sorted(grads) == sorted(net.state_dict())
        True
    """

    def __init__(self, spec: ModelSpec):
        if not isinstance(spec, ModelSpec):
            raise TypeError(f"spec must be a ModelSpec, got {type(spec).__name__}")
        self.spec = spec
        self.dtype = np.dtype(spec.dtype)
        need = 2 * spec.n_parameters * self.dtype.itemsize     # values + gradient buffers
        what = (f"sizes {spec.sizes} have {spec.n_parameters:,} parameters: {_format_bytes(need)} for "
                f"their values and gradients in {self.dtype.name}")
        if need > MAX_PARAMETER_BYTES:
            raise ValueError(f"spec too large: {what}, above scratchnet.network.MAX_PARAMETER_BYTES = "
                             f"{_format_bytes(MAX_PARAMETER_BYTES)}")
        rng = np.random.default_rng(spec.seed)
        init_params = dict(spec.init)
        init = registry.INITIALIZERS[init_params.pop("name")]
        self.layers: list[Dense] = []
        try:
            for k, act in enumerate(spec.activations):
                w, b = init(rng, spec.sizes[k], spec.sizes[k + 1], dtype=self.dtype, **init_params)
                self.layers.append(Dense(w, b, registry.make_activation(act), input_grad=k > 0))
        except MemoryError:
            raise MemoryError(f"out of memory building the network: {what}") from None
        #: the layers after each dense layer (empty lists for the output layer and dense-only specs)
        self.after: list[list[Any]] = [
            [registry.make_layer(e, spec.sizes[k + 1], self.dtype, rng=rng) for e in extras]
            for k, extras in enumerate(spec.after_hidden or ())]
        self.after += [[] for _ in range(len(self.layers) - len(self.after))]
        self.training = True
        self.loss_fn = registry.make_loss(spec.loss, spec.reduction)
        self._fused = spec.fused
        self._params = [Parameter(f"layers.{k}.{kind}", getattr(layer, kind), getattr(layer, "grad_" + kind))
                        for k, layer in enumerate(self.layers) for kind in ("weight", "bias")]
        self._params += [Parameter(f"{e.container}.{k}.{kind}", getattr(e, kind), getattr(e, "grad_" + kind))
                         for k, extras in enumerate(self.after) for e in extras if e.buffers
                         for kind in ("weight", "bias")]
        self._buffers = {f"{e.container}.{k}.{b}": getattr(e, b)
                         for k, extras in enumerate(self.after) for e in extras for b in e.buffers}

    @classmethod
    def from_spec(cls, spec: ModelSpec | Mapping[str, Any] | str,
                  state: Mapping[str, np.ndarray] | None = None) -> Network:
        """Build from a spec (object, dict or JSON) and optionally load a state dict."""
        if isinstance(spec, str):
            spec = ModelSpec.from_json(spec)
        elif isinstance(spec, Mapping):
            spec = ModelSpec.from_dict(spec)
        net = cls(spec)
        if state is not None:
            net.load_state_dict(state)
        return net

    # -- parameters ----------------------------------------------------------------------
    @property
    def n_inputs(self) -> int:
        return self.spec.sizes[0]

    @property
    def n_outputs(self) -> int:
        return self.spec.sizes[-1]

    def parameters(self) -> list[Parameter]:
        """The trainable arrays with their gradient buffers, in ``state_dict`` order."""
        return self._params

    def state_dict(self) -> dict[str, np.ndarray]:
        """Ordered ``{name: copy of array}``: ``layers.0.weight``, ``layers.0.bias``, …, then any
        batch norm's ``weight``, ``bias`` and its buffers ``running_mean``, ``running_var``."""
        return {**{p.name: p.value.copy() for p in self._params},
                **{name: b.copy() for name, b in self._buffers.items()}}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Copy arrays into the parameters and buffers (cast to the model dtype); names and shapes
        must match exactly; a running variance must not be negative."""
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping {{name: array}}, got {type(state).__name__}")
        targets = {**{p.name: p.value for p in self._params}, **self._buffers}
        missing, unexpected = set(targets) - set(state), set(state) - set(targets)
        if missing or unexpected:
            raise KeyError(f"state dict mismatch: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
        arrays = {}
        for key, value in targets.items():           # check every array before changing any
            name = f"state[{key!r}]"
            arr = as_array(state[key], name)
            if arr.shape != value.shape:
                raise ValueError(f"{name} has shape {arr.shape}, expected {value.shape}")
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
            arrays[key] = as_float_array(arr, name, self.dtype)   # finite, within the dtype's range
            if key.endswith(".running_var") and np.any(arrays[key] < 0):
                raise ValueError(f"{name} must be >= 0 (a variance), got a minimum of {arrays[key].min()!r}")
        for key, arr in arrays.items():
            targets[key][...] = arr

    # -- modes and dropout masks ---------------------------------------------------------
    def train(self, mode: bool = True) -> Network:
        """Training mode (``mode=True``, the default state): batch norm normalises with the batch's
        statistics and updates its running ones, dropout drops. Returns the network, as torch does."""
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"mode must be True or False, got {mode!r}")
        self.training = bool(mode)
        return self

    def eval(self) -> Network:
        """Evaluation mode: batch norm uses its running statistics, dropout is the identity."""
        return self.train(False)

    def dropout_layers(self) -> dict[str, Dropout]:
        """``{"dropouts.{k}": layer}`` of every dropout, in order."""
        return {f"dropouts.{k}": e for k, extras in enumerate(self.after) for e in extras if isinstance(e, Dropout)}

    def dropout_masks(self) -> dict[str, np.ndarray]:
        """``{"dropouts.{k}": bool mask (N, width)}`` of the last training-mode forward pass (copies;
        ``True`` = kept). Empty when the spec has no dropout; a layer not yet run in training mode
        is left out."""
        return {name: d.mask.copy() for name, d in self.dropout_layers().items() if d.mask is not None}

    def replay_dropout_masks(self, masks: Mapping[str, np.ndarray] | None) -> None:
        """Make every following training-mode pass use ``masks`` (as :meth:`dropout_masks` gives
        them, one per dropout) instead of drawing; ``None`` draws again. For checks that evaluate
        the same function many times (finite differences)."""
        layers = self.dropout_layers()
        if masks is None:
            for d in layers.values():
                d.replay(None)
            return
        if not isinstance(masks, Mapping) or set(masks) != set(layers):
            raise ValueError(f"masks must be a mapping with exactly the keys {sorted(layers)}, got "
                             f"{sorted(masks) if isinstance(masks, Mapping) else type(masks).__name__}")
        for name, d in layers.items():
            d.replay(masks[name])

    # -- forward / loss / backward -------------------------------------------------------
    def _forward(self, x: np.ndarray) -> np.ndarray:
        for layer, after in zip(self.layers, self.after):
            x = layer.forward(x)
            for extra in after:
                x = extra.forward(x, self.training)
        return x

    def _backward_after(self, k: int, grad: np.ndarray) -> np.ndarray:
        """∂L/∂aₖ from ∂L/∂(input of layer k + 1), back through the layers after layer ``k``.
        ``grad`` is a work array nobody reads afterwards: each layer writes its result into it."""
        for extra in reversed(self.after[k]):
            grad = extra.backward(grad, overwrite_dy=True)
        return grad

    def _backward(self, target: np.ndarray) -> float:
        """Loss of the last forward pass and every parameter gradient, into the buffers."""
        out = self.layers[-1]
        if self._fused:
            value, delta = fused_loss_and_grad(self.spec.output["name"], self.loss_fn, out.z, out.a, target)
        else:
            value = self.loss_fn.value(out.a, target)
            delta = out.activation.backward(out.z, out.a, self.loss_fn.gradient(out.a, target))
        grad = out.backward_from_z(delta, need_input_grad=len(self.layers) > 1)
        for k in range(len(self.layers) - 2, -1, -1):
            if self.after[k]:
                grad = self._backward_after(k, grad)
            # grad is layer k+1's ∂L/∂x work array (or a layer's after it), read by nobody else:
            # the VJP may overwrite it.
            grad = self.layers[k].backward(grad, need_input_grad=k > 0, overwrite_grad_a=True)
        return float(value)

    def _inputs(self, x: object) -> np.ndarray:
        return as_matrix(x, "x", self.dtype, columns=self.n_inputs)

    def _targets(self, y: object, n_rows: int) -> np.ndarray:
        target = self.loss_fn.prepare_target(y, self.n_outputs, self.dtype)
        if target.shape[0] != n_rows:
            raise ValueError(f"y has {target.shape[0]} rows, but x has {n_rows}")
        return target

    def forward(self, x: object) -> np.ndarray:
        """Output activations ``a_K`` ``(N, sizes[-1])`` for inputs ``x`` ``(N, sizes[0])``."""
        return self._forward(self._inputs(x)).copy()

    __call__ = forward

    def predict(self, x: object) -> np.ndarray:
        """Class predictions: the arg-max of each output row, or ``output > 0.5`` for a single
        sigmoid-like output."""
        return training.predicted_classes(self.forward(x))

    def loss(self, x: object, y: object) -> float:
        """The loss of the network on ``(x, y)`` under the spec's reduction."""
        xs = self._inputs(x)
        return self._loss_value(xs, self._targets(y, xs.shape[0]))

    def _loss_value(self, xs: np.ndarray, target: np.ndarray) -> float:
        out = self.layers[-1]
        self._forward(xs)
        if self._fused:
            value, _ = fused_loss_and_grad(self.spec.output["name"], self.loss_fn, out.z, out.a, target)
        else:
            value = self.loss_fn.value(out.a, target)
        return float(value)

    def loss_and_grads(self, x: object, y: object) -> tuple[float, dict[str, np.ndarray]]:
        """Loss and ``{name: ∂L/∂param}`` keyed like :meth:`state_dict` (copies)."""
        xs = self._inputs(x)
        target = self._targets(y, xs.shape[0])
        self._forward(xs)
        value = self._backward(target)
        grads = {p.name: p.grad.copy() for p in self._params}
        if not np.isfinite(value) or not all(np.all(np.isfinite(g)) for g in grads.values()):
            warnings.warn(f"non-finite loss or gradient ({value!r}) for {self.spec.describe()}",
                          NonFiniteWarning, stacklevel=2)
        return value, grads

    def train_step(self, x: np.ndarray, target: np.ndarray, optimizer: Optimizer) -> tuple[float, np.ndarray]:
        """One step on already validated arrays (``target`` from ``loss_fn.prepare_target``):
        forward, backward, ``optimizer.step()``. Returns the loss before the update and the
        output it was computed from (valid until the next forward pass)."""
        output = self._forward(x)
        value = self._backward(target)
        optimizer.step()
        return value, output

    # -- training and persistence (training.py and serialization.py) ----------------------
    def fit(self, x: object, y: object, **kwargs: Any) -> training.History:
        """Train in place; see :func:`scratchnet.training.fit` for the arguments."""
        return training.fit(self, x, y, **kwargs)

    def save(self, path: str | os.PathLike) -> Path:
        """Write spec, weights and checksum to one ``.npz`` (see :mod:`scratchnet.serialization`);
        returns the path written."""
        return serialization.save(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, trust_missing_checksum: bool = False) -> Network:
        """Rebuild a network written by :meth:`save`; the file is verified first
        (:func:`scratchnet.serialization.read`; a file without a checksum only with
        ``trust_missing_checksum=True``)."""
        spec, state = serialization.read(path, trust_missing_checksum=trust_missing_checksum)
        return cls.from_spec(spec, state)

    def __iter__(self) -> Iterator[Dense]:
        return iter(self.layers)

    def __repr__(self) -> str:
        return f"Network({self.spec.describe()})"


def load(path: str | os.PathLike, *, trust_missing_checksum: bool = False) -> Network:
    """Rebuild the network saved at ``path`` (``scratchnet.load``): :meth:`Network.load`."""
    return Network.load(path, trust_missing_checksum=trust_missing_checksum)
