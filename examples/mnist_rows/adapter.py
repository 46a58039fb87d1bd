"""Adapter for ``network.py``: an ``MLP`` class with ``W1, b1, W2, b2`` stored ``(in, out)``,
examples as rows, one-hot targets, one hidden layer (sigmoid, softmax + cross-entropy); its sizes
are constructor arguments, its depth is fixed.

    scratchnet-conformance run --impl examples.mnist_rows.adapter:make_implementation
    scratchnet-conformance run --impl examples.mnist_rows.adapter:make_fixed     # passes
"""

from scratchnet_reference.byo import styles

from . import network, network_fixed

EXPECTED_ROOT_CAUSES = {("input_modified", "your forward / loss_and_grads (its arguments)"),  # (kind, where)
                        ("accumulated", "your loss_and_grads (between calls)")}
CAPABILITIES = {"architectures": [1], "hidden": ["sigmoid"], "outputs": ["softmax"], "losses": ["cross_entropy"],
                "reductions": ["mean"], "dtypes": ["float64"], "optimizers": ["sgd"], "optimizer_options": [],
                "hyperparameters": []}


class Model(styles.Model):
    module = network

    def __init__(self, spec, state):
        self.net = self.module.MLP(*spec.sizes)
        self.params = styles.Params.of_attributes(self.net, "W{}", "b{}", 2, transposed=True)
        self.load_state_dict(state)

    def forward(self, x):
        return self.net.forward(x)

    def gradients(self, x, y):
        self.net.forward(x)
        targets = styles.targets(y, self.net.W2.shape[1])
        self.net.backward(x, targets)
        loss = self.net.compute_loss(targets)
        return loss, styles.Params.of_attributes(self.net, "dW{}", "db{}", 2, transposed=True).state()

    def step(self):  # the network's own update, with the harness's learning rate
        self.net.learning_rate = self.lr
        self.net.update()


class FixedModel(Model):
    module = network_fixed


def make_implementation():
    return styles.Implementation("mnist-rows", Model, CAPABILITIES)


def make_fixed():
    return styles.Implementation("mnist-rows-fixed", FixedModel, CAPABILITIES)
