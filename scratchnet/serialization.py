"""Save and load a network: spec (JSON) and weights in one ``.npz``, no pickle.

The archive holds ``__spec__`` (the :class:`~scratchnet.ModelSpec` as a JSON string) and one
array per ``state_dict`` entry. Loading uses ``allow_pickle=False`` and reproduces every weight
bit for bit. Files are written to a temporary name and renamed, so an interrupted save never
leaves a half-written model.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .network import Network
from .spec import ModelSpec

__all__ = ["save", "load"]

_SPEC_KEY = "__spec__"


def save(network: Network, path: str | os.PathLike) -> Path:
    """Write ``network`` to ``path`` (``.npz`` is appended if missing); returns the path."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    arrays = {_SPEC_KEY: np.array(network.spec.to_json()), **network.state_dict()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def load(path: str | os.PathLike) -> Network:
    """Rebuild the network saved at ``path``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved network at {str(path)!r}")
    with np.load(path, allow_pickle=False) as archive:
        if _SPEC_KEY not in archive.files:
            raise ValueError(f"{str(path)!r} is not a scratchnet model: it has no {_SPEC_KEY!r} entry")
        spec = ModelSpec.from_json(str(archive[_SPEC_KEY]))
        state = {name: archive[name] for name in archive.files if name != _SPEC_KEY}
    return Network.from_spec(spec, state)
