"""The batch order of a training run, as a written specification the reference derives itself.

What :func:`scratchnet.fit` (and :func:`scratchnet.batch_schedule`) promise, in words:

* one generator for the whole run, ``rng = numpy.random.default_rng(seed)``;
* epoch ``e = 0, 1, …``: the sample order is ``rng.permutation(n)``, drawn once per epoch from that
  one generator (so epoch 1 is the generator's *second* permutation, not a reseeded first), or
  ``0 … n − 1`` without shuffling (the generator is then not used);
* the order is cut into consecutive slices of ``b = n`` (``batch_size=None``: full batch) or
  ``b = min(batch_size, n)`` samples, ``ceil(n / b)`` per epoch, the last one partial when ``b``
  does not divide ``n``;
* a mean-reduced loss on a batch is averaged over that batch's own size (``DataLoader`` with
  ``drop_last=False``): the last, partial batch is *not* rescaled by ``size / b``.

This module writes that out with its own code, so a ``fit`` that ignores its seed, reseeds every
epoch or drops or rescales the last batch is caught by :mod:`~scratchnet_reference.core.fit_lockstep`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["epoch_batches", "flat_schedule"]


def epoch_batches(n: int, batch_size: int | None, epochs: int, *, shuffle: bool = True,
                  seed: int = 0) -> list[list[np.ndarray]]:
    """``batches[epoch][step]``: the index arrays of every step (see the module docstring)."""
    if n < 1 or epochs < 0 or (batch_size is not None and batch_size < 1):
        raise ValueError(f"need n >= 1, epochs >= 0 and batch_size None or >= 1, got n={n}, epochs={epochs}, "
                         f"batch_size={batch_size}")
    size = n if batch_size is None else min(batch_size, n)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(epochs):
        order = rng.permutation(n) if shuffle else np.arange(n)
        out.append([order[start:start + size] for start in range(0, n, size)])
    return out


def flat_schedule(n: int, batch_size: int | None, steps: int, *, shuffle: bool = True,
                  seed: int = 0) -> list[np.ndarray]:
    """The first ``steps`` batches of :func:`epoch_batches`, across as many epochs as they take."""
    per_epoch = -(-n // (n if batch_size is None else min(batch_size, n)))
    epochs = -(-steps // per_epoch)
    return [idx for epoch in epoch_batches(n, batch_size, epochs, shuffle=shuffle, seed=seed)
            for idx in epoch][:steps]
