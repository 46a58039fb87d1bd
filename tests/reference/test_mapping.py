"""The one mapping table (``scratchnet_reference.core.mapping``) is complete for the registry, and each torch
counterpart computes the same function as scratchnet's — hyper-parameters and kinks included."""

from __future__ import annotations

import numpy as np
import pytest
from scratchnet_reference import tolerance
from scratchnet_reference.core import mapping
from scratchnet_reference.core.matrix import OPTIMIZER_CONFIGS
from scratchnet_reference.core.records import measure

from scratchnet import fused, registry
from scratchnet.losses import REDUCTIONS

DTYPES = ("float32", "float64")

#: Non-default hyper-parameters checked on top of each activation's defaults; every key must be
#: a registry name (checked below), so the table cannot drift from the registry unnoticed.
ACTIVATION_VARIANTS = {
    "leaky_relu": [{"negative_slope": 0.2}],
    "elu": [{"alpha": 0.5}],
    "softplus": [{"beta": 2.0, "threshold": 5.0}],
    "gelu": [{"approximate": "tanh"}],
}
LOSS_VARIANTS = {
    "huber": [{"delta": 0.5}],
    "smooth_l1": [{"beta": 0.5}, {"beta": 0.0}],
    "cross_entropy": [{"label_smoothing": 0.1}],
    "nll": [{"label_smoothing": 0.2}],
}


def with_variants(table, variants):
    return [{"name": name, **params} for name in table for params in [{}, *variants.get(name, [])]]


ACTIVATION_SPECS = with_variants(registry.ACTIVATIONS, ACTIVATION_VARIANTS)
LOSS_SPECS = with_variants(registry.LOSSES, LOSS_VARIANTS)


def spec_id(spec):
    return registry.label(spec)


def assert_close(what, actual, expected, dtype, check):
    tol = tolerance(dtype, check)
    expected = np.asarray(expected)
    stats = measure(actual, expected, tol.rtol, tol.atol_for(float(np.abs(expected).max(initial=0.0))))
    assert stats["tol_ratio"] <= 1, f"{what}: scratchnet and torch differ: {stats}"


# -- completeness ------------------------------------------------------------------------------

def test_variant_tables_name_registry_entries():
    assert set(ACTIVATION_VARIANTS) <= set(registry.ACTIVATIONS)
    assert set(LOSS_VARIANTS) <= set(registry.LOSSES)


def test_every_activation_has_a_torch_module():
    assert set(registry.ACTIVATIONS) <= set(mapping.ACTIVATION_MODULES)


def test_every_loss_has_a_modular_torch_form():
    assert set(registry.LOSSES) <= set(mapping.MODULAR_LOSSES)


def test_every_fused_pair_has_a_fused_torch_form():
    """Each pair scratchnet computes from the logits needs torch's stable form on the logits
    too; otherwise at large logits it is only ever compared with torch's modular path, which
    overflows there (``unverified`` without a second oracle), and the stable code goes unchecked exactly where it
    matters."""
    assert set(fused.FUSED_PAIRS) == set(registry.FUSED_PAIRS)
    missing = set(registry.FUSED_PAIRS) - set(mapping.FUSED_LOSSES)
    assert not missing, f"fused pairs without a fused torch form in core.mapping.FUSED_LOSSES: {missing}"


def test_every_optimizer_has_a_torch_class_and_a_training_configuration(torch):
    assert set(registry.OPTIMIZERS) <= set(mapping.OPTIMIZER_CLASSES)
    for name in registry.OPTIMIZERS:
        assert issubclass(getattr(torch.optim, mapping.OPTIMIZER_CLASSES[name]), torch.optim.Optimizer)
    assert set(registry.OPTIMIZERS) <= {c["name"] for c in OPTIMIZER_CONFIGS.values()}


@pytest.mark.parametrize("key", list(OPTIMIZER_CONFIGS))
def test_every_optimizer_configuration_builds_in_torch_and_scratchnet(key, torch):
    from scratchnet import Parameter

    config = OPTIMIZER_CONFIGS[key]
    opt = mapping.torch_optimizer(config, [torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))])
    assert type(opt).__name__ == mapping.OPTIMIZER_CLASSES[config["name"]]
    ours = registry.make_optimizer(dict(config), [Parameter("w", np.zeros(2), np.zeros(2))])
    for k, v in config.items():
        if k != "name":
            assert opt.defaults[k] == v and ours.hyperparams[k] == v, k


def test_parameter_names_map_one_to_one():
    for name in ("layers.0.weight", "layers.0.bias", "layers.12.weight"):
        assert mapping.scratch_param_name(mapping.torch_param_name(name)) == name


# -- activations -------------------------------------------------------------------------------

def sample_inputs(act, dtype) -> np.ndarray:
    """(8, 12) pre-activations: a grid, every kink exactly and just either side of it,
    random values, and the large magnitudes the activations promise to be stable for."""
    dt = np.dtype(dtype)
    kinks = [dt.type(k) for k in act.kinks]
    near = [np.nextafter(k, dt.type(np.inf)) for k in kinks] + [np.nextafter(k, dt.type(-np.inf)) for k in kinks]
    grid = np.linspace(-6, 6, 37)
    big = [-1e3, -100, -30, -20, -10, 10, 20, 30, 100, 1e3]
    rng = np.random.default_rng(0)
    values = np.concatenate([kinks, near, [0.0, -0.0], grid, big, rng.normal(0, 3, 96)]).astype(dt)
    return values[:96].reshape(8, 12) if values.size >= 96 else np.resize(values, (8, 12))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", ACTIVATION_SPECS, ids=spec_id)
def test_torch_activation_computes_the_same_function(spec, dtype, torch):
    act = registry.make_activation(spec)
    module = mapping.torch_activation(registry.normalize(spec, "activation"))
    for key, value in act.params.items():  # the hyper-parameters reached the torch module
        assert getattr(module, key) == value, f"torch module {module} has {key}={getattr(module, key)!r}"
    z = sample_inputs(act, dtype)
    zt = torch.tensor(z, requires_grad=True)
    out = module(zt)
    assert_close(f"{spec_id(spec)} forward", act.forward(z), out.detach().numpy(), dtype, "forward")
    g = np.random.default_rng(1).normal(size=z.shape).astype(dtype)
    (grad_t,) = torch.autograd.grad(out, zt, torch.tensor(g))
    assert_close(f"{spec_id(spec)} backward (VJP, kinks included)", act.backward(z, act.forward(z), g),
                 grad_t.numpy(), dtype, "gradient")


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "softplus"])
def test_kink_inputs_really_contain_the_kinks(name):
    act = registry.make_activation(name)
    z = sample_inputs(act, "float64")
    assert all(np.any(z == k) for k in act.kinks)


def test_hyper_parameters_change_the_torch_function(torch):
    """A mapping that dropped the parameters would still pass for the defaults; each variant
    must compute something different from its default."""
    z = torch.linspace(-4, 8, 25, dtype=torch.float64).reshape(5, 5)
    for name, variants in ACTIVATION_VARIANTS.items():
        default = mapping.torch_activation({"name": name, **registry.make_activation(name).params})(z)
        for params in variants:
            changed = mapping.torch_activation(registry.normalize({"name": name, **params}, "activation"))(z)
            assert not torch.equal(default, changed), f"{name}{params} computes the default function"


# -- losses ------------------------------------------------------------------------------------

def loss_batch(loss, dtype, target_kind, rng):
    """Outputs in the loss's domain and a target of the given kind (labels or dense rows)."""
    n, c = 6, 4
    if "real" in loss.accepts:
        out = rng.normal(0, 1.5, (n, c))
    elif "probability" in loss.accepts:
        out = rng.uniform(0.05, 0.95, (n, c))
    else:  # log-probabilities
        z = rng.normal(0, 2, (n, c))
        out = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    if target_kind == "labels":
        y = rng.integers(0, c, n)
    elif loss.per_sample:
        w = rng.uniform(0.1, 1.0, (n, c))
        y = w / w.sum(axis=1, keepdims=True)
    else:
        y = rng.uniform(0.0, 1.0, (n, c))
    return out.astype(dtype), loss.prepare_target(y, c, np.dtype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target_kind", ["labels", "dense"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("spec", LOSS_SPECS, ids=spec_id)
def test_modular_torch_loss_matches_value_and_gradient(spec, reduction, target_kind, dtype, torch):
    loss = registry.make_loss(spec, reduction)
    out, target = loss_batch(loss, dtype, target_kind, np.random.default_rng(2))
    out_t = torch.tensor(out, requires_grad=True)
    value_t = mapping.modular_loss(spec)(out_t, mapping.to_tensor(target, "cpu", out_t.dtype),
                                         loss.params, reduction)
    (grad_t,) = torch.autograd.grad(value_t, out_t)
    assert_close(f"{spec_id(spec)} value", loss.value(out, target), value_t.item(), dtype, "loss")
    assert_close(f"{spec_id(spec)} dL/dp", loss.gradient(out, target), grad_t.numpy(), dtype, "gradient")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target_kind", ["labels", "dense"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pair", [p for p in registry.FUSED_PAIRS if p in mapping.FUSED_LOSSES], ids="+".join)
def test_fused_torch_loss_matches_value_and_logit_gradient(pair, reduction, target_kind, dtype, torch):
    output, loss_name = pair
    spec = {"name": loss_name, **({"label_smoothing": 0.1} if loss_name == "cross_entropy" else {})}
    loss = registry.make_loss(spec, reduction)
    rng = np.random.default_rng(3)
    z = rng.normal(0, 3, (6, 4)).astype(dtype)
    z[0, 0] = 40.0  # a saturating logit: the fused forms must stay exact there
    _, target = loss_batch(loss, dtype, target_kind, rng)
    a = registry.make_activation(output).forward(z)
    value, grad = fused.fused_loss_and_grad(output, loss, z, a, target)
    zt = torch.tensor(z, requires_grad=True)
    value_t = mapping.fused_loss(output, spec)(zt, mapping.to_tensor(target, "cpu", zt.dtype), loss.params, reduction)
    (grad_t,) = torch.autograd.grad(value_t, zt)
    assert_close(f"{'+'.join(pair)} value", value, value_t.item(), dtype, "loss")
    assert_close(f"{'+'.join(pair)} dL/dz", grad, grad_t.numpy(), dtype, "gradient")


def test_pairs_scratchnet_does_not_fuse_have_no_fused_torch_form():
    assert set(mapping.FUSED_LOSSES) <= set(registry.FUSED_PAIRS)
    assert mapping.fused_loss("identity", {"name": "mse"}) is None
