"""The identical model in PyTorch: ``nn.Linear`` layers and torch's own activation modules,
weights copied bit for bit, on a chosen device and dtype — and the way back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scratchnet import ModelSpec, Network

from .mapping import fused_loss, modular_loss, to_tensor, torch_activation, torch_param_name
from .torch_import import torch_dtype, torch_module

__all__ = ["build_torch_model", "copy_state", "load_into_network", "torch_loss", "torch_state_to_numpy"]


def build_torch_model(spec: ModelSpec, state: Mapping[str, np.ndarray], device: str = "cpu") -> Any:
    """A ``torch.nn.Module`` for ``spec`` with ``state``'s weights, in ``spec.dtype`` on ``device``.

    ``model(x)`` returns ``(z, a)``: the output layer's pre-activation and activation, so
    both loss flavours (modular on ``a``, fused on ``z``) can be taken from one forward pass.
    """
    torch = torch_module()
    nn = torch.nn

    class _MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(spec.sizes[:-1], spec.sizes[1:]))
            self.activations = nn.ModuleList(torch_activation(a) for a in spec.activations)

        def forward(self, x):
            self.trace = []  # (layer input, z, a) per layer, for the tolerance's term scales
            for layer, act in zip(self.layers, self.activations):
                z = layer(x)
                a = act(z)
                self.trace.append((x, z, a))
                x = a
            return z, x

    model = _MLP().to(device=device, dtype=torch_dtype(spec.dtype))
    copy_state(model, state)
    return model


def copy_state(model: Any, state: Mapping[str, np.ndarray]) -> None:
    """Copy ``state`` into the torch model's parameters, exactly (cast to the model's dtype)."""
    torch = torch_module()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            target = params[torch_param_name(name)]
            if tuple(target.shape) != tuple(np.shape(value)):
                raise ValueError(f"state[{name!r}] has shape {np.shape(value)}, torch expects {tuple(target.shape)}")
            target.copy_(to_tensor(np.asarray(value), target.device.type, target.dtype))


def torch_state_to_numpy(model: Any) -> dict[str, np.ndarray]:
    """``{scratchnet name: ndarray}`` from a torch model (bit-exact, on the host)."""
    from .mapping import scratch_param_name

    return {scratch_param_name(n): p.detach().cpu().numpy().copy() for n, p in model.named_parameters()}


def load_into_network(model: Any, spec: ModelSpec) -> Network:
    """The reverse direction: a scratchnet network holding the torch model's weights."""
    return Network.from_spec(spec, torch_state_to_numpy(model))


def torch_loss(spec: ModelSpec, flavour: str, z: Any, a: Any, target: Any) -> Any:
    """The loss in the given flavour: ``modular`` on the output activation ``a``,
    ``fused`` on the logits ``z`` (only for pairs torch fuses)."""
    params = {k: v for k, v in spec.loss.items() if k != "name"}
    if flavour == "fused":
        fn = fused_loss(spec.output["name"], spec.loss)
        if fn is None:
            raise ValueError(f"torch has no fused form of {spec.output['name']} + {spec.loss['name']}")
        return fn(z, target, params, spec.reduction)
    return modular_loss(spec.loss)(a, target, params, spec.reduction)
