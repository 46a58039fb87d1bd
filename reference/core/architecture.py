"""The architecture a check runs on: the user's, not only ours.

An implementation declares the architectures its ``build`` accepts in its capabilities
(``"architectures": [...]``), each entry one of

* a tuple of layer sizes, fixed — ``(784, 30, 10)``: inputs, hidden widths, classes;
* an int, a depth — ``1``: one hidden layer, widths the harness's (``5-7-4``);
* ``"any"`` — any depth and widths (the default, ``5-7-6-4``).

The first entry is the one every matrix case and training run is built with. Without a
declaration the adapter check finds what ``build`` accepts — the default two hidden layers,
then one — and says which it chose (:attr:`Architecture.how`).

The harness's own widths are all different (a transposed weight or a misplaced array cannot hide
behind a matching shape): inputs 5, hidden 7, 6, 8, 9, …, classes 4; the adapter check builds
smaller ones (3, hidden 5, 4, 6, …, classes 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Architecture", "ANY", "DEFAULT_DEPTH", "parse_architectures"]

#: Hidden layers of the default architecture (``5-7-6-4``).
DEFAULT_DEPTH = 2
_CASE_INPUTS, _CASE_CLASSES, _CASE_HIDDEN = 5, 4, (7, 6, 8, 9, 10, 11, 12, 13)
_SMOKE_INPUTS, _SMOKE_CLASSES, _SMOKE_HIDDEN = 3, 2, (5, 4, 6, 7, 8, 9, 10, 11)


@dataclass(frozen=True)
class Architecture:
    """Fixed ``sizes``, or a ``depth`` (hidden layers) with the harness's widths, or neither: any.
    ``how``: ``"declared"``, ``"found"`` (the adapter check tried ``build``) or ``"default"``;
    ``why``: what the finding saw (``"2 hidden layers: build raised NotImplementedError"``)."""

    sizes: tuple[int, ...] | None = None
    depth: int | None = None
    how: str = "default"
    why: str = ""

    @property
    def hidden_layers(self) -> int:
        if self.sizes is not None:
            return len(self.sizes) - 2
        return DEFAULT_DEPTH if self.depth is None else self.depth

    def case_sizes(self) -> tuple[int, ...]:
        """The sizes the matrix cases and the training runs are built with."""
        if self.sizes is not None:
            return self.sizes
        return (_CASE_INPUTS, *_CASE_HIDDEN[:self.hidden_layers], _CASE_CLASSES)

    def smoke_sizes(self) -> tuple[int, ...]:
        """The sizes the adapter check builds (small; fixed sizes are what they are)."""
        if self.sizes is not None:
            return self.sizes
        return (_SMOKE_INPUTS, *_SMOKE_HIDDEN[:self.hidden_layers], _SMOKE_CLASSES)

    def describe(self) -> str:
        """``"784-30-10 (declared)"``, ``"1 hidden layer, checked as 5-7-4 (found: …)"``."""
        sizes = "-".join(map(str, self.case_sizes()))
        if self.sizes is not None:
            what = sizes
        else:
            n = self.hidden_layers
            what = f"{n} hidden layer{'s' if n != 1 else ''}, checked as {sizes}"
        if self.how == "found":
            return f"{what} (not declared; found by building: {self.why})" if self.why else f"{what} (found)"
        return f"{what} ({self.how})"


#: Any depth and widths: the harness's default.
ANY = Architecture()


def _entry(raw: Any) -> Architecture | str:
    """One declared entry, or the problem with it in words."""
    if isinstance(raw, str):
        return ANY if raw == "any" else f"{raw!r} is not an architecture"
    if isinstance(raw, bool):
        return f"{raw!r} is not an architecture"
    if isinstance(raw, int):
        return Architecture(depth=raw, how="declared") if raw >= 0 else f"depth {raw} is negative"
    if isinstance(raw, Iterable):
        sizes = tuple(raw)
        if len(sizes) < 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes):
            return f"{raw!r}: layer sizes are a tuple of at least two positive ints, inputs first"
        return Architecture(sizes=sizes, how="declared")
    return f"{raw!r} is not an architecture"


def parse_architectures(raw: Any, where: str) -> tuple[tuple[Architecture, ...], list[str]]:
    """The declared ``architectures`` entries, and the problems with them (messages naming
    ``where``, e.g. ``"MyNet.capabilities['architectures']"``)."""
    if isinstance(raw, str | int) or not isinstance(raw, Iterable):
        raw = [raw]
    elif isinstance(raw, tuple) and raw and all(isinstance(n, int) for n in raw):
        raw = [raw]  # one tuple of sizes given without the list around it
    found, problems = [], []
    for item in raw:
        got = _entry(item)
        if isinstance(got, str):
            problems.append(f"{where}: {got} — declare fixed sizes such as (784, 30, 10), a number of hidden "
                            f"layers such as 1, or \"any\"")
        else:
            found.append(got if got is not ANY else Architecture(how="declared"))
    return tuple(found), problems
