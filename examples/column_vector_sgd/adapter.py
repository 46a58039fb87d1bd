"""Adapter for a textbook column-vector network trained one sample at a time
(``weights[k]`` ``(out, in)``, ``biases[k]`` ``(out, 1)``, ``backprop(x, y)`` → ``nabla_b, nabla_w``).

    scratchnet-conformance run --impl examples.column_vector_sgd.adapter:make_implementation --quick

The network is sigmoid everywhere with a quadratic cost: the adapter declares exactly that, and
calls its own ``total_cost`` (the loss) and ``gradient`` (the average of ``backprop`` over the batch).
"""

import numpy as np
from scratchnet_reference.byo import styles

from .network import Network

#: what the report must list, and nothing else: (kind, op) of each root cause
EXPECTED_ROOT_CAUSES = {("factor", "loss gradient (every layer)"),  # ½‖a − y‖² per sample: ×C/2
                        ("at_activation", "sigmoid backward")}            # σ'(a) for σ'(z), hidden layers only


class Model(styles.Model):
    def __init__(self, spec, state):
        self.net = Network(list(spec.sizes))
        self.params = styles.Params.of_lists(self.net, "weights", "biases")
        self.load_state_dict(state)

    def forward(self, x):
        return np.stack([self.net.feedforward(col)[:, 0] for col in styles.columns(x)])

    def gradients(self, x, y):
        batch = list(zip(styles.columns(x), styles.columns(y)))
        nabla_b, nabla_w = self.net.gradient(batch)
        return self.net.total_cost(batch), self.params.from_lists(nabla_w, nabla_b)


CAPABILITIES = {"activations": ["sigmoid"], "losses": ["mse"], "reductions": ["mean"], "dtypes": ["float64"],
                "optimizers": ["sgd"], "optimizer_options": [], "hyperparameters": []}


def make_implementation():
    return styles.Implementation("column-vector-sgd", Model, CAPABILITIES)
