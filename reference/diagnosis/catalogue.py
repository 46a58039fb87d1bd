"""The catalogue of known mistakes: one :class:`Mistake` per mistake a learner makes, and the one
place that knows what it computes.

An entry says where the mistake can enter (its **sites**, below), how to plant it on torch's own
computation there (a function of a :class:`Site`: the tensors torch has at that point), its words
and the right formula. The same plant serves both levels of the diagnosis:

* **network level** — :func:`~scratchnet_reference.diagnosis.reference_net.reference_pass` builds
  the torch network *with this mistake* at one layer, and the backward walk
  (:mod:`~scratchnet_reference.diagnosis.network`) asks whether the learner's gradients equal
  that network's (to ``LOOSE`` × the tolerance, after a factor);
* **op level** — :mod:`~scratchnet_reference.diagnosis.ops` computes the same plant on the
  inputs of a learner's single op as the *model of the error* and fits ``yours ≈ k × model``.

Sites (where in the computation a mistake enters):

============================  =====================================================  ==========
site                          what the plant returns (torch, float64)                levels
============================  =====================================================  ==========
``activation_forward``        ``a`` from ``z``                                       op (+ form)
``activation_backward``       ``∂L/∂z`` from ``z``, ``a`` and the upstream ``g``     both
``output_backward``           the output layer's ``∂L/∂z`` from ``∂L/∂a`` (unfused)  network
``fused_gradient``            ``∂L/∂z`` of a fused pair from torch's ``δ = p − y``   both
``fused_value``               a fused pair's loss value                              op
``loss_value``                a loss value from ``p`` and ``y``                      op
``loss_gradient``             ``∂L/∂p``                                              op
``dense_forward``             ``x Wᵀ + b``                                           op
``dense_dx``                  a dense layer's input gradient from ``g`` and ``W``    op
``dense_dW`` / ``dense_db``   its weight / bias gradient from its δ (``g``) and      both
                              input ``x`` (``expected``: torch's gradient)
``batchnorm_forward`` …       a layer op of :data:`LAYER_SITES` (the course's        op
                              ``(out, cache)`` functions): ``{output: array}`` of
                              the outputs the mistake changes, from the op's
                              inputs ``layer`` and upstream ``dout`` (NumPy)
============================  =====================================================  ==========

At network level ``dense_dW`` / ``dense_db`` are tried when only that one parameter of a layer
disagrees (the other, hence δ, is right); the walk falls back to "only the weight/bias gradient is
wrong" when no entry explains it.

An entry with a ``form`` (a torch activation spec, e.g. GELU's tanh approximation) is a wrong
*form* of the activation: planted, the form replaces the activation in the forward pass too.

Adding a mistake
----------------
Append one :class:`Mistake` to :data:`CATALOGUE` — its key, its plants by site, the activations
(or losses) it applies to, its words and the right formula — and one row to
``tests/diagnosis/test_catalogue.py`` (the learner's wrong function that makes it). Both levels of
the diagnosis pick it up from here; nothing else changes. A site no entry has yet (a dense
layer's bias gradient, an optimizer step, an input the learner modified in place) is a new name
in the table above, a field of :class:`Site` the plant reads, and the one place in
``reference_net.py``, ``network.py`` or ``ops.py`` that offers that site.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.layer_reference import (
    LAYER_OPS,
    as_numpy,
    batch_norm,
    bn_backward_eps_outside,
    bn_dx_without_statistics,
    conv_with,
    pool_windows,
    reference_backward,
)
from ..core.mapping import torch_activation
from ..core.reference_ops import reference_op
from ..core.torch_import import torch_module

__all__ = ["Site", "Mistake", "CATALOGUE", "BY_KEY", "mistakes_at", "vjp", "SITES", "LAYER_SITES", "kinked",
           "derivative_at_zero", "EPSILONS"]

#: the layer ops of :mod:`scratchnet_reference.byo.layer_ops` (batch norm, dropout, conv, max pooling)
LAYER_SITES = tuple(LAYER_OPS)
SITES = ("activation_forward", "activation_backward", "output_backward", "fused_gradient", "fused_value",
         "loss_value", "loss_gradient", "dense_forward", "dense_dx", "dense_dW", "dense_db", *LAYER_SITES)


@dataclass
class Site:
    """What torch has where a mistake enters, as float64 tensors (``y``: dense target rows).

    ``act``: the activation's spec (the layer's; a fused pair's output activation); ``z``, ``a``:
    its input and output; ``g``: the upstream ``∂L/∂a``; ``delta``: torch's fused ``∂L/∂z``;
    ``p``: a loss's input; ``n``: what the reduction divides by (1 for ``sum``); ``loss``: the
    loss spec, ``reduction`` its reduction; for the dense layer ``x``, ``W`` (``(out, in)``), ``b``,
    ``g`` and torch's ``expected`` result; for a layer op (:data:`LAYER_SITES`) its inputs ``layer``
    (``x, gamma, beta, bn_param`` …, NumPy, dropout's with the mask ``kept``) and the upstream ``dout``."""

    act: Mapping[str, Any] = field(default_factory=dict)
    z: Any = None
    a: Any = None
    g: Any = None
    delta: Any = None
    p: Any = None
    y: Any = None
    n: float = 1.0
    loss: Mapping[str, Any] = field(default_factory=dict)
    reduction: str = "mean"
    x: Any = None
    W: Any = None
    b: Any = None
    expected: Any = None
    #: a loss convention's ε (``log(p + ε)``, ``clip(p, ε, 1 − ε)``), tried over :data:`EPSILONS`
    eps: float = 0.0
    layer: Mapping[str, Any] = field(default_factory=dict)
    dout: Any = None


def vjp(act: Mapping[str, Any], z: Any, g: Any) -> Any:
    """``f'(z)ᵀ g`` by torch's autograd."""
    torch = torch_module()
    zz = z.detach().clone().requires_grad_(True)
    return torch.autograd.grad(torch_activation(act)(zz), zz, g)[0]


def _np(t: Any) -> np.ndarray:
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)


@dataclass(frozen=True)
class Mistake:
    """One known mistake.

    ``key``: its stable name (the ``kind`` of its root causes); ``plants``: ``{site: plant}``,
    each ``plant(site) -> what a network or op with this mistake computes there``; ``acts``: the
    activations it can enter at — ``"elementwise"`` (every one but the identity, softmax and
    log_softmax), ``"kinked"`` (those whose one-sided derivatives differ at 0), a set of names,
    or ``None`` (every one); ``losses``: the losses (or fused ``output_loss`` pairs)
    for the loss sites (``None``: any); ``layers``: at network level ``any``, ``hidden`` or
    ``output``; ``form``: the torch activation spec of a wrong form (replaces the forward too);
    ``words``: what is wrong (``{act}`` the activation); ``right``: the right formula
    (``{act}``, ``{at_zero}`` torch's derivative at 0); ``model``: how op-level evidence calls
    the wrong result (``"s(1 − s)·g"``); ``network``: whether the network walk tries it."""

    key: str
    words: str
    right: str
    model: str
    plants: Mapping[str, Callable[[Site], Any]]
    acts: frozenset[str] | str | None = "elementwise"
    losses: frozenset[Any] | None = None
    layers: str = "any"
    form: Mapping[str, Any] | None = None
    network: bool = True

    def applies(self, site: str, act: Mapping[str, Any] | None = None, loss: Any = None) -> bool:
        """Whether this mistake can enter at ``site`` for the activation spec ``act`` / the loss
        (or ``(output, loss)`` pair) ``loss``."""
        if site not in self.plants:
            return False
        if act is not None and site in ("activation_forward", "activation_backward", "output_backward",
                                        "fused_gradient"):
            name = act["name"]
            if self.form is not None:
                return name == self.form["name"] and act.get("approximate", "none") != self.form.get("approximate")
            if self.acts == "elementwise" and name in ("identity", "softmax", "log_softmax"):
                return False
            if self.acts == "kinked" and not kinked(act):
                return False
            if isinstance(self.acts, frozenset) and name not in self.acts:
                return False
        return self.losses is None or loss is None or loss in self.losses

    def plant(self, site: str, where: Site) -> Any:
        return self.plants[site](where)

    def what(self, act: str = "", eps: float = 0.0) -> str:
        """The words, for activation ``act`` (a loss convention's ``eps``)."""
        return self.words.format(act=act, eps=eps)

    def right_for(self, act: str = "", at_zero: float = 0.0) -> str:
        """The right formula, for activation ``act`` (``at_zero``: torch's derivative at 0)."""
        return self.right.format(act=act, at_zero=at_zero + 0.0)  # + 0.0: torch's −0 reads as 0


def derivative_at_zero(act: Mapping[str, Any]) -> tuple[float, float, float]:
    """torch's ``(f'(0⁻), f'(0), f'(0⁺))`` of an elementwise activation."""
    torch = torch_module()
    z = torch.tensor([[-1e-9, 0.0, 1e-9]], dtype=torch.float64)
    return tuple(float(v) for v in vjp(act, z, torch.ones_like(z))[0])


def kinked(act: Mapping[str, Any]) -> bool:
    """Whether the activation's left and right derivatives differ at 0 (ReLU, leaky ReLU, ELU α ≠ 1)."""
    if act["name"] in ("softmax", "log_softmax"):
        return False
    left, _, right = derivative_at_zero(act)
    return abs(left - right) > 1e-6


def _kink(s: Site) -> Any:
    """The right-hand slope at z = 0: the derivative evaluated just right of the kink."""
    return vjp(s.act, s.z.masked_fill(s.z == 0, 1e-300), s.g)


def _form(spec: Mapping[str, Any]) -> Mapping[str, Callable[[Site], Any]]:
    return {"activation_forward": lambda s: torch_activation(spec)(s.z),
            "activation_backward": lambda s: vjp(spec, s.z, s.g), "output_backward": lambda s: vjp(spec, s.z, s.g)}


#: the ε a learner's loss puts inside its log or clips with, tried in turn (network level)
EPSILONS = (1e-15, 1e-12, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5)


def _log_loss(s: Site, log_p: Any, log_1mp: Any) -> Any:
    """Cross-entropy or binary cross-entropy from the logs given, summed and divided by ``s.n``."""
    if s.loss.get("name") == "binary_cross_entropy":
        return -(s.y * log_p + (1 - s.y) * log_1mp).sum() / s.n
    return -(s.y * log_p).sum() / s.n


def _eps_log(s: Site) -> Any:
    if not s.eps:  # no ε given (the op level's sites): no model
        return None
    return _log_loss(s, (s.p + s.eps).log(), (1 - s.p + s.eps).log())


def _ref(name: str, **params: Any) -> Callable[..., Any]:
    return reference_op(name, **params)


#: every known mistake, in the order the diagnosis tries them
CATALOGUE: tuple[Mistake, ...] = (
    Mistake("gelu_tanh",
            "the tanh approximation 0.5·z·(1 + tanh(√(2/π)(z + 0.044715 z³))) is used instead of the exact "
            "GELU z·Φ(z) (torch.nn.GELU(approximate='tanh') reproduces yours)",
            "f(z) = z·Φ(z) with Φ(z) = ½(1 + erf(z/√2)); or declare PARAMS = {{'gelu': {{'approximate': 'tanh'}}}}",
            "the tanh-approximate GELU", _form({"name": "gelu", "approximate": "tanh"}),
            form={"name": "gelu", "approximate": "tanh"}),
    Mistake("again_on_fused",
            "{act}'s derivative applied again on top of the fused δ = p − y",
            "for {act} + the loss the two derivatives cancel: p − y (÷ the reduction's n) is already ∂L/∂z",
            "f'(z)·(p − y)/n", {"fused_gradient": lambda s: vjp(s.act, s.z, s.delta)},
            acts=None, layers="output"),
    Mistake("output_left_out",
            "∂L/∂a used as ∂L/∂z: {act}'s derivative left out at the output",
            "δ_K = f'(z_K)ᵀ ∂L/∂a_K; only the fused pairs (softmax + cross_entropy, sigmoid + binary_cross_entropy, "
            "log_softmax + nll) cancel it",
            "g", {"output_backward": lambda s: s.g}, layers="output", acts=None),
    Mistake("softmax_s1s",
            "softmax's derivative taken elementwise: δ = g ⊙ s(1 − s)",
            "the softmax Jacobian is diag(s) − s sᵀ: δ = s ⊙ (g − ⟨g, s⟩) (with cross-entropy: p − y)",
            "s(1 − s)·g", {"activation_backward": lambda s: s.g * s.a * (1 - s.a),
                           "output_backward": lambda s: s.g * s.a * (1 - s.a),
                           "fused_gradient": lambda s: s.delta * s.a * (1 - s.a)},
            acts=frozenset({"softmax"})),
    Mistake("at_activation",
            "{act}'s derivative evaluated at the activation a instead of the pre-activation z",
            "use f'(z): e.g. σ'(z) = σ(z)(1 − σ(z)) = a(1 − a), not σ'(a)",
            "f'(a)·g", {"activation_backward": lambda s: vjp(s.act, s.a, s.g),
                        "output_backward": lambda s: vjp(s.act, s.a, s.g)}),
    Mistake("left_out",
            "{act}'s derivative f'(z) left out: δ_k = δ_{{k+1}} W_{{k+1}}",
            "δ_k = (δ_{{k+1}} W_{{k+1}}) ⊙ f'(z_k)",
            "g", {"activation_backward": lambda s: s.g}, layers="hidden"),
    Mistake("kink",
            "{act}'s derivative wrong only at its kink z = 0 (the right-hand slope used there)",
            "torch's subgradient at 0: {act}'(0) = {at_zero:g} (ReLU: z > 0, not z >= 0)",
            "the right-hand slope at 0", {"activation_backward": _kink, "output_backward": _kink},
            acts="kinked"),
    Mistake("log_softmax_diagonal",
            "log_softmax's derivative taken elementwise as 1 − s — the diagonal only",
            "dL/dz = g − s·Σ_j g_j (s = exp(a)); with nll: (s − y)/n",
            "(1 − s)·g", {"activation_backward": lambda s: (1 - s.a.exp()) * s.g,
                          "output_backward": lambda s: (1 - s.a.exp()) * s.g,
                          "fused_gradient": lambda s: (1 - s.a.exp()) * s.delta},
            acts=frozenset({"log_softmax"})),
    Mistake("derivative_twice",
            "{act}'s derivative applied twice",
            "dL/dz = f'(z)·g, once",
            "f'(z)²·g", {"activation_backward": lambda s: vjp(s.act, s.z, vjp(s.act, s.z, s.g))}),
    Mistake("upstream_ignored",
            "the upstream gradient g is ignored: returns f'(z), not the vector–Jacobian product",
            "dL/dz = f'(z)·g (elementwise; for softmax s ⊙ (g − ⟨g, s⟩))",
            "f'(z)·1", {"activation_backward": lambda s: vjp(s.act, s.z, s.g * 0 + 1)}),
    Mistake("softmax_rows_summed",
            "softmax's Jacobian summed over its rows: every element of your dL/dz is 0 (Σ_i ∂s_i/∂z_j = 0)",
            "dL/dz = Jᵀ g = s ⊙ (g − ⟨g, s⟩): weight each row of the Jacobian by the upstream gradient g",
            "0", {"activation_backward": lambda s: s.g * 0, "output_backward": lambda s: s.g * 0},
            acts=frozenset({"softmax"})),
    # -- op level only: the forward of an activation, losses, the dense layer -------------------
    Mistake("softmax_axis0",
            "normalised over the batch (columns, axis 0) instead of over each row's classes",
            "s_ij = exp(z_ij − max_j z_ij) / Σ_j exp(z_ij − max_j z_ij), over axis 1 (keepdims)",
            "the same op over axis 0", {"activation_forward": lambda s: torch_activation(s.act)(s.z.T).T},
            acts=frozenset({"softmax", "log_softmax"}), network=False),
    Mistake("bce_as_categorical",
            "binary cross-entropy used where categorical cross-entropy is meant: "
            "−Σ [y log p + (1 − y) log(1 − p)] also penalises every wrong class",
            "categorical: L = −Σ_ij y_ij log p_ij / N", "binary cross-entropy's",
            {"loss_value": lambda s: _ref("binary_cross_entropy")(_np(s.p), _np(s.y), reduction=s.reduction),
             "loss_gradient": lambda s: _ref("binary_cross_entropy_grad")(_np(s.p), _np(s.y), reduction=s.reduction),
             "fused_value": lambda s: _ref("binary_cross_entropy")(_ref("softmax")(_np(s.z)), _np(s.y),
                                                                   reduction=s.reduction),
             "fused_gradient": lambda s: _ref("sigmoid_binary_cross_entropy_grad")(_np(s.z), _np(s.y),
                                                                                   reduction=s.reduction)},
            losses=frozenset({"cross_entropy", ("softmax", "cross_entropy")}), acts=frozenset({"softmax"}),
            network=False),
    Mistake("categorical_as_bce",
            "categorical cross-entropy used where binary cross-entropy is meant: the (1 − y)·log(1 − p) term is "
            "missing",
            "L = −Σ [y log p + (1 − y) log(1 − p)] / (N·C); ∂L/∂p = (p − y)/(p(1 − p)) / (N·C)",
            "categorical cross-entropy's",
            {"loss_value": lambda s: _ref("cross_entropy")(_np(s.p), _np(s.y), reduction=s.reduction),
             "loss_gradient": lambda s: _ref("cross_entropy_grad")(_np(s.p), _np(s.y), reduction=s.reduction),
             "fused_gradient": lambda s: _ref("softmax_cross_entropy_grad")(_np(s.z), _np(s.y),
                                                                            reduction=s.reduction)},
            losses=frozenset({"binary_cross_entropy", ("sigmoid", "binary_cross_entropy")}),
            acts=frozenset({"sigmoid"}), network=False),
    Mistake("fused_delta_as_loss_grad",
            "the fused ∂L/∂z = p − y returned as the loss gradient ∂L/∂p",
            "∂L/∂p = −y/p / N for cross-entropy on probabilities; p − y is the gradient with respect to the logits, "
            "after softmax's backward (use softmax_cross_entropy_grad)",
            "(p − y)/N", {"loss_gradient": lambda s: (_np(s.p) - _np(s.y)) / s.n},
            losses=frozenset({"cross_entropy"}), network=False),
    Mistake("ce_grad_through_s1s",
            "the cross-entropy gradient −y/p is right, but it is pushed through softmax's diagonal s(1 − s) "
            "instead of softmax's backward",
            "∂L/∂z = s ⊙ (g − ⟨g, s⟩) with g = −y/s/N, which simplifies to (s − y)/N",
            "s(1 − s)·(−y/s)/N", {"fused_gradient": lambda s: -s.y * (1 - s.a) / s.n},
            losses=frozenset({("softmax", "cross_entropy")}), acts=frozenset({"softmax"}), network=False),
    # -- loss conventions: the loss value of probabilities, not of the logits (network level: the
    #    loss check fails while the output agrees; {eps}: the ε found). Clipping p to [ε, 1 − ε] differs
    #    only at saturated outputs, where the learner's p-based gradient breaks down too: not named yet.
    Mistake("log_epsilon",
            "your loss adds ε = {eps:g} inside the log: the same as torch's where p ≫ ε, different where p is "
            "near ε or below (a saturated output, large logits)",
            "torch computes cross-entropy from the logits (log-softmax, log-sigmoid), no ε needed: "
            "log p = z − max z − log Σ exp(z − max z)",
            "the loss with log(p + ε)", {"loss_value": _eps_log},
            acts=None, losses=frozenset({"cross_entropy", "binary_cross_entropy"})),
    # -- the dense layer's gradients (network level: tried on the one parameter that disagrees,
    #    also when its shape is wrong; op level: dense_backward's dW / db) ---------------------------
    Mistake("bias_summed_all",
            "the bias gradient summed over every axis (np.sum without axis=): one number for the whole layer, "
            "not one per unit",
            "∂L/∂b = δ summed over the batch only, one number per unit: np.sum(delta, axis=0) with examples as rows "
            "(np.sum(dZ, axis=1, keepdims=True) with examples as columns)",
            "Σ of all of δ", {"dense_db": lambda s: s.g.sum()}, acts=None),
    Mistake("bias_wrong_axis",
            "the bias gradient summed over the units instead of over the batch: one number per example",
            "∂L/∂b = δ summed over the batch (the examples' axis), one number per unit",
            "δ summed over the units", {"dense_db": lambda s: s.g.sum(dim=1)}, acts=None),
    Mistake("bias_not_summed",
            "the bias gradient not summed over the batch: δ itself, one row per example",
            "∂L/∂b = δ summed over the batch: np.sum(delta, axis=0)",
            "δ", {"dense_db": lambda s: s.g}, acts=None),
    Mistake("weight_transposed",
            "the weight gradient transposed: (in, out), torch's is (out, in)",
            "∂L/∂W = δᵀ·a_prev, shape (out, in) like torch.nn.Linear's weight — or transpose it in the adapter if "
            "your network stores W as (in, out)",
            "torch's ∂L/∂W transposed", {"dense_dW": lambda s: s.expected.T}, acts=None),
    Mistake("loss_grad_as_logit_grad",
            "∂L/∂p = −y/p returned as the gradient with respect to the logits: softmax's backward is left out",
            "∂L/∂z = (s − y)/N", "−y/s / N", {"fused_gradient": lambda s: -s.y / s.a / s.n},
            losses=frozenset({("softmax", "cross_entropy")}), acts=frozenset({"softmax"}), network=False),
    # -- layer ops (op level, the course's (out, cache) functions; byo.layer_ops checks them) -----
    Mistake("bn_backward_ignores_statistics",
            "dx = dout·γ/σ: the backward ignores that the batch mean and variance depend on x",
            "dx = (γ/σ)/N · (N·dout − Σ_i dout_i − x̂·Σ_i dout_i·x̂_i), σ = √(σ²_B + ε)", "dout·γ/σ",
            {"batchnorm_backward": lambda s: {"dx": bn_dx_without_statistics(s.layer, s.dout)}},
            acts=None, network=False),
    Mistake("bn_unbiased_normalisation",
            "the batch is normalised with the unbiased variance (÷ (N − 1))",
            "x̂ = (x − μ_B)/√(σ²_B + ε) with the biased σ²_B = Σ(x − μ_B)²/N; only the running variance is unbiased",
            "x̂ with σ²_B·N/(N − 1)",
            {"batchnorm_forward": lambda s: {"out": as_numpy(batch_norm(s.layer, unbiased_norm=True)["out"])}},
            acts=None, network=False),
    Mistake("bn_biased_running_var",
            "the running variance is updated with the biased batch variance (÷ N)",
            "running_var ← (1 − m)·running_var + m·σ²_B·N/(N − 1): torch keeps the unbiased variance",
            "(1 − m)·running_var + m·σ²_B",
            {"batchnorm_forward": lambda s: {"running_var": (1 - s.layer["bn_param"]["momentum"])
                                             * s.layer["bn_param"]["running_var"]
                                             + s.layer["bn_param"]["momentum"] * s.layer["x"].var(axis=0)}},
            acts=None, network=False),
    Mistake("bn_eps_outside_sqrt",
            "ε added outside the square root: x̂ = (x − μ)/(σ_B + ε)",
            "x̂ = (x − μ)/√(σ²_B + ε), in the forward and in the backward's σ", "σ_B + ε for √(σ²_B + ε)",
            {"batchnorm_forward": lambda s: {"out": as_numpy(batch_norm(s.layer, eps_outside=True)["out"])},
             "batchnorm_backward": lambda s: {"dx": bn_backward_eps_outside("dx")(s.layer, s.dout),
                                              "dgamma": bn_backward_eps_outside("dgamma")(s.layer, s.dout)}},
            acts=None, network=False),
    Mistake("bn_other_momentum",
            "the running statistics use the other momentum convention: running ← m·running + (1 − m)·batch",
            "torch's momentum weighs the new batch: running ← (1 − m)·running + m·batch (m = 0.1)",
            "m·running + (1 − m)·batch",
            {"batchnorm_forward": lambda s: {
                k: as_numpy(v) for k, v in batch_norm(s.layer, momentum=1 - s.layer["bn_param"]["momentum"]).items()
                if k in ("running_mean", "running_var")}},
            acts=None, network=False),
    Mistake("bn_batch_stats_at_test",
            "test mode normalises with the batch's statistics instead of the running ones",
            "in test mode x̂ = (x − running_mean)/√(running_var + ε)", "the training-mode output",
            {"batchnorm_forward": lambda s: {"out": as_numpy(batch_norm(
                {**s.layer, "bn_param": {**s.layer["bn_param"], "mode": "train"}})["out"])}},
            acts=None, network=False),
    Mistake("dropout_not_scaled",
            "the kept activations are not scaled by 1/(1 − p)",
            "inverted dropout: out = x ⊙ m/(1 − p) in training, out = x at test", "x ⊙ m",
            {"dropout_forward": lambda s: {"out": s.layer["x"] * s.layer["kept"]}}, acts=None, network=False),
    Mistake("dropout_p_as_keep",
            "p used as the keep probability: the kept activations are scaled by 1/p (and a fraction p kept)",
            "p is the probability of dropping (torch's): keep with probability 1 − p, scale by 1/(1 − p)",
            "x ⊙ m/p",
            {"dropout_forward": lambda s: {"out": s.layer["x"] * s.layer["kept"] / s.layer["dropout_param"]["p"]}},
            acts=None, network=False),
    Mistake("dropout_scaled_at_test",
            "scaled at evaluation: out = x·(1 − p) in test mode",
            "with inverted dropout the training pass already scaled by 1/(1 − p): at test out = x", "x·(1 − p)",
            {"dropout_forward": lambda s: {"out": s.layer["x"] * (1 - s.layer["dropout_param"]["p"])}},
            acts=None, network=False),
    Mistake("dropout_backward_not_scaled",
            "the backward is not scaled by 1/(1 − p): dx = dout ⊙ m",
            "dx = dout ⊙ m/(1 − p), the same mask and scale as the forward", "dout ⊙ m",
            {"dropout_backward": lambda s: {"dx": s.dout * s.layer["kept"]}}, acts=None, network=False),
    Mistake("conv_flipped_kernel",
            "true convolution: the kernel is flipped, where torch (and every CNN layer) cross-correlates",
            "out[n, f, i, j] = b_f + Σ_c,k,l x_pad[n, c, i·s + k, j·s + l]·w[f, c, k, l] (no flip)",
            "the convolution with w[:, :, ::-1, ::-1]",
            {"conv2d_forward": lambda s: {"out": conv_with(s.layer, flip=True)}}, acts=None, network=False),
    Mistake("conv_stride_plus_one", "the stride is off by one (stride + 1 used)",
            "H' = 1 + (H + 2·pad − HH)/stride, windows start at i·stride", "stride + 1",
            {"conv2d_forward": lambda s: {"out": conv_with(s.layer, stride=s.layer["conv_param"]["stride"] + 1)}},
            acts=None, network=False),
    Mistake("conv_stride_minus_one", "the stride is off by one (stride − 1 used)",
            "H' = 1 + (H + 2·pad − HH)/stride, windows start at i·stride", "stride − 1",
            {"conv2d_forward": lambda s: {"out": conv_with(s.layer, stride=s.layer["conv_param"]["stride"] - 1)}},
            acts=None, network=False),
    Mistake("conv_pad_plus_one", "the padding is off by one (pad + 1 zeros per side)",
            "pad zeros on each side: H' = 1 + (H + 2·pad − HH)/stride", "pad + 1",
            {"conv2d_forward": lambda s: {"out": conv_with(s.layer, pad=s.layer["conv_param"]["pad"] + 1)}},
            acts=None, network=False),
    Mistake("conv_pad_minus_one", "the padding is off by one (pad − 1 zeros per side)",
            "pad zeros on each side: H' = 1 + (H + 2·pad − HH)/stride", "pad − 1",
            {"conv2d_forward": lambda s: {"out": conv_with(s.layer, pad=s.layer["conv_param"]["pad"] - 1)}},
            acts=None, network=False),
    Mistake("conv_dw_transposed",
            "the weight gradient is transposed: dw[f, c, l, k] where dw[f, c, k, l] belongs",
            "dw[f, c, k, l] = Σ_n,i,j dout[n, f, i, j]·x_pad[n, c, i·s + k, j·s + l]", "dw.swapaxes(2, 3)",
            {"conv2d_backward": lambda s: {"dw": reference_backward("conv2d_forward", s.layer, s.dout)["dw"]
                                           .swapaxes(2, 3)}},
            acts=None, network=False),
    Mistake("maxpool_grad_whole_window",
            "the gradient is sent to every element of the pooling window",
            "only the window's maximum gets dout (the first one, where several are equal)", "dout on every element",
            {"maxpool2d_backward": lambda s: {"dx": pool_windows(s.layer, s.dout, ties=False)}},
            acts=None, network=False),
    Mistake("maxpool_grad_every_tie",
            "the gradient is sent to every tied maximum of a window",
            "one maximum per window gets dout: torch (and np.argmax) take the first in row-major order",
            "dout on every tied maximum",
            {"maxpool2d_backward": lambda s: {"dx": pool_windows(s.layer, s.dout, ties=True)}},
            acts=None, network=False),
)

#: key -> entry
BY_KEY: dict[str, Mistake] = {m.key: m for m in CATALOGUE}
assert len(BY_KEY) == len(CATALOGUE), "two catalogue entries share a key"


def mistakes_at(site: str, act: Mapping[str, Any] | None = None, loss: Any = None, *,
                network: bool = False, layer: str = "any") -> list[Mistake]:
    """The entries that can enter at ``site`` (see :meth:`Mistake.applies`); ``network``: only
    those the network walk tries, at a ``layer`` that is ``hidden`` or ``output``."""
    out = []
    for m in CATALOGUE:
        if network and (not m.network or m.layers not in ("any", layer)):
            continue
        if m.applies(site, act, loss):
            out.append(m)
    return out
