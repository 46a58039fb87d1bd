"""Adapter for a network of layer objects whose ``backward(grad, learning_rate)`` updates the
weights itself (column vectors, one sample at a time, ``Dense`` weights ``(out, in)``).

    scratchnet-conformance run --impl examples.self_updating_layers.adapter:make_implementation --quick

The gradient is read out of the update (``Params.read_update``), one sample at a time, and
averaged over the batch: the batch mean of the per-sample losses, as torch's ``reduction="mean"``.
"""

from functools import partial

import numpy as np
from scratchnet_reference.byo import styles

from . import activations, losses
from .layers import Dense
from .network import predict

ACTIVATIONS = {"tanh": activations.Tanh, "sigmoid": activations.Sigmoid, "relu": activations.ReLU,
               "softmax": activations.Softmax, "identity": None}  # identity: no layer after the Dense
LOSSES = {"mse": (losses.mse, losses.mse_prime),
          "binary_cross_entropy": (losses.binary_cross_entropy, losses.binary_cross_entropy_prime)}

#: what the report must list, and nothing else: (kind, op) of each root cause
EXPECTED_ROOT_CAUSES = {("factor", "loss gradient (every layer)"),  # mse_prime: ×C, the gradient of a sum
                        ("softmax_s1s", "softmax backward")}              # softmax_prime: s(1 − s) elementwise


class Model(styles.Model):
    def __init__(self, spec, state, ops=None):  # ops: torch's, replacing ours (diagnosis by substitution)
        self.network, dense = [], []
        for n_in, n_out, name in zip(spec.sizes, spec.sizes[1:], styles.activation_names(spec)):
            dense.append(Dense(n_in, n_out))
            swap = styles.substituted(ops, OPS, name, f"{name}_backward")
            layer = styles.OpLayer(*swap, columns=True) if swap else ACTIVATIONS[name]() if ACTIVATIONS[name] else None
            self.network += [dense[-1]] + ([layer] if layer else [])
        self.loss, self.loss_prime = LOSSES[spec.loss["name"]]
        swap = styles.substituted(ops, OPS, spec.loss["name"], spec.loss["name"] + "_grad")
        if swap:  # the ops take (p, y) rows; the network calls loss(y_true, y_pred) on columns
            self.loss, self.loss_prime = (lambda y, p: swap[0](p.T, y.T)), (lambda y, p: swap[1](p.T, y.T).T)
        self.params = styles.Params.of_layers(dense, "weights", "bias")
        self.load_state_dict(state)

    def forward(self, x):
        return np.stack([predict(self.network, col)[:, 0] for col in styles.columns(x)])

    def gradients(self, x, y):
        per_sample = []
        for col, target in zip(styles.columns(x), styles.columns(y)):
            output = predict(self.network, col)
            backward = partial(self.backward, self.loss_prime(target, output))  # backward(learning_rate)
            per_sample.append((self.loss(target, output), self.params.read_update(backward)))
        return styles.mean_over_samples(per_sample)

    def backward(self, grad, learning_rate):  # the training loop's backward pass
        for layer in reversed(self.network):
            grad = layer.backward(grad, learning_rate)


CAPABILITIES = {"hidden": ["tanh", "sigmoid", "relu", "softmax"],
                "outputs": ["tanh", "sigmoid", "relu", "softmax", "identity"],
                "losses": list(LOSSES), "reductions": ["mean"], "dtypes": ["float64"],
                "optimizers": ["sgd"], "optimizer_options": [], "hyperparameters": []}


#: the network's own ops, one by one: scratchnet-conformance ops --impl examples.self_updating_layers.adapter:OPS
OPS = {}
for _name, _layer in ACTIVATIONS.items():
    if _layer:  # backward(grad, learning_rate=0); one column vector at a time
        OPS[_name], OPS[f"{_name}_backward"] = styles.layer_op(_layer, 0.0, per_sample=True)
for _name, (_loss, _prime) in LOSSES.items():  # their argument order is (y_true, y_pred)
    OPS[_name], OPS[f"{_name}_grad"] = (lambda p, y, f=_loss: f(y, p)), (lambda p, y, f=_prime: f(y, p))


def make_implementation():
    return styles.Implementation("self-updating-layers", Model, CAPABILITIES, ops=OPS)
