"""repr / equality / hashing of activations, losses and optimizers, and the hot-path fallback of an
activation subclass — each pinned by value (they survived mutation testing: reports/mutation/)."""

from __future__ import annotations

import numpy as np
import pytest

from scratchnet import Parameter, activations, registry
from scratchnet.optimizers import SGD, Adam

from .helpers import upstream


def test_activation_repr_lists_its_hyper_parameters():
    assert repr(registry.make_activation("relu")) == "ReLU()"
    assert repr(activations.Softplus(beta=2.0, threshold=5.0)) == "Softplus(beta=2.0, threshold=5.0)"
    assert repr(activations.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"


def test_activation_equality_needs_the_same_class_and_parameters():
    assert activations.ELU(0.5) == activations.ELU(0.5)
    assert activations.ELU(0.5) != activations.ELU(1.0)
    assert activations.ReLU() != activations.Tanh()          # same (empty) params, different class
    assert activations.Sigmoid() != "sigmoid"


def test_activation_hash_follows_class_and_parameters():
    assert hash(activations.ELU(0.5)) == hash(activations.ELU(0.5))
    for act in (activations.ReLU(), activations.ELU(0.5), activations.Softplus(2.0, 5.0)):
        assert hash(act) == hash((type(act), tuple(act.params.items())))
    assert len({activations.ReLU(), activations.Tanh(), activations.Sigmoid(), activations.ELU(0.5),
                activations.ELU(1.0)}) == 5


def test_loss_repr_lists_parameters_and_reduction():
    assert repr(registry.make_loss("mse")) == "MSELoss(reduction='mean')"
    assert repr(registry.make_loss({"name": "huber", "delta": 2.0}, reduction="sum")) == \
        "HuberLoss(delta=2.0, reduction='sum')"


def test_optimizer_repr_lists_its_hyper_parameters():
    params = [Parameter("w", np.ones(2), np.zeros(2))]
    text = repr(SGD(params, lr=0.5))
    assert text.startswith("SGD(lr=0.5, ") and ", " in text and text.endswith(")")
    assert repr(Adam(params, lr=0.01)).startswith("Adam(lr=0.01, ")


@pytest.mark.parametrize("parent", [activations.Sigmoid, activations.Tanh, activations.ReLU, activations.Identity])
def test_a_subclass_redefining_forward_or_backward_loses_the_parents_in_place_twin(parent):
    """``Activation.__init_subclass__``: a subclass that redefines ``forward`` (``backward``) without its
    twin falls back to the allocating default, so the hot path computes the subclass's function; one
    that redefines neither keeps the parent's twins, and one that redefines both keeps its own."""

    class Forward(parent):
        def forward(self, z):
            return 2 * super().forward(z)

    class Backward(parent):
        def backward(self, z, a, grad):
            return 3 * super().backward(z, a, grad)

    class Neither(parent):
        pass

    def own_forward_into(self, z, out):
        return parent.forward_into(self, z, out)

    def own_backward_into(self, z, a, grad, out):
        return parent.backward_into(self, z, a, grad, out)

    class Both(parent):
        def forward(self, z):
            return super().forward(z)

        def backward(self, z, a, grad):
            return super().backward(z, a, grad)

        forward_into = own_forward_into
        backward_into = own_backward_into

    assert Forward.forward_into is activations.Activation.forward_into
    assert Forward.backward_into is parent.backward_into
    assert Backward.backward_into is activations.Activation.backward_into
    assert Backward.forward_into is parent.forward_into
    assert Neither.forward_into is parent.forward_into and Neither.backward_into is parent.backward_into
    assert Both.forward_into is own_forward_into and Both.backward_into is own_backward_into
    z = np.linspace(-2, 2, 12).reshape(3, 4)
    g = upstream(z.shape)
    np.testing.assert_array_equal(Forward().forward_into(z, np.empty_like(z)), 2 * parent().forward(z))
    a = parent().forward(z)
    np.testing.assert_array_equal(Backward().backward_into(z, a, g.copy(), np.empty_like(z)),
                                  3 * parent().backward(z, a, g))


def test_an_optimizer_refusing_a_parameter_describes_what_came():
    with pytest.raises(ValueError, match=r"^params\[0\] \('w'\) needs float arrays value and grad of one shape and "
                                         r"dtype, got value float64 \(3,\) and grad list$"):
        SGD([Parameter("w", np.ones(3), [0.0, 0.0, 0.0])], lr=0.1)


def test_optimizer_learning_rate_defaults_are_torchs():
    """torch.optim's defaults: SGD and Adam(W) lr 1e-3 (tests/reference checks every default against
    torch's signatures; this pins the two that scratchnet's own tests never set)."""
    import inspect

    from scratchnet import registry as reg

    for name in ("sgd", "adam", "adamw"):
        assert inspect.signature(reg.OPTIMIZERS[name].__init__).parameters["lr"].default == 1e-3, name
        assert reg.OPTIMIZERS[name]([Parameter("w", np.ones(2), np.zeros(2))]).lr == 1e-3, name


def test_model_spec_describe_reads_as_its_docstring_says():
    from scratchnet import ModelSpec

    spec = ModelSpec((4, 16, 3), hidden="relu", output="softmax", loss="cross_entropy")
    assert spec.describe() == "4-16-3 relu\u2192softmax+cross_entropy(mean) float64"


def test_network_from_spec_takes_a_spec_its_dict_or_its_json():
    """The same network (and the loaded state) whichever form the spec comes in."""
    from scratchnet import ModelSpec, Network

    spec = ModelSpec((3, 4, 2), hidden="tanh", output="softmax", loss="cross_entropy", seed=5)
    state = {k: v + 0.25 for k, v in Network(spec).state_dict().items()}
    x = np.random.default_rng(0).normal(size=(5, 3))
    nets = [Network.from_spec(form, state) for form in (spec, spec.to_dict(), spec.to_json())]
    for net in nets:
        assert net.spec == spec
        for name, value in state.items():
            np.testing.assert_array_equal(net.state_dict()[name], value)
        np.testing.assert_array_equal(net.forward(x), nets[0].forward(x))
