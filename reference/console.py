"""What every subcommand of ``scratchnet-conformance`` shares: the program name, the usage error
(one line on stderr, exit code 2), the argument parser that raises it, argparse number types and
the progress bar."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

__all__ = ["PROG", "UsageError", "Parser", "ProgressBar", "StageLine", "bounded"]

PROG = "scratchnet-conformance"


class UsageError(Exception):
    """Bad arguments or a missing/corrupt input: one line on stderr, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are :class:`UsageError` (the CLI prints one line)."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse hook
        raise UsageError(f"{self.prog}: {message} (see --help)")


def bounded(cast: type, low: float) -> Any:
    """An argparse ``type``: ``cast(text)`` (int or float), finite and ``>= low``, else a clear error."""
    what = "a whole number" if cast is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not (math.isfinite(value) and value >= low):
            raise argparse.ArgumentTypeError(f"must be {what} ≥ {low:g}, got {text!r}")
        return value

    return parse


class ProgressBar:
    """A small progress bar on ``stream`` (stderr): redrawn in place on a terminal, one line per
    10 % otherwise (CI logs). :meth:`wrap` names the item that is *running* (on a terminal at once;
    in a log on each 10 % line), so a job that takes long is named while it does."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True, width: int = 30,
                 unit: str = ""):
        self.total, self.stream, self.enabled, self.width = total, stream or sys.stderr, enabled, width
        self.unit = f" {unit}" if unit else ""
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self._last_decile = -1

    def update(self, done: int, label: str = "", running: bool = False) -> None:
        """Show ``done`` of the total; ``label`` (``running``: the item now running, also named on a log's lines)."""
        if not self.enabled or self.total == 0:
            return
        elapsed = time.perf_counter() - self.start
        frac = done / self.total
        eta = elapsed / frac - elapsed if frac > 0 else math.nan
        eta_text = f"{eta:4.0f}s left" if math.isfinite(eta) else "        "
        if self.tty:
            filled = int(self.width * frac)
            bar = "#" * filled + "." * (self.width - filled)
            text = f"\r[{bar}] {done}/{self.total}{self.unit} {elapsed:5.1f}s {eta_text} {label[:56]:<56}"
            self.stream.write(text)
            if done == self.total:
                self.stream.write("\n")
            self.stream.flush()
        else:
            decile = int(frac * 10)
            if decile != self._last_decile:
                self._last_decile = decile
                suffix = f"; running {label}" if running and label and done < self.total else ""
                self.stream.write(f"progress: {100 * frac:3.0f}% ({done}/{self.total}{self.unit}) {elapsed:.1f}s"
                                  f"{suffix}\n")
                self.stream.flush()

    def wrap(self, items: Sequence[Any], label=lambda item: "") -> Iterator[Any]:
        """Yield ``items``, showing before each one ``running <label(item)>``."""
        done = 0
        for item in items:
            self.update(done, f"running {label(item)}" if self.tty else label(item), running=True)
            yield item
            done += 1
        self.update(done)


class StageLine:
    """Progress through a phase of named stages (writing a report folder): ``title`` then each
    stage's name as it starts, on one line of ``stream`` (stderr), and the phase's time at the end::

        writing reports into reports/latest/: records.csv … matrix.csv … plots … report.html (21.4 s)
    """

    def __init__(self, title: str, stream: TextIO | None = None, enabled: bool = True):
        self.stream, self.enabled = stream or sys.stderr, enabled
        self.start = time.perf_counter()
        self.seconds = math.nan
        self._first = True
        if enabled:
            self.stream.write(title)
            self.stream.flush()

    def stage(self, name: str) -> None:
        if self.enabled:
            self.stream.write(f" {name}" if self._first else f" … {name}")
            self.stream.flush()
        self._first = False

    def done(self) -> None:
        self.seconds = time.perf_counter() - self.start
        if self.enabled:
            self.stream.write(f" ({self.seconds:.1f} s)\n")
            self.stream.flush()
