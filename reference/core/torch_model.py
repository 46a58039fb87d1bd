"""The identical model in PyTorch: ``nn.Linear`` layers and torch's own activation modules,
weights copied bit for bit, on a chosen device and dtype — and the way back.

Layers after a hidden dense layer (``spec.after_hidden``) are ``nn.BatchNorm1d`` (torch's own,
its running statistics as buffers) and :class:`ReplayDropout`, which multiplies by a *given*
mask — the implementation's, set with :func:`set_dropout_masks` — so forward values and every
gradient are comparable exactly; torch's ``nn.Dropout`` draws from torch's generator, which no
NumPy network can reproduce. Like the network, the twin is in training mode unless ``mode="eval"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scratchnet import ModelSpec, Network

from .mapping import fused_loss, modular_loss, to_tensor, torch_activation, torch_param_name
from .torch_import import torch_dtype, torch_module

__all__ = ["build_torch_model", "copy_state", "load_into_network", "torch_loss", "torch_state_to_numpy",
           "set_dropout_masks", "MODES"]

MODES = ("train", "eval")


def _replay_dropout_class() -> Any:
    nn = torch_module().nn

    class ReplayDropout(nn.Module):
        """Inverted dropout with a given mask: ``y = x · (m / (1 − p))``, the quotient formed in the
        input's dtype (``1/(1 − p)`` rounded once, as scratchnet forms it); the identity in
        evaluation mode. ``mask`` (bool, the implementation's) must be set before a training pass."""

        def __init__(self, p: float):
            super().__init__()
            self.p = p
            self.mask = None

        def forward(self, x):
            if not self.training or self.p == 0:
                return x
            if self.mask is None or tuple(self.mask.shape) != tuple(x.shape):
                got = None if self.mask is None else tuple(self.mask.shape)
                raise ValueError(f"ReplayDropout needs the implementation's mask of shape {tuple(x.shape)}, got {got}")
            torch = torch_module()
            scale = torch.ones((), dtype=x.dtype, device=x.device) / torch.tensor(1.0 - self.p, dtype=x.dtype,
                                                                                 device=x.device)
            return x * (self.mask.to(x.dtype) * scale)

    return ReplayDropout


def build_torch_model(spec: ModelSpec, state: Mapping[str, np.ndarray], device: str = "cpu", mode: str = "train",
                      masks: Mapping[str, np.ndarray] | None = None) -> Any:
    """A ``torch.nn.Module`` for ``spec`` with ``state``'s weights (and buffers), in ``spec.dtype`` on
    ``device``, in ``mode`` (``"train"`` or ``"eval"``), with dropout ``masks`` if given.

    ``model(x)`` returns ``(z, a)``: the output layer's pre-activation and activation, so
    both loss flavours (modular on ``a``, fused on ``z``) can be taken from one forward pass.
    Modules: ``layers`` (``nn.Linear``), ``activations``, and ``ModuleDict``s ``batch_norms`` and
    ``dropouts`` keyed by the hidden layer they follow — the names scratchnet's state uses.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    torch = torch_module()
    nn = torch.nn
    replay = _replay_dropout_class()
    after = spec.after_hidden or ()

    def extra(e: Mapping[str, Any], width: int) -> Any:
        if e["name"] == "batch_norm":
            return nn.BatchNorm1d(width, eps=e["eps"], momentum=e["momentum"], affine=True, track_running_stats=True)
        return replay(e["p"])

    class _MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(spec.sizes[:-1], spec.sizes[1:]))
            self.activations = nn.ModuleList(torch_activation(a) for a in spec.activations)
            self.batch_norms = nn.ModuleDict({str(k): extra(e, spec.sizes[k + 1]) for k, extras in enumerate(after)
                                              for e in extras if e["name"] == "batch_norm"})
            self.dropouts = nn.ModuleDict({str(k): extra(e, spec.sizes[k + 1]) for k, extras in enumerate(after)
                                           for e in extras if e["name"] == "dropout"})
            self.order = [[(e["name"], str(k)) for e in extras] for k, extras in enumerate(after)]

        def forward(self, x):
            self.trace = []  # (layer input, z, a) per layer, for the tolerance's term scales
            self.after_trace = []  # per layer: (module, its input) of the layers after it, in order
            for k, (layer, act) in enumerate(zip(self.layers, self.activations)):
                z = layer(x)
                a = act(z)
                self.trace.append((x, z, a))
                x = a
                applied = []
                for name, key in (self.order[k] if k < len(self.order) else ()):
                    module = (self.batch_norms if name == "batch_norm" else self.dropouts)[key]
                    applied.append((module, x))
                    x = module(x)
                self.after_trace.append(applied)
            return z, x

    model = _MLP().to(device=device, dtype=torch_dtype(spec.dtype))
    copy_state(model, state)
    model.train(mode == "train")
    if masks is not None:
        set_dropout_masks(model, masks)
    return model


def set_dropout_masks(model: Any, masks: Mapping[str, np.ndarray]) -> None:
    """Give every ``ReplayDropout`` of ``model`` its mask: ``masks["dropouts.{k}"]`` (bool ``(N, width)``,
    the implementation's ``dropout_masks()``); every dropout of the model must have one."""
    torch = torch_module()
    wanted = {f"dropouts.{key}": module for key, module in model.dropouts.items()}
    if set(masks) != set(wanted):
        raise ValueError(f"masks must name exactly the dropouts {sorted(wanted)}, got {sorted(masks)}")
    for name, module in wanted.items():
        device = next(model.parameters()).device
        module.mask = torch.from_numpy(np.ascontiguousarray(masks[name], dtype=np.bool_)).to(device)


def copy_state(model: Any, state: Mapping[str, np.ndarray]) -> None:
    """Copy ``state`` into the torch model's parameters and buffers, exactly (cast to the model's
    dtype). ``num_batches_tracked`` is torch's own counter (unused with a fixed momentum): not in
    the state."""
    torch = torch_module()
    params = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    with torch.no_grad():
        for name, value in state.items():
            target = params[torch_param_name(name)]
            if tuple(target.shape) != tuple(np.shape(value)):
                raise ValueError(f"state[{name!r}] has shape {np.shape(value)}, torch expects {tuple(target.shape)}")
            target.copy_(to_tensor(np.asarray(value), target.device.type, target.dtype))


def torch_state_to_numpy(model: Any) -> dict[str, np.ndarray]:
    """``{scratchnet name: ndarray}`` of the parameters and the running statistics of a torch model
    (bit-exact, on the host; torch's ``num_batches_tracked`` counters left out)."""
    from .mapping import scratch_param_name

    arrays = [*model.named_parameters(), *((n, b) for n, b in model.named_buffers()
                                           if not n.endswith("num_batches_tracked"))]
    return {scratch_param_name(n): p.detach().cpu().numpy().copy() for n, p in arrays}


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
