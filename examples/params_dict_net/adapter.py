"""Adapter for a network that keeps its parameters in one dict (``params["W1"]`` ``(in, out)``,
``params["b1"]`` ``(out,)``) and whose ``loss(X, y)`` returns the class scores or ``(loss, grads)``
— softmax and cross-entropy fused in ``softmax_loss``.

    scratchnet-conformance run --impl examples.params_dict_net.adapter:make_implementation --quick

This one is correct: every check it declares passes.
"""

import numpy as np
from scratchnet_reference.byo import styles

from .fc_net import FullyConnectedNet

EXPECTED_ROOT_CAUSES: set = set()  # a correct network: no finding


class Model(styles.Model):
    def __init__(self, spec, state):
        self.net = FullyConnectedNet(spec.sizes[1:-1], spec.sizes[0], spec.sizes[-1], spec.hidden[0]["name"],
                                     dtype=np.float64)
        self.n_layers = len(spec.sizes) - 1
        self.params = styles.Params.of_dict(self.net.params, "W{}", "b{}", self.n_layers, transposed=True)
        self.load_state_dict(state)

    def forward(self, x):
        return styles.softmax(self.net.loss(x))

    def gradients(self, x, y):
        loss, grads = self.net.loss(x, y)
        return loss, styles.Params.of_dict(grads, "W{}", "b{}", self.n_layers, transposed=True).state()


def refuse(spec):
    """The net has one nonlinearity for every hidden layer."""
    names = {h["name"] for h in spec.hidden}
    return f"hidden layers {sorted(names)} (one nonlinearity for all)" if len(names) > 1 else ""


CAPABILITIES = {"hidden": ["relu", "tanh"], "outputs": ["softmax"], "losses": ["cross_entropy"],
                "reductions": ["mean"], "dtypes": ["float64"], "optimizers": ["sgd"], "optimizer_options": [],
                "hyperparameters": []}


def make_implementation():
    return styles.Implementation("params-dict-net", Model, CAPABILITIES, refuse)
