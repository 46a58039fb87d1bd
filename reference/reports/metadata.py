"""What a report was made with: versions, devices, BLAS, profile, seed, date and git commit.

:func:`collect_metadata` fills in whatever the caller did not give. It never imports torch:
versions come from the records themselves (what was measured) or from the installed package
metadata, and torch's BLAS is read only when torch is already loaded.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["collect_metadata", "blas_info", "git_commit", "VERSION_KEYS"]

VERSION_KEYS = ("scratchnet", "numpy", "torch", "python")


def _package_version(name: str) -> str:
    if name == "python":
        return platform.python_version()
    if name == "scratchnet":
        import scratchnet

        return scratchnet.__version__
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _versions_from_records(versions: Iterable[str]) -> dict[str, str]:
    """The versions the records were measured with (several values joined with ' | ')."""
    seen: dict[str, list[str]] = {}
    for text in versions:
        try:
            parsed = json.loads(text) if text else {}
        except (TypeError, ValueError):
            continue
        for key, value in parsed.items():
            if str(value) not in seen.setdefault(key, []):
                seen[key].append(str(value))
    return {k: " | ".join(v) for k, v in seen.items()}


def blas_info() -> dict[str, str]:
    """``{"blas_numpy": ..., "blas_torch": ...}``: library, version, kernel and threads.

    numpy's comes from threadpoolctl when installed, else ``numpy.show_config``; torch's from
    ``torch.__config__`` when torch is already imported (``""`` otherwise)."""
    info = {"blas_numpy": "", "blas_torch": ""}
    try:
        from threadpoolctl import threadpool_info

        libs = threadpool_info()
    except Exception:  # noqa: BLE001 - optional dependency, any failure means "unknown"
        libs = []
    for lib in libs:
        if lib.get("user_api") != "blas":
            continue
        details = ", ".join(str(x) for x in (lib.get("architecture"), lib.get("threading_layer"),
                                               f"{lib.get('num_threads')} threads") if x)
        text = f"{lib.get('internal_api')} {lib.get('version')} ({details}) [threadpoolctl]"
        owner = "blas_torch" if "torch" in str(lib.get("filepath", "")) else "blas_numpy"
        info[owner] = f"{info[owner]}; {text}" if info[owner] else text
    if not info["blas_numpy"]:
        try:
            import numpy as np

            blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            info["blas_numpy"] = f"{blas.get('name')} {blas.get('version')} [numpy config]"
        except Exception:  # noqa: BLE001 - numpy < 1.25 or an unusual build
            info["blas_numpy"] = "unknown"
    torch = sys.modules.get("torch")
    if torch is not None and not info["blas_torch"]:
        try:
            config = torch.__config__.show()
            blas = next((p.split("=", 1)[1] for p in config.replace(",", " ").split() if p.startswith("BLAS_INFO=")),
                        "unknown")
            threads = torch.get_num_threads()
            info["blas_torch"] = f"{blas} ({threads} threads) [torch config]"
        except Exception:  # noqa: BLE001
            info["blas_torch"] = "unknown"
    return info


def git_commit(directory: Path | None = None) -> str:
    """``HEAD``'s hash, ``+dirty`` when the tree has changes; ``""`` outside a git checkout."""
    cwd = directory or Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_metadata(records: Any = None, given: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The metadata header of a report: ``given`` first (it wins), the rest filled in.

    ``records`` is the records DataFrame (or ``None``): versions, device names and seeds are
    read from it, so the header says what the numbers were measured with."""
    given = {k: ("" if v is None else str(v)) for k, v in (given or {}).items()}
    measured: dict[str, str] = {}
    devices = seeds = ""
    if records is not None and len(records):
        measured = _versions_from_records(records["versions"].unique())
        devices = "; ".join(sorted(set(records["device_name"]) - {""}) or sorted(set(records["device"])))
        seeds = ", ".join(str(s) for s in sorted(set(int(s) for s in records["seed"])))
    meta: dict[str, str] = {
        "profile": "",
        "seed": seeds,
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "git_commit": git_commit(),
    }
    for key in VERSION_KEYS:
        meta[key] = measured.get(key) or _package_version(key)
    meta["devices"] = devices
    meta.update(blas_info())
    meta["cpu"] = _cpu_name()
    meta["platform"] = platform.platform()
    meta.update(given)
    return meta
