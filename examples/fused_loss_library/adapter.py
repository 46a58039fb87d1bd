"""Adapter for a Keras-like layer library: rows, ``Dense`` weights ``(in, out)`` in
``layer.params["W"]``, gradients in ``layer.grads``, and a loss that fuses softmax in.

    scratchnet-conformance run --impl examples.fused_loss_library.adapter:make_implementation --quick

For softmax + cross-entropy the model ends at the logits (``SoftmaxCrossEntropy`` is ∂L/∂z) and
``forward`` applies ``softmax``; for softmax + MSE the ``Softmax`` layer stays in, backward and all.
"""

from scratchnet_reference.byo import styles

from . import layers
from .losses import MeanSquaredError, SoftmaxCrossEntropy
from .model import Sequential

ACTIVATIONS = {"relu": layers.ReLU, "tanh": layers.Tanh, "gelu": layers.GELU, "softmax": layers.Softmax,
               "identity": None}

#: what the report must list, and nothing else: (kind, op) of each root cause
EXPECTED_ROOT_CAUSES = {("gelu_tanh", "gelu"),     # the tanh approximation, not x·Φ(x)
                        ("kink", "relu backward")}  # relu'(0) = 1: only where a pre-activation is exactly 0


class Model(styles.Model):
    def __init__(self, spec, state, ops=None):  # ops: torch's, replacing ours (diagnosis by substitution)
        self.fused = spec.loss["name"] == "cross_entropy"
        names = styles.activation_names(spec)[:-1] + ["identity" if self.fused else spec.output["name"]]
        self.net, dense = Sequential(), []
        for n_in, n_out, name in zip(spec.sizes, spec.sizes[1:], names):
            dense.append(layers.Dense(n_in, n_out))
            self.net.add(dense[-1])
            swap = styles.substituted(ops, OPS, name, f"{name}_backward")
            if swap or ACTIVATIONS[name]:
                self.net.add(styles.OpLayer(*swap) if swap else ACTIVATIONS[name]())
        loss = "softmax_cross_entropy" if self.fused else "mse"
        swap = styles.substituted(ops, OPS, loss, f"{loss}_grad")
        self.net.compile(styles.OpLoss(*swap) if swap else SoftmaxCrossEntropy() if self.fused else MeanSquaredError())
        self.params = styles.Params.of_layers(dense, "params.W", "params.b", transposed=True)
        self.grads = styles.Params.of_layers(dense, "grads.W", "grads.b", transposed=True)
        self.load_state_dict(state)

    def forward(self, x):
        out = self.net.forward(x)
        return styles.softmax(out) if self.fused else out  # what predict() does

    def gradients(self, x, y):
        loss = self.net.loss(self.net.forward(x), y)
        self.net.backward(self.net.loss.backward())
        return loss, self.grads.state()


CAPABILITIES = {"hidden": ["relu", "tanh", "gelu", "softmax"], "outputs": ["softmax", "identity"],
                "losses": ["cross_entropy", "mse"], "reductions": ["mean"], "dtypes": ["float64"],
                "optimizers": ["sgd"], "optimizer_options": [], "hyperparameters": []}


#: the library's own ops, one by one: scratchnet-conformance ops --impl examples.fused_loss_library.adapter:OPS
OPS = {"TARGETS": {"softmax_cross_entropy": ("index", "one_hot", "soft")}}
for _name, _layer in {"relu": layers.ReLU, "tanh": layers.Tanh, "gelu": layers.GELU, "softmax": layers.Softmax}.items():
    OPS[_name], OPS[f"{_name}_backward"] = styles.layer_op(_layer)
OPS["softmax_cross_entropy"], OPS["softmax_cross_entropy_grad"] = styles.loss_op(SoftmaxCrossEntropy)
OPS["mse"], OPS["mse_grad"] = styles.loss_op(MeanSquaredError)


def make_implementation():
    ops = {name: op for name, op in OPS.items() if name != "TARGETS"}
    return styles.Implementation("fused-loss-library", Model, CAPABILITIES, ops=ops)
