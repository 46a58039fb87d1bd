"""Whether a run and a baseline can be compared at all: the metadata that changes what a ratio means.

The gate compares ratios row by row; that comparison means something only when both sides were
measured the same way. :func:`metadata_differences` lists every difference of the metadata that
matters (:data:`RULES`), each with a severity:

* ``refuse`` — the comparison would be meaningless or hide a failure: another torch major.minor
  (torch is the oracle), another Python or NumPy major version, another plan (devices, dtypes,
  training, ``--quick``), another implementation, a run whose jobs raised (``errors`` is not
  ``none``: its failing rows are crashes, not measurements), a partial run;
* ``warn`` — it may move ratios below the gate's floors but does not change what is compared:
  another torch/NumPy/Python patch or minor version, BLAS, CPU, ``--fd`` mode, profile name.

A key missing on one side is a ``warn`` (an older report did not record it). Keys that are about
the run itself and differ every time (date, run id, git commit, wall time) are not compared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["Difference", "metadata_differences", "format_differences", "RULES"]


@dataclass(frozen=True)
class Difference:
    key: str
    run: str
    baseline: str
    severity: str  # "refuse" or "warn"
    why: str

    def __str__(self) -> str:
        run, base = self.run or "(not recorded)", self.baseline or "(not recorded)"
        return f"{self.key}: run {run!r} vs baseline {base!r} — {self.why}"


def _release(text: str, parts: int) -> tuple[str, ...]:
    return tuple(text.split("+")[0].split(".")[:parts])


def _version(parts: int, what: str) -> Callable[[str, str], tuple[str, str]]:
    def rule(run: str, base: str) -> tuple[str, str]:
        if _release(run, parts) != _release(base, parts):
            return "refuse", f"another {what} release: the numbers were computed by different code"
        return "warn", f"another {what} build or patch: ratios may move below the gate's floors"
    return rule


def _plan(run: str, base: str) -> tuple[str, str]:
    fields_run = dict(p.split("=", 1) for p in run.split() if "=" in p)
    fields_base = dict(p.split("=", 1) for p in base.split() if "=" in p)
    changed = sorted(k for k in fields_run.keys() | fields_base.keys() if fields_run.get(k) != fields_base.get(k))
    if changed == ["fd"]:
        return "warn", "another finite-difference mode: it changes fd_verdict, not the ratios"
    return "refuse", f"another plan ({', '.join(changed)} differ): the two cover different rows"


def _errors(run: str, base: str) -> tuple[str, str]:
    return "refuse", "jobs raised: their rows are crashes, not measurements — fix them and run again"


def _always(severity: str, why: str) -> Callable[[str, str], tuple[str, str]]:
    return lambda run, base: (severity, why)


#: key → rule(run value, baseline value) → (severity, why), applied when the values differ.
RULES: dict[str, Callable[[str, str], tuple[str, str]]] = {
    "torch": _version(2, "torch"),
    "numpy": _version(1, "NumPy"),
    "python": _version(1, "Python"),
    "scratchnet": _always("warn", "another scratchnet version"),
    "plan": _plan,
    "impl": _always("refuse", "another implementation: its rows are not the baseline's rows"),
    "partial": _always("refuse", "a partial run (interrupted or failed): not every job was measured"),
    "errors": _errors,
    "devices": _always("warn", "other device names: rows of a device only one side has are not compared"),
    "blas_numpy": _always("warn", "another BLAS for NumPy: ratios may move below the gate's floors"),
    "blas_torch": _always("warn", "another BLAS for torch: ratios may move below the gate's floors"),
    "cpu": _always("warn", "another CPU: ratios may move below the gate's floors"),
    "profile": _always("warn", "another profile name"),
}

#: Keys judged on each side alone: any value but the clean one is refused, even when both sides agree.
_CLEAN = {"errors": "none", "partial": ""}
#: Keys whose absence is a value: a run without ``impl`` ran scratchnet itself.
_ABSENCE_MEANS_DEFAULT = ("impl",)


def metadata_differences(run: Mapping[str, str], baseline: Mapping[str, str]) -> list[Difference]:
    """Every difference of :data:`RULES`' keys between the two metadata (see the module docstring).
    ``errors`` and ``partial`` are judged on each side alone: a run or baseline whose jobs raised is
    refused even when both raised the same way."""
    out: list[Difference] = []
    for key, rule in RULES.items():
        r, b = str(run.get(key, "")), str(baseline.get(key, ""))
        if key in _CLEAN:
            for side, value in (("run", r), ("baseline", b)):
                if value and value != _CLEAN[key]:
                    severity, why = rule(r, b)
                    out.append(Difference(key, r, b, severity, f"the {side} says {value[:200]!r}: {why}"))
            continue
        if r == b:
            continue
        if (not r or not b) and key not in _ABSENCE_MEANS_DEFAULT:
            out.append(Difference(key, r, b, "warn", "recorded on one side only (an older report)"))
            continue
        severity, why = rule(r, b)
        out.append(Difference(key, r, b, severity, why))
    return out


def format_differences(differences: list[Difference]) -> str:
    return "\n".join(f"  - [{d.severity}] {d}" for d in differences)
