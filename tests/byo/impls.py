"""Implementations for the bring-your-own-network tests: scratchnet behind an adapter written the
way an outsider writes one (only the protocol's surface), restricted by declared capabilities,
or with a mistake planted in its gradients, its activations or its update. Loadable with
``--impl tests.byo.impls:<factory>``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import scratchnet
from scratchnet import Network
from scratchnet.activations import ReLU, Softmax

from ..conformance.test_teeth import SoftmaxWithoutMax  # noqa: F401 - one planted bug, shared


class UserModel:
    def __init__(self, network: Network, grads_hook: Callable | None, lr_factor: float):
        self.network, self.grads_hook, self.lr_factor = network, grads_hook, lr_factor
        self.optimizer = None

    def forward(self, x):
        return self.network.forward(x)

    def loss_and_grads(self, x, y):
        loss, grads = self.network.loss_and_grads(x, y)
        if self.grads_hook is not None:
            grads = self.grads_hook(grads, np.asarray(x))
            for p in self.network.parameters():  # step() uses what was reported
                p.grad[...] = grads[p.name]
        return loss, grads

    def state_dict(self):
        return self.network.state_dict()

    def load_state_dict(self, state):
        self.network.load_state_dict(state)

    def configure_optimizer(self, spec):
        spec = {**spec, "lr": spec["lr"] * self.lr_factor}
        self.optimizer = scratchnet.registry.make_optimizer(spec, self.network.parameters())

    def step(self):
        self.optimizer.step()


class UserImplementation:
    def __init__(self, name: str = "user-net", capabilities: Any = None, grads_hook: Callable | None = None,
                 network_factory: Callable = Network, lr_factor: float = 1.0):
        self.name = name
        if capabilities is not None:
            self.capabilities = capabilities
        self.grads_hook, self.network_factory, self.lr_factor = grads_hook, network_factory, lr_factor

    def build(self, spec, state):
        network = self.network_factory(spec)
        network.load_state_dict(state)
        return UserModel(network, self.grads_hook, self.lr_factor)


RESTRICTED = {"hidden": ["relu", "tanh"], "outputs": ["softmax"], "losses": ["cross_entropy"], "dtypes": ["float64"],
              "reductions": ["mean"], "optimizers": ["sgd"], "optimizer_options": [], "hyperparameters": []}


def restricted() -> UserImplementation:
    """Correct, but implements only relu/tanh → softmax + cross_entropy (mean), float64, plain SGD."""
    return UserImplementation("restricted", capabilities=RESTRICTED)


# -- planted mistakes ----------------------------------------------------------------------------

def times_batch(grads, x):
    return {k: g * x.shape[0] for k, g in grads.items()}


def over_batch(grads, x):
    return {k: g / x.shape[0] for k, g in grads.items()}


def sign_flipped(grads, x):
    return {k: -g for k, g in grads.items()}


def transposed(layer: int):
    def hook(grads, x):
        name = f"layers.{layer}.weight"
        return {**grads, name: grads[name].T.copy()}
    return hook


class ReLUPrimeOneAtZero(ReLU):
    """relu'(0) = 1 (``z >= 0``); torch's subgradient is 0."""

    def backward(self, z, a, grad):
        return np.where(z >= 0, grad, 0).astype(grad.dtype, copy=False)


class SoftmaxWithoutInnerProduct(Softmax):
    """softmax's backward as ``s ⊙ g``: the ``− ⟨g, s⟩`` of ``s ⊙ (g − ⟨g, s⟩)`` forgotten. The
    fused softmax + cross-entropy never calls it, so only softmax on its own is wrong."""

    def backward(self, z, a, grad):
        return a * grad


def every(cls: type) -> Callable[[scratchnet.ModelSpec], Network]:
    def factory(spec):
        net = Network(spec)
        for layer in net.layers:
            if layer.activation.name == cls.name:
                layer.activation = cls(**layer.activation.params)
        return net
    return factory


def planted(name: str, **kwargs: Any) -> UserImplementation:
    return UserImplementation(name, **kwargs)


class RefusesCrossEntropy(UserImplementation):
    """Gradients ×N, and ``build`` refuses cross-entropy at run time (although declared)."""

    def build(self, spec, state):
        if spec.loss["name"] == "cross_entropy":
            raise NotImplementedError("cross_entropy is next week")
        return super().build(spec, state)


def wrong_and_picky() -> UserImplementation:
    return RefusesCrossEntropy("wrong-and-picky", grads_hook=times_batch)


class OneHiddenLayerOnly(UserImplementation):
    """A network hard-wired to one hidden layer: ``build`` fails for any other depth the way a
    stranger's ``W1, b1, W2, b2`` class does (a KeyError, not NotImplementedError); it declares
    no architecture."""

    def build(self, spec, state):
        if len(spec.sizes) != 3:
            raise KeyError("W3")
        return super().build(spec, state)


def one_hidden_layer_only() -> UserImplementation:
    return OneHiddenLayerOnly("one-hidden")
