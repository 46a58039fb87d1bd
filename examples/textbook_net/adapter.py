"""The bridge between ``network.py`` and the scratchnet conformance suite.

Run the suite against this network (from the repository root)::

    scratchnet-conformance run --impl examples.textbook_net.adapter:make_implementation --out reports/textbook
    pytest --pyargs scratchnet_reference.conformance.tests \\
        --scratchnet-impl examples.textbook_net.adapter:make_implementation

The harness hands over a ``scratchnet.ModelSpec`` and weights stored like ``torch.nn.Linear``
(``layers.{k}.weight`` ``(out, in)``, ``layers.{k}.bias`` ``(out,)``) and batches as rows; this
file turns those into the textbook network's column vectors and back.
"""

import numpy as np

from .network import ACTIVATIONS, TextbookNetwork


class TextbookModel:
    """One network built for the harness: forward, loss and gradients, weights in and out, SGD."""

    network_class = TextbookNetwork

    def __init__(self, spec, state):
        self.net = self.network_class(spec.sizes, [h["name"] for h in spec.hidden], spec.output["name"],
                                   spec.loss["name"], spec.reduction, np.dtype(spec.dtype))
        self.n_layers = len(spec.sizes) - 1
        self.load_state_dict(state)
        self.lr = None
        self.last_grads = None

    # -- batches are rows for the harness, columns for the network --------------------------------
    def _columns(self, x):
        x = np.asarray(x, dtype=self.net.dtype)
        return [row.reshape(-1, 1) for row in x]

    def _targets(self, y):
        y = np.asarray(y)
        if y.ndim == 1:  # class labels: one-hot rows
            y = np.eye(self.net.sizes[-1], dtype=self.net.dtype)[y]
        return self._columns(y)

    def forward(self, x):
        return np.stack([self.net.feedforward(col)[:, 0] for col in self._columns(x)])

    def loss_and_grads(self, x, y):
        loss, nabla_w, nabla_b = self.net.loss_and_gradients(self._columns(x), self._targets(y))
        self.last_grads = (nabla_w, nabla_b)
        grads = {}
        for k in range(self.n_layers):
            grads[f"layers.{k}.weight"] = nabla_w[k]
            grads[f"layers.{k}.bias"] = nabla_b[k][:, 0]  # (out, 1) column -> (out,)
        return loss, grads

    # -- weights ----------------------------------------------------------------------------------
    def state_dict(self):
        state = {}
        for k in range(self.n_layers):
            state[f"layers.{k}.weight"] = self.net.weights[k].copy()
            state[f"layers.{k}.bias"] = self.net.biases[k][:, 0].copy()
        return state

    def load_state_dict(self, state):
        self.net.weights = [np.array(state[f"layers.{k}.weight"], dtype=self.net.dtype) for k in range(self.n_layers)]
        self.net.biases = [np.array(state[f"layers.{k}.bias"], dtype=self.net.dtype).reshape(-1, 1)
                           for k in range(self.n_layers)]

    # -- training: plain SGD ----------------------------------------------------------------------
    def configure_optimizer(self, spec):
        options = {k: v for k, v in spec.items() if k not in ("name", "lr")}
        if spec["name"] != "sgd" or options:
            raise NotImplementedError(f"optimizer {spec['name']} {options or ''}".strip())
        self.lr = spec["lr"]

    def step(self):
        self.net.sgd_step(*self.last_grads, self.lr)


class TextbookImplementation:
    name = "textbook-net"
    model_class = TextbookModel
    capabilities = {
        "activations": sorted(ACTIVATIONS),          # sigmoid, tanh, relu, identity, softmax
        "losses": ["cross_entropy", "mse"],
        "reductions": ["mean", "sum"],
        "dtypes": ["float64"],                       # float32 passes the matrix, but at logits in the
                                                     # thousands its per-sample rounding drifts past the
                                                     # tolerance (hypothesis finds it): not declared
        "optimizers": ["sgd"],
        "optimizer_options": [],                     # no momentum, no weight decay
        "hyperparameters": [],                       # no label smoothing
    }

    def build(self, spec, state):
        if spec.loss["name"] == "cross_entropy" and spec.output["name"] != "softmax":
            # the declared sets allow sigmoid + cross_entropy, which this network does not do
            raise NotImplementedError(f"{spec.output['name']} + cross_entropy")
        return self.model_class(spec, state)


def make_implementation():
    return TextbookImplementation()
