"""Adapter template: connect YOUR network to the scratchnet conformance suite.

Copy this file into your project (say ``mynet/adapter.py``), fill in the four TODOs, then run,
from your project directory::

    scratchnet-conformance run --impl mynet.adapter:make_implementation --out reports/mynet
    # or, for CI:
    pytest --pyargs scratchnet_reference.conformance.tests --scratchnet-impl mynet.adapter:make_implementation

The suite builds the same network in PyTorch with the same weights, feeds both the same batches,
and reports per parameter (and, for training, per step) where your numbers differ from torch's
— with a diagnosis: which layer's derivative is wrong, and the pattern (off by the batch size,
transposed, sign flipped, wrong only at ReLU's kink, only for large logits, softmax's Jacobian
taken elementwise, …). An unfilled template is refused with a list of what is missing.

What the harness gives you and expects back
-------------------------------------------
* ``spec`` — a ``scratchnet.ModelSpec``: ``spec.sizes`` ``(inputs, hidden..., outputs)``,
  ``spec.hidden`` (one ``{"name": "relu", ...}`` per hidden layer), ``spec.output``,
  ``spec.loss`` (``{"name": "cross_entropy", "label_smoothing": 0.0}``), ``spec.reduction``
  (``"mean"``: cross-entropy divides by N, MSE by N·C, like torch; ``"sum"``), ``spec.dtype``.
* ``state`` — the weights to start from, stored like ``torch.nn.Linear``:
  ``state["layers.0.weight"]`` is ``(out, in)``, ``state["layers.0.bias"]`` is ``(out,)``,
  layers counted from 0. Use exactly these weights (not your own random initialisation).
* ``x`` — a batch as rows ``(N, inputs)``. ``y`` — class labels ``(N,)`` (ints) for
  cross-entropy; float rows ``(N, outputs)`` otherwise (one-hot, probabilities or regression).
* ``forward(x)`` returns the output activations ``(N, outputs)``.
* ``loss_and_grads(x, y)`` returns ``(loss, grads)``: the loss as one number, and ``grads`` a dict
  keyed like ``state`` with arrays of the same shapes (``∂L/∂W`` is ``(out, in)``, ``∂L/∂b`` 1-D).

Short adapters: ``scratchnet_reference.byo.styles``
---------------------------------------------------
Most of an adapter is fitting your network's habits to the protocol above. ``styles`` does that
part: ``styles.Params`` binds ``layers.{k}.weight``/``bias`` to your arrays (``of_layers``,
``of_lists``, ``of_dict``; ``transposed=True`` for weights stored ``(in, out)``; bias columns
``(out, 1)`` and rows ``(1, out)`` are reshaped for you), and ``styles.Model`` then gives
``load_state_dict``, ``state_dict``, plain-SGD ``configure_optimizer`` and ``step``: you write
``__init__``, ``forward`` and ``gradients(x, y) -> (loss, grads)``. The three styles people write
most, each a worked example in ``examples/``:

* **Layer objects whose** ``backward(grad, learning_rate)`` **updates the weights itself** and never
  returns the gradient (``examples/self_updating_layers``): read it out of the update —
  ``grads = self.params.read_update(lambda lr: <your backward pass with learning rate lr>)``
  snapshots the weights, runs it with lr = 2¹⁰, returns (θ_before − θ_after)/lr and restores θ.
* **Column vectors, one sample at a time** (``x`` is ``(d, 1)``, ``W @ a + b``;
  ``examples/column_vector_sgd``): ``styles.columns(x)`` and ``styles.columns(styles.targets(y, C))``
  give the samples; average per-sample losses and gradients with ``styles.mean_over_samples``
  (torch's ``reduction="mean"`` for a loss that is a mean over one sample's outputs), or call your
  own mini-batch gradient if it already averages.
* **A loss that fuses softmax in** (``SoftmaxCrossEntropy`` returning ``(p − y)/N`` from the logits;
  ``examples/fused_loss_library``, ``examples/params_dict_net``): for softmax + cross-entropy build
  the network without its final softmax layer (its backward would be applied twice) and return
  ``styles.softmax(logits)`` from ``forward``; for softmax + MSE keep the softmax layer — its own
  backward is then what is checked.

Layer objects can also be checked op by op (``scratchnet-conformance ops --impl mynet.adapter:OPS``,
where exact kinks and extreme logits are drawn on purpose): ``OPS["relu"], OPS["relu_backward"] =
styles.layer_op(ReLU)`` (a fresh layer per call: ``forward(z)``, then ``backward(g)``; extra
arguments such as a learning rate of 0 and ``per_sample=True`` for column-vector layers) and
``OPS["mse"], OPS["mse_grad"] = styles.loss_op(MSE)`` for loss objects. The same ``OPS`` in
``styles.Implementation(name, Model, capabilities, ops=OPS)`` turn on diagnosis by substitution; the
model then takes ``ops`` and builds with torch's in place of yours: ``pair = styles.substituted(ops,
OPS, "relu", "relu_backward")`` and ``styles.OpLayer(*pair)`` (``columns=True`` for column vectors)
where that layer would be, ``styles.OpLoss`` for a loss object (``examples/fused_loss_library``).

The skeleton with ``styles`` (instead of the classes below)::

    from scratchnet_reference.byo import styles

    class Model(styles.Model):
        def __init__(self, spec, state):
            self.net = MyNetwork(spec.sizes)                                # your network
            self.params = styles.Params.of_lists(self.net, "weights", "biases")
            self.load_state_dict(state)

        def forward(self, x):                                               # rows in, rows out
            return np.stack([self.net.feedforward(c)[:, 0] for c in styles.columns(x)])

        def gradients(self, x, y):                                          # -> (loss, grads)
            batch = list(zip(styles.columns(x), styles.columns(styles.targets(y, self.net.sizes[-1]))))
            loss, nabla_w, nabla_b = self.net.loss_and_gradient(batch)
            return loss, self.params.from_lists(nabla_w, nabla_b)

    def make_implementation():
        return styles.Implementation("my-net", Model, {"activations": ["sigmoid"], "losses": ["mse"]})

Write the expected gradient layout once, check it by running
``scratchnet-conformance run --impl mynet.adapter:make_implementation --quick``: a transposed or
misnamed gradient is refused with the shapes it expected.
"""

import numpy as np

# TODO 1: import your network
# from mynet.network import MyNetwork


class MyModel:
    """One network, built for the harness."""

    def __init__(self, spec, state):
        # TODO 2: build your network from the spec, then load the given weights, e.g.
        #   self.net = MyNetwork(spec.sizes, [h["name"] for h in spec.hidden], spec.output["name"],
        #                        spec.loss["name"])
        #   self.load_state_dict(state)
        raise NotImplementedError("TODO: build your network in MyModel.__init__")

    # -- required ---------------------------------------------------------------------------------
    def forward(self, x):
        """(N, inputs) rows in, (N, outputs) output activations out."""
        # TODO 3: e.g. return self.net.predict(x)   (transpose if your network uses columns)
        raise NotImplementedError("TODO: MyModel.forward")

    def loss_and_grads(self, x, y):
        """The loss on the batch and ``{"layers.{k}.weight": (out, in), "layers.{k}.bias": (out,)}``."""
        # TODO 4: run your forward + backward pass, e.g.
        #   loss, dWs, dbs = self.net.backprop(x, y)
        #   grads = {}
        #   for k, (dW, db) in enumerate(zip(dWs, dbs)):
        #       grads[f"layers.{k}.weight"] = dW          # (out, in): transpose if yours is (in, out)
        #       grads[f"layers.{k}.bias"] = db.ravel()    # 1-D, not a column
        #   self.last_grads = grads                       # step() uses them
        #   return float(loss), grads
        raise NotImplementedError("TODO: MyModel.loss_and_grads")

    def load_state_dict(self, state):
        """Replace the weights (the finite-difference tie-breaker nudges them one by one)."""
        # e.g. self.net.weights = [np.array(state[f"layers.{k}.weight"]) for k in range(self.net.n_layers)]
        raise NotImplementedError("TODO: MyModel.load_state_dict")

    # -- optional: the lockstep training checks (leave them out and training is "not implemented") --
    def state_dict(self):
        """The current weights, keyed and shaped like the state given to the constructor."""
        raise NotImplementedError("TODO: MyModel.state_dict (optional)")

    def configure_optimizer(self, spec):
        """``spec`` is torch.optim's settings: ``{"name": "sgd", "lr": 0.1}``, maybe with
        ``momentum``, ``nesterov``, ``weight_decay`` …; raise NotImplementedError for what you lack."""
        if spec["name"] != "sgd" or set(spec) - {"name", "lr"}:
            raise NotImplementedError(f"optimizer {dict(spec)}")
        self.lr = spec["lr"]

    def step(self):
        """One update from the gradients of the last ``loss_and_grads`` (plain SGD: θ ← θ − lr·∇)."""
        raise NotImplementedError("TODO: MyModel.step (optional)")


class MyImplementation:
    name = "my-net"  # a label for the reports

    # What you implement; the suite checks exactly this and reports the rest as "not implemented"
    # (never as failures). Leave a key out to claim everything the registry has for it.
    capabilities = {
        "activations": ["sigmoid", "relu", "softmax"],  # usable in hidden and output layers
        # "hidden": [...], "outputs": [...],            # narrower sets per position, if needed
        "losses": ["cross_entropy", "mse"],
        "reductions": ["mean"],
        "dtypes": ["float64"],
        "optimizers": ["sgd"],                          # [] if your model has no step()
        "optimizer_options": [],                        # torch.optim keywords besides lr: momentum, ...
        "hyperparameters": [],                          # non-default label_smoothing, negative_slope, ...
        # "architectures": [(784, 30, 10)],             # sizes build takes (or [1]: one hidden layer, any
        #                                               # widths); left out: two hidden layers, else one
    }

    # Optional: the functions your network is made of, so that a failure is localised by swapping
    # each for torch's (diagnosis by substitution). Names and signatures: relu(z), relu_backward(z, a, g)
    # (g = dL/da, returns dL/dz), mse(p, y), mse_grad(p, y), softmax_cross_entropy_grad(z, y),
    # dense_forward(x, W, b), dense_backward(x, W, b, g) — see scratchnet_reference.core.reference_ops.
    # ops = {"relu": relu, "relu_backward": relu_backward, "mse": mse, "mse_grad": mse_grad}

    def build(self, spec, state, ops=None):
        # Raise NotImplementedError for a particular model you do not support (e.g. sigmoid +
        # cross_entropy): it is reported as not implemented, not as a failure.
        # With ``ops`` exposed above: build your network with {**self.ops, **(ops or {})}, the given
        # ops (torch's) replacing yours.
        return MyModel(spec, {name: np.asarray(value) for name, value in state.items()})


def make_implementation():
    """The factory ``--impl`` (CLI) or ``--scratchnet-impl`` (pytest) names: ``mynet.adapter:make_implementation``."""
    return MyImplementation()
