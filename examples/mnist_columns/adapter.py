"""Adapter for ``network.py``: one class with ``W1, b1, W2, b2``, examples as columns, sizes fixed
at 784 → 30 → 10 (ReLU, softmax + cross-entropy on digit labels).

    scratchnet-conformance run --impl examples.mnist_columns.adapter:make_implementation
    scratchnet-conformance run --impl examples.mnist_columns.adapter:make_fixed     # passes
"""

from scratchnet_reference.byo import styles

from . import network, network_fixed

EXPECTED_ROOT_CAUSES = {("bias_summed_all", "layers.0.bias, layers.1.bias"),  # (kind, where)
                        ("log_epsilon", "loss (cross_entropy, mean)")}
CAPABILITIES = {"architectures": [(784, 30, 10)], "hidden": ["relu"], "outputs": ["softmax"],
                "losses": ["cross_entropy"], "reductions": ["mean"], "dtypes": ["float64"], "optimizers": ["sgd"],
                "optimizer_options": [], "hyperparameters": []}


class Model(styles.Model):
    module = network

    def __init__(self, spec, state):
        self.net = self.module.TwoLayerNet()
        self.params = styles.Params.of_attributes(self.net, "W{}", "b{}", 2)  # (out, in) like torch
        self.load_state_dict(state)

    def forward(self, x):
        return self.net.forward(x.T).T  # the network takes examples as columns

    def gradients(self, x, y):
        self.net.forward(x.T)
        self.net.backward(x.T, y)
        return self.net.cost(y), styles.Params.of_attributes(self.net, "dW{}", "db{}", 2).state()


class FixedModel(Model):
    module = network_fixed


def make_implementation():
    return styles.Implementation("mnist-columns", Model, CAPABILITIES)


def make_fixed():
    return styles.Implementation("mnist-columns-fixed", FixedModel, CAPABILITIES)
