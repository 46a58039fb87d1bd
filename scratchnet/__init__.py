"""scratchnet — a from-scratch NumPy neural network with hand-written backpropagation.

Dense layers (optionally followed by batch normalisation and dropout), every common
activation and loss (with the stable fused softmax/cross-entropy,
log-softmax/NLL and sigmoid/BCE pairs), torch-equivalent optimizers and full-batch,
mini-batch and stochastic training. ``import scratchnet`` needs NumPy only.

    >>> import numpy as np, scratchnet as sn
    >>> net = sn.Network(sn.ModelSpec((2, 8, 3), hidden="relu", output="softmax", loss="cross_entropy"))
    >>> history = net.fit(np.random.default_rng(0).normal(size=(30, 2)), np.arange(30) % 3,
    ...                   epochs=2, batch_size=8, optimizer={"name": "sgd", "lr": 0.1})
    >>> len(history.step_loss)
    8
"""

from . import activations, atomic, fused, gradcheck, initializers, losses, optimizers, registry
from .dropout import Dropout
from .errors import DivergenceWarning, ModelFileError, NonFiniteWarning
from .network import Network, load
from .normalization import BatchNorm1d
from .optimizers import SGD, Adam, AdamW, Optimizer, Parameter
from .registry import ACTIVATIONS, INITIALIZERS, LAYERS, LOSSES, OPTIMIZERS
from .serialization import save
from .spec import ModelSpec
from .training import History, batch_schedule, fit

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "INITIALIZERS", "LAYERS", "LOSSES", "OPTIMIZERS", "Adam", "AdamW", "BatchNorm1d",
    "DivergenceWarning", "Dropout",
    "History", "ModelFileError", "ModelSpec", "Network", "NonFiniteWarning", "Optimizer", "Parameter",
    "SGD", "activations", "atomic", "batch_schedule", "fit", "fused", "gradcheck", "initializers", "load",
    "losses", "optimizers", "registry", "save", "__version__",
]
