"""The adapter from the course's template, filled in for my MLP."""
import numpy as np

from mlp import MLP
from scratchnet_reference.byo import styles


class Model(styles.Model):
    def __init__(self, spec, state):
        self.net = MLP(spec.sizes)
        self.params = styles.Params.of_lists(self.net, "weights", "biases")
        self.load_state_dict(state)

    def forward(self, x):
        return self.net.forward(np.asarray(x, dtype=float))

    def gradients(self, x, y):
        loss, dWs, dbs = self.net.backward(np.asarray(x, dtype=float), styles.targets(y, self.net.sizes[-1]))
        return loss, self.params.from_lists(dWs, dbs)


def make_implementation():
    return styles.Implementation("tina-mlp", Model, {"hidden": ["sigmoid"], "outputs": ["softmax"],
                                                     "losses": ["cross_entropy"], "reductions": ["mean"],
                                                     "dtypes": ["float64"], "optimizers": ["sgd"],
                                                     "optimizer_options": []})
