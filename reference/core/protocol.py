"""The protocol between the harness and an implementation under test.

The harness never reaches past this surface, so any from-scratch network can be plugged in:

``Implementation``
    ``name`` — a label for records; ``build(spec, state) -> Model`` — the model described by a
    :class:`scratchnet.ModelSpec` with exactly the weights in ``state``
    (``{"layers.{k}.weight": (out, in), "layers.{k}.bias": (out,)}``, float64 or float32).

``Model``
    ``forward(x) -> (N, C) ndarray``;
    ``loss_and_grads(x, y) -> (float, {name: ndarray})``, gradients keyed like the state;
    ``state_dict() -> {name: ndarray}``; ``load_state_dict(state)``;
    ``configure_optimizer(spec)`` with ``spec = {"name": "sgd"|"adam"|"adamw", **torch kwargs}``;
    ``step()`` — one update from the gradients of the last ``loss_and_grads``.

    For a spec with batch norm or dropout (``spec.after_hidden``) also: ``train()`` / ``eval()``
    (the mode); ``dropout_masks() -> {"dropouts.{k}": bool (N, width)}``, the masks of the last
    training-mode forward pass, which torch replays; optionally ``replay_dropout_masks(masks)``
    (every following pass uses them: the finite-difference check); and the running statistics
    ``batch_norms.{k}.running_mean``/``running_var`` in ``state_dict``/``load_state_dict``.
    A model without them is "not implemented" for those cases.

Targets ``y`` are what :func:`scratchnet_reference.core.compare.prepare_batch` returns: an int index
vector for cross-entropy/NLL with class labels, else a float ``(N, C)`` array. The batch order
of training comparisons always comes from :mod:`scratchnet_reference.core.schedule` (the written order
``fit`` promises).

Outside implementations ("bring your own network"): :mod:`scratchnet_reference.core.adapter` documents the
smallest surface (``configure_optimizer``, ``step`` and ``state_dict`` are optional there: without
them the training checks are not implemented), the ``capabilities`` an implementation declares,
and :func:`~scratchnet_reference.core.adapter.validate_implementation`, which ``--impl`` applies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

import scratchnet
from scratchnet import ModelSpec, Network

__all__ = ["Implementation", "Model", "ScratchnetImplementation", "initial_state"]


@runtime_checkable
class Model(Protocol):
    def forward(self, x: np.ndarray) -> np.ndarray: ...
    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Mapping[str, np.ndarray]]: ...
    def state_dict(self) -> Mapping[str, np.ndarray]: ...
    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None: ...
    def configure_optimizer(self, spec: Mapping[str, Any]) -> None: ...
    def step(self) -> None: ...


@runtime_checkable
class Implementation(Protocol):
    name: str

    def build(self, spec: ModelSpec, state: Mapping[str, np.ndarray]) -> Model: ...


def initial_state(spec: ModelSpec) -> dict[str, np.ndarray]:
    """The spec's initial weights (its initialiser and seed), the start of every comparison."""
    return Network(spec).state_dict()


class _ScratchnetModel:
    """Adapts a :class:`scratchnet.Network` to :class:`Model`."""

    def __init__(self, network: Network):
        self.network = network
        self.optimizer: scratchnet.Optimizer | None = None

    def forward(self, x):
        return self.network.forward(x)

    def loss_and_grads(self, x, y):
        return self.network.loss_and_grads(x, y)

    def state_dict(self):
        return self.network.state_dict()

    def load_state_dict(self, state):
        self.network.load_state_dict(state)

    def configure_optimizer(self, spec):
        self.optimizer = scratchnet.registry.make_optimizer(dict(spec), self.network.parameters())

    def train(self):
        self.network.train()

    def eval(self):
        self.network.eval()

    def dropout_masks(self):
        return self.network.dropout_masks()

    def replay_dropout_masks(self, masks):
        self.network.replay_dropout_masks(masks)

    def step(self):
        if self.optimizer is None:
            raise RuntimeError("configure_optimizer() must be called before step()")
        self.optimizer.step()


class ScratchnetImplementation:
    """scratchnet behind the protocol. ``network_factory`` builds the network from a spec —
    the hook tests use to plant deliberately broken derivatives."""

    def __init__(self, name: str = "scratchnet",
                 network_factory: Callable[[ModelSpec], Network] = Network):
        self.name = name
        self.network_factory = network_factory

    def build(self, spec: ModelSpec, state: Mapping[str, np.ndarray]) -> Model:
        network = self.network_factory(spec)
        network.load_state_dict(state)
        return _ScratchnetModel(network)
