"""``validate_implementation`` reads ``state_dict()`` back right after ``build``: a transposed weight is
refused with its shapes and the hint, and a weight moved off the given one — even a zero bias by 1e-9 —
is refused (relative 1e-6, no absolute slack)."""

from __future__ import annotations

import numpy as np
import pytest
from scratchnet_reference.core.adapter import AdapterError, validate_implementation

from .test_adapter import impl_with, model_with


def test_a_transposed_weight_is_named_with_its_shapes_and_the_hint():
    def state_dict(self):
        return {k: (v.T if k == "layers.0.weight" else v) for k, v in self.net.state_dict().items()}

    impl = impl_with(model_with(state_dict=state_dict))
    message = str(pytest.raises(AdapterError, validate_implementation, impl).value)
    assert ("state_dict()['layers.0.weight'] has shape (3, 5), expected (5, 3) — transposed? weights are "
            "(out_features, in_features), like torch.nn.Linear [built from") in message


def test_a_bias_moved_beyond_relative_1e6_is_not_the_given_weight():
    def state_dict(self):
        # beyond the relative 1e-6 by 5e-9: inside numpy's default absolute slack (1e-8), refused without it
        return {k: (v + 1e-6 * np.abs(v) + 5e-9 if k == "layers.0.bias" else v)
                for k, v in self.net.state_dict().items()}

    impl = impl_with(model_with(state_dict=state_dict))
    message = str(pytest.raises(AdapterError, validate_implementation, impl).value)
    assert "state_dict()['layers.0.bias'] is not the weight given to build()" in message
