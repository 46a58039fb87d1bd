"""reference — the PyTorch harness (installed as ``scratchnet_reference``) that measures how far an
implementation is from torch.

Build the identical torch model (:func:`build_torch_model`), compare forward outputs, losses
and every gradient (:func:`compare_model`), train both in lockstep (:func:`lockstep`), and
break ties with central finite differences. Implementations plug in through
:mod:`.core.protocol`; scratchnet is the first. torch is imported on first use, with an
install hint when it is missing.
"""

from .core.compare import compare_model, flavours_for, prepare_batch
from .core.lockstep import GD_MODES, lockstep, optimizer_label
from .core.protocol import Implementation, Model, ScratchnetImplementation, initial_state
from .core.records import CHECKS, Combination, Record
from .core.tolerances import TOLERANCES, tolerance
from .core.torch_model import build_torch_model, load_into_network

__all__ = ["CHECKS", "GD_MODES", "TOLERANCES", "Combination", "Implementation", "Model", "Record",
           "ScratchnetImplementation", "build_torch_model", "compare_model", "flavours_for",
           "initial_state", "load_into_network", "lockstep", "optimizer_label", "prepare_batch", "tolerance"]
