"""How every op-level check draws its inputs: the same examples for the same functions, whoever
checks them and whatever that process has imported.

:func:`draw_examples` runs ``body(data)`` under ``@given(st.data())`` ``max_examples`` times —
generate phase only (nothing is shrunk: the checker never raises inside it, every example is kept),
no database, no deadline, no health checks, derandomized unless a ``seed`` is given — with two
things held still:

* **Hypothesis's local constants.** Hypothesis (6.170 here) mixes into its draws, with a small
  probability per choice, the literals of every module in ``sys.modules`` outside site-packages:
  the learner's own files and whichever of the harness's modules happen to be loaded. Then the same
  functions drawn in two processes get different inputs (measured in grading: a pool worker that had
  the CLI's modules loaded drew other examples than a fresh interpreter; one submission's
  ``softmax_backward`` tol_ratio came out 3.47e10 in one and 1.56e10 in the other). While a check
  draws, that pool is empty and the per-choice cache built from it is cleared (on the way in and on
  the way out), so the examples come from the strategies and the seed alone. This touches an
  internal of Hypothesis (``providers._get_local_constants``, ``providers.Constants``,
  ``providers.CONSTANTS_CACHE``); where any of them is missing, nothing is changed.
* **Hypothesis's home folder**, where it keeps its constants cache (``./.hypothesis``): a temporary
  folder while the checks run, so nothing is written into the learner's working folder.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["draw_examples", "strategies_alone", "hypothesis_home"]


@contextlib.contextmanager
def strategies_alone() -> Iterator[bool]:
    """Hypothesis's pool of local constants empty while the block runs; yields whether it could be
    (False where this Hypothesis lacks the internals: then nothing is changed)."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - the internal module moved: nothing to hold still
        yield False
        return
    original = getattr(providers, "_get_local_constants", None)
    constants = getattr(providers, "Constants", None)
    cache = getattr(providers, "CONSTANTS_CACHE", None)
    if original is None or constants is None or not hasattr(cache, "cache"):
        yield False
        return
    empty = constants()
    cache.cache.clear()  # per (choice type, constraints), the local constants seen before: built afresh
    providers._get_local_constants = lambda: empty
    try:
        yield True
    finally:
        providers._get_local_constants = original
        cache.cache.clear()  # the empty pool's entries: gone, so later draws elsewhere see their constants


@contextlib.contextmanager
def hypothesis_home() -> Iterator[None]:
    """Hypothesis's home folder (``./.hypothesis``) a temporary one while the block runs, then back."""
    from hypothesis import configuration

    key = "__hypothesis_home_directory"
    before = configuration.__dict__.get(key)
    with tempfile.TemporaryDirectory(prefix="scratchnet-hypothesis-") as tmp:
        configuration.set_hypothesis_home_dir(tmp)
        try:
            yield
        finally:
            configuration.__dict__[key] = before


def draw_examples(body: Callable[[Any], None], *, max_examples: int, seed: int | None = None) -> None:
    """Call ``body(data)`` on ``max_examples`` hypothesis draws (``data`` is ``st.data()``'s), as the
    module docstring says: derandomized (``seed=None``) or from ``seed``; ``body`` keeps what it
    needs and must not raise (a raise would make hypothesis shrink and re-raise it)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    @settings(max_examples=max_examples, derandomize=seed is None, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.data())
    def draw(data: Any) -> None:
        body(data)

    if seed is not None:
        draw = hypothesis_seed(seed)(draw)
    with hypothesis_home(), strategies_alone():
        draw()
