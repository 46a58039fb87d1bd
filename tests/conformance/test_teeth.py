"""The suite has teeth: the harness's own checks (``reference.compare_model`` and
``scratchnet_reference.core.lockstep``) are run against deliberately broken implementations, and each bug
must be

* CAUGHT — some record has status ``"fail"``, and
* LOCALISED — walking the gradient records backwards from the output, the first layer that
  fails is the layer where the bug was planted, with exactly the expected parameter(s); for
  training bugs, the loss of the first step agrees (forward and gradients are right) while the
  parameters after it do not (the update is wrong).

Every bug is one row of a table: its name, how the broken implementation is built (a subclass
of scratchnet's ``Network`` / ``Activation`` / ``Optimizer`` handed to
``ScratchnetImplementation(network_factory=...)`` — scratchnet itself is never edited), the
model and data that expose it, and what the records must say. The same rows run against the
correct implementation and must pass: no false alarms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from scratchnet_reference import ScratchnetImplementation, compare_model, flavours_for, initial_state, lockstep
from scratchnet_reference.core.matrix import OPTIMIZER_CONFIGS, make_batch
from scratchnet_reference.diagnosis import Problem, annotate, group

from scratchnet import SGD, Adam, AdamW, ModelSpec, Network, registry
from scratchnet.activations import ReLU, Sigmoid, Softmax, Tanh
from scratchnet.fused import fused_loss_and_grad

pytestmark = pytest.mark.filterwarnings("ignore::scratchnet.network.NonFiniteWarning")

DTYPES = ("float64", "float32")


# =============================================================================================
# Planting bugs
# =============================================================================================

class PlantedNetwork(Network):
    """scratchnet's ``Network`` with its backward pass spelled out as overridable steps, so a
    subclass can break exactly one of them. Unmodified it computes what ``Network`` computes
    (the control rows below check that)::

        value, δ_K = output_delta(target)
        for k = K … 0:   param_grads(k, δ_k);  after_layer(k);  δ_{k−1} = f'_{k−1}ᵀ(input_grad(k, δ_k))
    """

    def output_delta(self, target: np.ndarray) -> tuple[Any, np.ndarray]:
        """The loss and ``∂L/∂z_K``: fused ``(p − y)/n`` or the output activation's VJP."""
        out = self.layers[-1]
        if self._fused:
            return fused_loss_and_grad(self.spec.output["name"], self.loss_fn, out.z, out.a, target)
        grad_a = self.loss_fn.gradient(out.a, target)
        return self.loss_fn.value(out.a, target), out.activation.backward(out.z, out.a, grad_a)

    def param_grads(self, k: int, delta: np.ndarray) -> None:
        """``∂L/∂W_k = δᵀ a_{k−1}``, ``∂L/∂b_k = Σ_rows δ`` into the layer's buffers (scratchnet's
        own ``Dense`` code)."""
        self.layers[k].backward_from_z(delta, need_input_grad=False)

    def after_layer(self, k: int) -> None:
        """Called once layer ``k``'s gradients are known (nothing, in a correct network)."""

    def input_grad(self, k: int, delta: np.ndarray) -> np.ndarray:
        """``∂L/∂a_{k−1} = δ_k W_k``."""
        return np.dot(delta, self.layers[k].weight)

    def _backward(self, target: np.ndarray) -> float:
        value, delta = self.output_delta(target)
        for k in range(len(self.layers) - 1, -1, -1):
            self.param_grads(k, delta)
            self.after_layer(k)
            if k:
                below = self.layers[k - 1]
                delta = below.activation.backward(below.z, below.a, self.input_grad(k, delta))
        return float(value)


def every(cls: type) -> Callable[[ModelSpec], Network]:
    """A network factory that replaces every activation named like ``cls`` by ``cls`` (same
    hyper-parameters) — a broken activation class breaks every layer that uses it."""
    def factory(spec: ModelSpec) -> Network:
        net = Network(spec)
        for layer in net.layers:
            if layer.activation.name == cls.name:
                layer.activation = cls(**layer.activation.params)
        return net
    factory.__qualname__ = f"every({cls.__name__})"
    return factory


# -- activations -------------------------------------------------------------------------------

class SoftmaxElementwiseJacobian(Softmax):
    """Softmax back-propagated as if elementwise: ``g ⊙ s(1 − s)`` — the diagonal of the
    Jacobian ``diag(s) − s sᵀ`` only; the cross terms ``−s_i s_j`` are dropped."""

    def backward(self, z, a, grad):
        return grad * a * (1 - a)


class SoftmaxWithoutMax(Softmax):
    """``exp(z) / Σ exp(z)`` without subtracting the row maximum: ``inf/inf = NaN`` once a
    logit passes ~709 (float64) or ~88 (float32); exact otherwise."""

    def forward(self, z):
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)

    def backward(self, z, a, grad):
        with np.errstate(invalid="ignore"):
            return super().backward(z, a, grad)


class TanhPrimeOneMinusA(Tanh):
    """``tanh'(z)`` written as ``1 − a`` instead of ``1 − a²``."""

    def backward(self, z, a, grad):
        return grad * (1 - a)


class SigmoidPrimeOfActivation(Sigmoid):
    """The derivative evaluated at the activation instead of the pre-activation:
    ``σ'(a) = σ(a)(1 − σ(a))`` where ``σ'(z) = a(1 − a)`` was meant."""

    def backward(self, z, a, grad):
        s = Sigmoid().forward(a)
        return grad * s * (1 - s)


class ReLUPrimeOneAtZero(ReLU):
    """``relu'(0) = 1`` (``z >= 0``); torch's subgradient at the kink is 0."""

    def backward(self, z, a, grad):
        return np.where(z >= 0, grad, 0).astype(grad.dtype, copy=False)


# -- output deltas, parameter gradients, losses ---------------------------------------------------

class SoftmaxVJPAfterFusedDelta(PlantedNetwork):
    """The fused softmax + cross-entropy delta ``(p − y)/N`` — already ``∂L/∂z`` — pushed through
    softmax's Jacobian once more, as if it were ``∂L/∂p``."""

    def output_delta(self, target):
        value, delta = super().output_delta(target)
        out = self.layers[-1]
        return value, out.activation.backward(out.z, out.a, delta)


class SigmoidPrimeInFusedBCEDelta(PlantedNetwork):
    """Fused sigmoid + BCE with ``σ'(z) = a(1 − a)`` multiplied into ``(a − y)/n``, although the
    canonical pair's ``1/(a(1 − a))`` already cancelled it."""

    def output_delta(self, target):
        value, delta = super().output_delta(target)
        a = self.layers[-1].a
        return value, delta * a * (1 - a)


class GradientSummedOverBatch(PlantedNetwork):
    """The loss is the batch mean, but the output delta is ``p − y`` summed over the batch
    (the ``1/N`` forgotten): every gradient N times too large, direction intact."""

    def output_delta(self, target):
        value, delta = super().output_delta(target)
        return value, delta * delta.shape[0]


class BiasGradientWrongAxis(PlantedNetwork):
    """``∂L/∂b`` of layer ``layer`` summed over the units (``axis=1``) instead of the batch rows.
    Shapes agree — and nothing crashes — when the batch size equals the layer's width."""

    layer = 1

    def param_grads(self, k, delta):
        super().param_grads(k, delta)
        if k == self.layer:
            np.sum(delta, axis=1, out=self.layers[k].grad_bias)


class WeightGradientTransposed(PlantedNetwork):
    """``∂L/∂W`` of layer ``layer`` computed as ``aᵀ δ`` (``(in, out)``) instead of ``δᵀ a``: the
    hard case, a square layer, where the shapes match."""

    layer = 1

    def param_grads(self, k, delta):
        super().param_grads(k, delta)
        if k == self.layer:
            np.dot(self.layers[k].x.T, delta, out=self.layers[k].grad_weight)


class NaiveCrossEntropy(PlantedNetwork):
    """Cross-entropy taken literally on the rounded probabilities, not fused:
    ``L = −Σ y log p / N`` and ``∂L/∂p = −y/p / N``, then the output activation's VJP. Once a
    probability underflows to 0, ``log 0 = −inf`` and ``0·(−inf) = NaN``."""

    def __init__(self, spec):
        super().__init__(spec)
        self._fused = False

    def output_delta(self, target):
        out = self.layers[-1]
        n = out.a.shape[0]
        y = self.loss_fn.smoothed(target, out.a.shape[1], out.a.dtype)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            value = -np.sum(y * np.log(out.a)) / n
            grad = -y / out.a / n
            return value, out.activation.backward(out.z, out.a, grad)


class KeepdimsBiasGradient(Network):
    """Returns each bias gradient as ``δ.sum(axis=0, keepdims=True)``: shape ``(1, out)``
    instead of ``(out,)`` — a wrong shape, not just wrong numbers."""

    def loss_and_grads(self, x, y):
        value, grads = super().loss_and_grads(x, y)
        return value, {k: g[None, :] if k.endswith("bias") else g for k, g in grads.items()}


# -- training: optimizers and the order of update and backward --------------------------------------

class EmaMomentumSGD(SGD):
    """Momentum as an exponential average, ``b ← μb + (1 − μ)g`` from ``b₀ = 0`` (torch:
    ``b₁ = g``, then ``b ← μb + (1 − τ)g``)."""

    def step(self):
        self.t += 1
        for i, p in enumerate(self.params):
            g = p.grad + self.weight_decay * p.value
            if self.buffers[i] is None:
                self.buffers[i] = np.zeros_like(p.value)
            buf = self.buffers[i]
            buf *= self.momentum
            buf += (1 - self.momentum) * g
            p.value -= self.lr * buf


class DampeningOnFirstStepSGD(SGD):
    """torch's momentum, except that the first buffer is dampened too: ``b₁ = (1 − τ)g``
    (torch: ``b₁ = g``)."""

    def step(self):
        self.t += 1
        for i, p in enumerate(self.params):
            g = p.grad + self.weight_decay * p.value
            if self.buffers[i] is None:
                self.buffers[i] = (1 - self.dampening) * g
            else:
                self.buffers[i] *= self.momentum
                self.buffers[i] += (1 - self.dampening) * g
            p.value -= self.lr * self.buffers[i]


class LrInsideMomentumSGD(SGD):
    """``v ← μv + η(1 − τ)g`` (``v₁ = ηg``), ``θ ← θ − v``: the other momentum convention. With a
    constant learning rate ``v = η·b`` exactly, so it is *not* a bug here and must pass."""

    def step(self):
        self.t += 1
        for i, p in enumerate(self.params):
            g = p.grad + self.weight_decay * p.value
            if self.buffers[i] is None:
                self.buffers[i] = self.lr * g
            else:
                self.buffers[i] *= self.momentum
                self.buffers[i] += self.lr * (1 - self.dampening) * g
            p.value -= self.buffers[i]


class AdamWithoutBiasCorrection(Adam):
    """Adam with ``θ ← θ − η·m/(√v + ε)``: no ``1/(1 − β₁ᵗ)``, no ``1/√(1 − β₂ᵗ)`` — the
    first steps are ``√(1 − β₂)/(1 − β₁) ≈ 0.32`` of torch's."""

    def step(self):
        self.t += 1
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            g = p.grad + self.weight_decay * p.value
            self.m[i] += (1 - beta1) * (g - self.m[i])
            self.v[i] *= beta2
            self.v[i] += (1 - beta2) * g * g
            p.value -= self.lr * self.m[i] / (np.sqrt(self.v[i]) + self.eps)


class AdamWCoupledDecay(AdamW):
    """AdamW whose weight decay is added to the gradient (Adam's L2 penalty) instead of being
    decoupled (``θ ← θ(1 − ηλ)``)."""

    decoupled = False


class SwappedOptimizer(ScratchnetImplementation):
    """scratchnet with one optimizer class replaced by ``optimizer_cls`` (the registry's class
    for other names)."""

    def __init__(self, name: str, optimizer_cls: type, network_factory=Network):
        super().__init__(name, network_factory)
        self.optimizer_cls = optimizer_cls

    def build(self, spec, state):
        model = super().build(spec, state)

        def configure_optimizer(opt_spec):
            kwargs = dict(opt_spec)
            name = kwargs.pop("name")
            cls = self.optimizer_cls if name == self.optimizer_cls.name else registry.OPTIMIZERS[name]
            model.optimizer = cls(model.network.parameters(), **kwargs)

        model.configure_optimizer = configure_optimizer
        return model


class EagerUpdateNetwork(PlantedNetwork):
    """Updates each layer as soon as its gradient is known, inside backward — so ``δ_{k−1} =
    δ_k W_k`` already uses the *updated* ``W_k``. (Without an optimizer, e.g. under
    ``compare_model``, it is a correct network.)"""

    layer_optimizers: list | None = None

    def after_layer(self, k):
        if self.layer_optimizers is not None:
            self.layer_optimizers[k].step()


class EagerUpdate(ScratchnetImplementation):
    """The protocol's ``step()`` does nothing: the updates already happened during backward,
    one layer at a time, each layer with its own optimizer (the same arithmetic as one
    optimizer: torch.optim's state is per parameter). ``deferred=True`` is the control: the
    same per-layer optimizers, stepped by ``step()`` after the whole backward pass."""

    def __init__(self, name: str = "eager-update", deferred: bool = False):
        super().__init__(name, EagerUpdateNetwork)
        self.deferred = deferred

    def build(self, spec, state):
        model = super().build(spec, state)
        net = model.network
        optimizers: list = []

        def configure_optimizer(opt_spec):
            params = net.parameters()
            optimizers[:] = [registry.make_optimizer(dict(opt_spec), params[2 * k:2 * k + 2])
                             for k in range(len(net.layers))]
            if not self.deferred:
                net.layer_optimizers = optimizers

        def step():
            if self.deferred:
                for opt in optimizers:
                    opt.step()

        model.configure_optimizer = configure_optimizer
        model.step = step
        return model


# =============================================================================================
# Data
# =============================================================================================

@dataclass(frozen=True)
class Case:
    """A model and a batch: ``ModelSpec(**spec)``, ``n`` samples of ``make_batch`` targets,
    optionally a transformed initial state (exact zeros, huge logits)."""

    spec: dict[str, Any]
    target: str = "labels"
    n: int = 8
    state: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None

    def build(self, dtype: str, seed: int = 3):
        spec = ModelSpec(dtype=dtype, seed=seed, **self.spec)
        x, y = make_batch(spec, self.n, seed=seed, target=self.target)
        state = initial_state(spec)
        if self.state is not None:
            state = self.state({k: v.copy() for k, v in state.items()})
        return spec, x, y, state


def zero_unit(layer: int, unit: int):
    """Weights and bias of one unit set to 0: its pre-activation is exactly 0 for every input
    (a ReLU kink hit on purpose)."""
    def transform(state):
        state[f"layers.{layer}.weight"][unit] = 0
        state[f"layers.{layer}.bias"][unit] = 0
        return state
    transform.__qualname__ = f"zero_unit({layer}, {unit})"
    return transform


def scale_weights(layer: int, factor: float):
    """One layer's weights × ``factor``: pre-activations of a few units, away from 0 where
    ``σ'(z)`` and ``σ'(σ(z))`` would nearly agree."""
    def transform(state):
        state[f"layers.{layer}.weight"] *= factor
        return state
    transform.__qualname__ = f"scale_weights({layer}, {factor})"
    return transform


def huge_logits(state):
    """The output layer's weights × 5000: logits in the thousands, spread far beyond exp's
    range (709 in float64, 88 in float32)."""
    state["layers.1.weight"] *= 5000
    return state


CLASSIFY = Case(dict(sizes=(5, 6, 4), hidden="tanh", output="softmax", loss="cross_entropy"))
HUGE_LOGITS = Case(dict(sizes=(4, 5, 3), hidden="relu", output="softmax", loss="cross_entropy"),
                   state=huge_logits)
SQUARE = Case(dict(sizes=(5, 4, 4, 3), hidden="tanh", output="identity", loss="mse"), target="dense",
              n=4)  # layer 1 is 4×4 and the batch has 4 rows


# =============================================================================================
# Gradient bugs: compare_model
# =============================================================================================

@dataclass(frozen=True)
class GradientBug:
    name: str
    factory: Callable[[ModelSpec], Network]
    case: Case
    #: the failing parameters of the first failing layer, walking back from the output
    top: frozenset[str]
    #: nothing else fails (the bug does not propagate to the layers below)
    only: bool = False
    #: exactly the checks that have failing records
    fails: frozenset[str] = frozenset({"gradient"})
    #: flavours that must catch it (default: every flavour of the spec)
    flavours: tuple[str, ...] | None = None
    #: the finite-difference verdict expected on every failing gradient record (None: not
    #: asserted — at an exact kink the central difference straddles it and proves nothing)
    fd: str | None = "torch"
    #: extra assertions on the records
    extra: Callable[[list], None] | None = field(default=None, compare=False)
    #: the key of the catalogue's mistake the diagnosis must name (scratchnet_reference.diagnosis.catalogue)
    mistake: str | None = None


def layer_of(param: str) -> int:
    return int(param.split(".")[1])


def params(*names: str) -> frozenset[str]:
    return frozenset(names)


def scaled_by_batch(records) -> None:
    """Direction intact, length N times torch's."""
    for r in records:
        if r.check == "gradient" and r.status == "fail":
            assert r.cosine == pytest.approx(1.0, abs=1e-5) and r.norm_ratio == pytest.approx(8.0, rel=1e-4)


def direction_wrong(records) -> None:
    """A transposed gradient has the right norm but points elsewhere (cosine < 1)."""
    (r,) = [r for r in records if r.check == "gradient" and r.status == "fail"][:1]
    assert r.norm_ratio == pytest.approx(1.0, rel=1e-4) and r.cosine < 0.99


def kink_row(records) -> None:
    """The disagreement sits in the row of the unit whose pre-activation is exactly 0."""
    for r in records:
        if r.check == "gradient" and r.status == "fail":
            assert r.worst_index.startswith("(2,"), r.worst_index


GRADIENT_BUGS = [
    GradientBug("softmax_jacobian_taken_elementwise", every(SoftmaxElementwiseJacobian),
                Case(dict(sizes=(5, 6, 6, 4), hidden=("tanh", "softmax"), output="identity", loss="mse"),
                     target="dense"),
                params("layers.1.weight", "layers.1.bias"), mistake="softmax_s1s"),
    GradientBug("softmax_vjp_applied_after_fused_p_minus_y", SoftmaxVJPAfterFusedDelta, CLASSIFY,
                params("layers.1.weight", "layers.1.bias"), mistake="again_on_fused"),
    GradientBug("sigmoid_prime_multiplied_into_fused_bce_delta", SigmoidPrimeInFusedBCEDelta,
                Case(dict(sizes=(5, 6, 3), hidden="relu", output="sigmoid", loss="binary_cross_entropy"),
                     target="dense"),
                params("layers.1.weight", "layers.1.bias"), mistake="again_on_fused"),
    GradientBug("gradient_summed_not_averaged_over_batch", GradientSummedOverBatch, CLASSIFY,
                params("layers.1.weight", "layers.1.bias"), extra=scaled_by_batch),
    GradientBug("bias_gradient_summed_over_wrong_axis", BiasGradientWrongAxis, SQUARE,
                params("layers.1.bias"), only=True),
    GradientBug("weight_gradient_transposed_square_layer", WeightGradientTransposed, SQUARE,
                params("layers.1.weight"), only=True, extra=direction_wrong),
    GradientBug("tanh_prime_written_as_1_minus_a", every(TanhPrimeOneMinusA),
                Case(dict(sizes=(5, 6, 6, 3), hidden=("relu", "tanh"), output="identity", loss="mse"),
                     target="dense"),
                params("layers.1.weight", "layers.1.bias")),
    GradientBug("sigmoid_prime_at_activation_not_preactivation", every(SigmoidPrimeOfActivation),
                Case(dict(sizes=(5, 6, 6, 3), hidden=("tanh", "sigmoid"), output="identity",
                          loss={"name": "huber", "delta": 0.5}), target="dense", state=scale_weights(1, 5.0)),
                params("layers.1.weight", "layers.1.bias"), mistake="at_activation"),
    GradientBug("relu_prime_of_zero_is_1", every(ReLUPrimeOneAtZero),
                Case(dict(sizes=(4, 5, 3), hidden="relu", output="softmax", loss="cross_entropy"),
                     state=zero_unit(0, 2)),
                params("layers.0.weight", "layers.0.bias"), only=True, fd=None, extra=kink_row, mistake="kink"),
    GradientBug("softmax_without_max_subtraction", every(SoftmaxWithoutMax), HUGE_LOGITS,
                params("layers.1.weight", "layers.1.bias"), fails=frozenset({"forward", "gradient"}),
                flavours=("fused",)),  # FD of its (fused, finite) loss agrees with torch
    GradientBug("log_of_zero_in_cross_entropy_on_probabilities", NaiveCrossEntropy, HUGE_LOGITS,
                params("layers.1.weight", "layers.1.bias"), fails=frozenset({"loss", "gradient"}),
                flavours=("fused",), fd="neither"),  # its own loss is NaN: FD vouches for nobody
    # sigmoid + cross_entropy: torch has only the modular form, which breaks on the same data
    # (log 0); unless scratchnet_reference.core.mapping gives it a stable form on the logits, nothing can catch
    # this bug — the row fails until it does (see tests/reference/test_mapping.py).
    GradientBug("log_of_zero_in_sigmoid_cross_entropy", NaiveCrossEntropy,
                Case(dict(sizes=(4, 5, 3), hidden="relu", output="sigmoid", loss="cross_entropy"),
                     state=huge_logits),
                params("layers.1.weight", "layers.1.bias"), fails=frozenset({"loss", "gradient"}),
                flavours=("fused",), fd="neither"),
]


def run_compare(impl, case: Case, dtype: str, fd: str = "on_failure"):
    spec, x, y, state = case.build(dtype)
    return compare_model(impl, spec, x, y, state=state, fd=fd), spec, state


def first_failing_going_backwards(records, order: list[str]) -> str | None:
    failing = {r.param for r in records if r.check == "gradient" and r.status == "fail"}
    return next((name for name in reversed(order) if name in failing), None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bug", GRADIENT_BUGS, ids=lambda b: b.name)
def test_gradient_bug_is_caught_and_localised(bug: GradientBug, dtype: str):
    impl = ScratchnetImplementation(bug.name, network_factory=bug.factory)
    records, spec, state = run_compare(impl, bug.case, dtype)
    failed = [r for r in records if r.status == "fail"]

    # CAUGHT, in every flavour that can see it, by the expected checks
    assert failed, f"{bug.name}: not caught — every record passed"
    for flavour in bug.flavours or flavours_for(spec):
        assert any(r.flavour == flavour for r in failed), f"{bug.name}: the {flavour} flavour missed it"
    assert {r.check for r in failed} == set(bug.fails), \
        f"{bug.name}: failing checks {sorted({r.check for r in failed})}, expected {sorted(bug.fails)}"

    # LOCALISED: walking back from the output, the first failing layer is the planted one
    order = list(state)
    first = first_failing_going_backwards(records, order)
    assert first is not None, f"{bug.name}: no gradient record failed"
    top_layer = layer_of(next(iter(bug.top)))
    assert layer_of(first) == top_layer, f"{bug.name}: first failing parameter is {first}, expected layer {top_layer}"
    for flavour in bug.flavours or flavours_for(spec):
        mine = [r for r in failed if r.flavour == flavour and r.check == "gradient"]
        at_top = {r.param for r in mine if layer_of(r.param) == top_layer}
        assert at_top == bug.top, f"{bug.name} ({flavour}): failing at layer {top_layer}: {sorted(at_top)}"
        assert not any(layer_of(r.param) > top_layer for r in mine)
        below = {name for name in order if layer_of(name) < top_layer}
        if bug.only:
            assert {r.param for r in mine} == bug.top, f"{bug.name}: also failing: {sorted({r.param for r in mine})}"
        else:  # a wrong delta propagates: every layer below the planted one fails too
            assert below <= {r.param for r in mine}, f"{bug.name}: below layer {top_layer} some passed"

    # the finite-difference oracle blames the implementation (its own loss disagrees with it)
    if bug.fd is not None:
        verdicts = {r.fd_verdict for r in failed if r.check == "gradient"}
        assert verdicts == {bug.fd}, f"{bug.name}: FD verdicts {verdicts}"
    if bug.extra is not None:
        bug.extra(records)
    # NAMED: a catalogue mistake is named by the diagnosis, at the planted layer. float64 only: in float32
    # the sigmoid + BCE row's s(1 − s)·(p − y) fits "a constant factor 0.238" within 10× float32's
    # tolerance (s(1 − s) ≈ 0.24 for these small logits) — measured, before and after the catalogue
    if bug.mistake is not None and dtype == "float64":
        x, y = bug.case.build(dtype)[1:3]
        annotate(records, impl, Problem(spec, state, x, y))
        named = {(c.kind, max(c.layers, default=-1)) for c, _, _ in group(records)}
        assert (bug.mistake, top_layer) in named, f"{bug.name}: the diagnosis names {named}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bug", GRADIENT_BUGS, ids=lambda b: b.name)
def test_gradient_bug_case_passes_with_a_correct_implementation(bug: GradientBug, dtype: str):
    """No false alarms: the same model and data, scratchnet as it is and the bug-free
    ``PlantedNetwork`` scaffold, pass (at huge logits torch's own modular path may overflow;
    a second oracle judges those records, and none is ``fail``)."""
    for impl in (ScratchnetImplementation(), ScratchnetImplementation("planted-control", PlantedNetwork)):
        records, _, _ = run_compare(impl, bug.case, dtype, fd="never")
        bad = [(r.flavour, r.check, r.param, r.tol_ratio) for r in records if r.status == "fail"]
        assert not bad, f"{impl.name} on the {bug.name} case: false alarm {bad}"
        assert all(r.status == "pass" for r in records if r.flavour == "fused")


class GradientOffByRelative(PlantedNetwork):
    """Every gradient off by a relative ``rel`` (the output delta × (1 + rel)): a drift, not a
    blunder."""

    rel = 0.0

    def output_delta(self, target):
        value, delta = super().output_delta(target)
        return value, delta * (1 + self.rel)


@pytest.mark.parametrize("dtype, rel", [("float64", 1e-8), ("float32", 1e-2)])
def test_a_small_relative_drift_is_caught_in_every_parameter(dtype, rel):
    """How sharp the gradient check is (the measured rounding-noise floor included): a uniform
    relative error of 1e-8 in float64 (≈1e-9 is the threshold) and 1e-2 in float32 (≈2e-3) fails
    every gradient record, with tol_ratio well above 1."""
    impl = ScratchnetImplementation("drift", type("Drift", (GradientOffByRelative,), {"rel": rel}))
    records, _, state = run_compare(impl, CLASSIFY, dtype, fd="never")
    grads = [r for r in records if r.check == "gradient"]
    assert {r.param for r in grads if r.status == "fail"} == set(state)
    assert min(r.tol_ratio for r in grads) > 3
    assert all(r.status == "pass" for r in records if r.check != "gradient")


def test_huge_logit_case_really_overflows_torch_modular_path():
    """The data behind the NaN rows is extreme enough: torch's own modular path breaks on it, so
    its modular records are judged by a second oracle (and pass for scratchnet)."""
    records, _, _ = run_compare(ScratchnetImplementation(), HUGE_LOGITS, "float64", fd="never")
    modular = [r for r in records if r.flavour == "modular"]
    assert any(r.oracle not in ("torch", "") for r in modular)
    assert all(r.status == "pass" for r in modular)


@pytest.mark.parametrize("factory, case", [
    (every(ReLUPrimeOneAtZero), Case(CLASSIFY.spec | {"hidden": "relu"})),
    (every(SoftmaxWithoutMax), CLASSIFY),
    (NaiveCrossEntropy, CLASSIFY),
], ids=["relu_prime_of_zero", "softmax_without_max", "log_of_zero"])
def test_some_bugs_hide_on_ordinary_data(factory, case):
    """Why the table above feeds exact kinks and huge logits: on ordinary data these bugs are
    numerically invisible — the harness catches them only because the data hits them."""
    records, _, _ = run_compare(ScratchnetImplementation("hidden", factory), case, "float64", fd="never")
    assert all(r.status == "pass" for r in records)


def test_wrong_gradient_shape_is_reported_with_the_parameter_named():
    """A ``(1, out)`` bias gradient (``keepdims=True``) must come out as a failure that names the
    parameter — a fail record, or at least an error whose message says which parameter — so a
    matrix run can say what is wrong."""
    impl = ScratchnetImplementation("keepdims-bias", KeepdimsBiasGradient)
    spec, x, y, state = CLASSIFY.build("float64")
    try:
        records = compare_model(impl, spec, x, y, state=state)
    except ValueError as exc:
        assert "layers.1.bias" in str(exc) or "layers.0.bias" in str(exc), \
            f"compare_model raised without naming the parameter: {exc}"
    else:
        failed = {r.param for r in records if r.status == "fail"}
        assert {"layers.0.bias", "layers.1.bias"} <= failed


# =============================================================================================
# Training bugs: lockstep
# =============================================================================================

TRAIN_CASE = Case(dict(sizes=(5, 7, 6, 4), hidden="tanh", output="softmax", loss="cross_entropy"), n=13)


@dataclass(frozen=True)
class TrainingBug:
    name: str
    impl: Callable[[], ScratchnetImplementation]
    config: str
    control: Callable[[], ScratchnetImplementation] = ScratchnetImplementation
    #: with ``steps=1``: the parameters that must disagree after the first update (None: all)
    wrong_after_one_step: frozenset[str] | None = None


TRAINING_BUGS = [
    TrainingBug("parameters_updated_before_all_gradients_are_computed", EagerUpdate, "sgd",
                control=lambda: EagerUpdate("per-layer-optimizers-after-backward", deferred=True),
                # the output layer's update is right; every layer below back-propagated
                # through an already-updated weight
                wrong_after_one_step=params("layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias")),
    TrainingBug("momentum_as_exponential_average", lambda: SwappedOptimizer("ema-momentum", EmaMomentumSGD),
                "sgd_momentum", control=lambda: SwappedOptimizer("sgd-control", SGD)),
    TrainingBug("dampening_applied_on_first_step",
                lambda: SwappedOptimizer("dampened-first-step", DampeningOnFirstStepSGD), "sgd_momentum",
                control=lambda: SwappedOptimizer("sgd-control", SGD)),
    TrainingBug("adam_without_bias_correction",
                lambda: SwappedOptimizer("adam-no-bias-correction", AdamWithoutBiasCorrection), "adam",
                control=lambda: SwappedOptimizer("adam-control", Adam)),
    TrainingBug("adamw_weight_decay_coupled", lambda: SwappedOptimizer("adamw-coupled", AdamWCoupledDecay), "adamw",
                control=lambda: SwappedOptimizer("adamw-control", AdamW)),
]


def run_lockstep(impl, dtype: str, config: str, steps: int = 20, gd_mode: str = "mini_batch"):
    spec, x, y, state = TRAIN_CASE.build(dtype)
    return lockstep(impl, spec, x, y, OPTIMIZER_CONFIGS[config], gd_mode=gd_mode, steps=steps, seed=3), spec, x, y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bug", TRAINING_BUGS, ids=lambda b: b.name)
def test_training_bug_is_caught_at_the_first_step(bug: TrainingBug, dtype: str):
    records, spec, x, y = run_lockstep(bug.impl(), dtype, bug.config)
    steps = [r for r in records if r.check == "training_step"]
    final = [r for r in records if r.check == "final_params"]
    assert any(r.status == "fail" for r in records), f"{bug.name}: not caught"
    assert steps[0].status == "fail" and {r.first_break_step for r in final} == {0}
    assert any(r.status == "fail" for r in final)
    # localised to the update: the loss before the first update agrees (same forward, same
    # batch), and the gradient comparison of the same model and data passes
    first = steps[0]
    assert abs(first.actual_value - first.expected_value) <= 1e-6 * abs(first.expected_value), \
        f"{bug.name}: the step-0 loss already differs: {first.actual_value} vs {first.expected_value}"
    gradients = compare_model(bug.impl(), spec, x, y, fd="never")
    assert all(r.status == "pass" for r in gradients), f"{bug.name}: compare_model failed too"


@pytest.mark.parametrize("bug", [b for b in TRAINING_BUGS if b.wrong_after_one_step], ids=lambda b: b.name)
def test_training_bug_is_localised_to_layers_after_one_step(bug: TrainingBug):
    records, spec, _, _ = run_lockstep(bug.impl(), "float64", bug.config, steps=1)
    wrong = {r.param for r in records if r.check == "final_params" and r.status == "fail"}
    assert wrong == bug.wrong_after_one_step


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bug", TRAINING_BUGS, ids=lambda b: b.name)
def test_training_bug_case_passes_with_a_correct_implementation(bug: TrainingBug, dtype: str):
    """No false alarms: the same optimizer setting and data with scratchnet as it is, and with
    the same scaffolding (swapped-in optimizer class / planted network) minus the bug."""
    for impl in (ScratchnetImplementation(), bug.control()):
        records, _, _, _ = run_lockstep(impl, dtype, bug.config)
        bad = [(r.check, r.step, r.param, r.tol_ratio) for r in records if r.status != "pass"]
        assert not bad, f"{impl.name} with {bug.config}: false alarm {bad[:4]}"


@pytest.mark.parametrize("config", ["sgd_momentum", "sgd_weight_decay"])
def test_equivalent_momentum_convention_is_not_flagged(config):
    """``v ← μv + ηg, θ ← θ − v`` equals torch's ``b ← μb + g, θ ← θ − ηb`` for a constant
    learning rate (``v = ηb``): different rounding, same method — lockstep must pass it."""
    records, _, _, _ = run_lockstep(SwappedOptimizer("lr-inside-momentum", LrInsideMomentumSGD), "float64", config)
    assert all(r.status == "pass" for r in records), [(r.step, r.tol_ratio) for r in records if r.status != "pass"]
    # ... while it really was trained differently from bit-identical torch arithmetic
    assert any(r.param_distance > 0 for r in records if r.check == "training_step")


# =============================================================================================
# Network.fit: planted changes to how fit batches, seeds and averages (core.fit_lockstep)
# =============================================================================================

def _planted_schedule(monkeypatch, change: Callable[..., Any]) -> None:
    """Replace the batch order ``fit`` uses (``scratchnet.training.batch_schedule``, looked up at
    call time) by ``change(original, n, batch_size, epochs, shuffle, seed)``."""
    import scratchnet.training as training

    original = training.batch_schedule
    monkeypatch.setattr(training, "batch_schedule",
                        lambda n, bs, *, epochs=1, shuffle=True, seed=0: change(original, n, bs, epochs, shuffle, seed))


def _partial_batch_scaled(monkeypatch, configured: int) -> None:
    """fit's last, partial batch weighted by its size over the configured batch size (its
    gradient scaled by ``len/configured``) instead of averaged over its own size."""
    def train_step(self, x, target, optimizer):
        output = self._forward(x)
        value = self._backward(target)
        if len(x) < configured:
            for p in self.parameters():
                p.grad *= len(x) / configured
        optimizer.step()
        return value, output

    monkeypatch.setattr(Network, "train_step", train_step)


def _seed_ignored(monkeypatch) -> None:
    _planted_schedule(monkeypatch, lambda orig, n, bs, epochs, shuffle, seed: orig(n, bs, epochs=epochs,
                                                                                   shuffle=shuffle, seed=0))


def _epoch_drops_last_sample(monkeypatch) -> None:
    """The off-by-one at the epoch boundary: each epoch's slices stop at ``n − 1`` (the last
    sample of every epoch is never seen; the next epoch starts one step early)."""
    def change(orig, n, bs, epochs, shuffle, seed):
        size = n if bs is None else min(bs, n)
        return [[order[i:i + size] for i in range(0, n - 1, size)]
                for order in (np.concatenate(epoch) for epoch in orig(n, bs, epochs=epochs, shuffle=shuffle,
                                                                        seed=seed))]
    _planted_schedule(monkeypatch, change)


FIT_BUGS = {
    # name: (plant, GD mode, the step where the curves must part, its (epoch, batch, batches) words)
    # the partial batch's own loss is right; its update is not: the epoch-end parameters part at step 2
    "partial_batch_scaled": (lambda mp: _partial_batch_scaled(mp, 5), "mini_batch", 2, "epoch 0, batch 3 of 3"),
    "shuffle_ignores_seed": (_seed_ignored, "mini_batch", 0, "epoch 0, batch 1 of 3"),
    "epoch_drops_last_sample": (_epoch_drops_last_sample, "stochastic", 12, "epoch 0, batch 13 of 13"),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", FIT_BUGS)
def test_fit_bug_is_caught_at_the_step_where_the_curves_part(name, dtype, monkeypatch):
    """Each planted change to ``fit`` fails the fit lockstep, and the first failing record names
    the step (epoch, batch) where scratchnet's curve leaves torch's; the records before it pass."""
    from scratchnet_reference.conformance.runner import check_fit

    plant, gd_mode, step, words = FIT_BUGS[name]
    clean = check_fit(ScratchnetImplementation(), "sgd_momentum", gd_mode, dtype)
    assert all(r.status == "pass" for r in clean), "no false alarm before planting"
    plant(monkeypatch)
    records = check_fit(ScratchnetImplementation(), "sgd_momentum", gd_mode, dtype)
    failed = [r for r in records if r.status == "fail"]
    assert failed, f"{name} passed the fit lockstep"
    assert {r.first_break_step for r in records} == {step}
    first = min(failed, key=lambda r: r.step)
    assert first.step == step and f"curves part at step {step} ({words})" in first.note, first.note
    assert all(r.status == "pass" for r in records if r.check == "fit_step" and r.step < step)
