"""pytest plugin of the conformance suite.

Options
    ``--device {all,cpu,cuda}``  devices to compare on (``all``: CPU plus CUDA when present;
                                 CUDA cases are marked ``cuda`` and skipped, with the reason,
                                 where torch sees no GPU)
    ``--max-examples N``         hypothesis examples per property test (overrides the profile)
    ``--report-dir DIR``         where the run's records and reports go
                                 (default ``reports/latest/pytest``)
    ``--impl module:factory``    the implementation under test (default: scratchnet);
                                 ``factory()`` returns a :class:`reference.protocol.Implementation`

Fixtures
    ``impl``       the implementation under test
    ``device``     parametrises a test over the selected devices
    ``conformance`` the session's :class:`Recorder`: ``conformance.check(records)`` stores the
                   records, steers hypothesis toward the worst ``tol_ratio`` and fails the test
                   with a table of the failing tensors

Every record of the run — from every xdist worker — is collected, written at session end with
:func:`reference.reports.write_reports` and summarised in the terminal.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from .records import Record

_RECORDS_KEY = "scratchnet_records"
NO_CUDA_REASON = "CUDA not available: torch.cuda.is_available() is False on this machine"


class Recorder:
    """Collects records and refusal messages for one pytest process."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.refusals: list[str] = []

    def check(self, records: list[Record], *, steer: bool = True) -> None:
        """Store ``records``; fail with a readable table if any failed."""
        self.records.extend(records)
        if steer and records:
            try:
                from hypothesis import target
                finite = [r.tol_ratio for r in records if r.tol_ratio < float("inf")]
                target(max(finite, default=0.0), label="max tol_ratio")
            except Exception:  # noqa: BLE001 - outside a hypothesis test: nothing to steer
                pass
        failed = [r for r in records if r.status == "fail"]
        if failed:
            lines = [f"{len(failed)} of {len(records)} comparisons failed:"]
            for r in failed[:12]:
                where = f" step {r.step}" if r.step >= 0 else ""
                fd = f" finite differences side with: {r.fd_verdict}" if r.fd_verdict else ""
                lines.append(f"  {r.check:<13} {r.param:<18} tol_ratio={r.tol_ratio:.3g} "
                             f"max_abs_err={r.max_abs_err:.3g} worst at {r.worst_index}{where} "
                             f"[{r.hidden}→{r.output}+{r.loss} {r.reduction} {r.flavour} {r.dtype} {r.device}]{fd}")
            pytest.fail("\n".join(lines), pytrace=False)

    def refused(self, message: str) -> None:
        self.refusals.append(message)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("scratchnet conformance")
    group.addoption("--device", default="all", choices=("all", "cpu", "cuda"),
                    help="devices to compare on (default: all available)")
    group.addoption("--max-examples", type=int, default=None, help="hypothesis examples per property test")
    group.addoption("--report-dir", default=None, help="where records and reports are written "
                    "(default: reports/latest/pytest under the rootdir)")
    group.addoption("--impl", default=None, help="implementation under test as module:factory (default scratchnet)")


def pytest_configure(config: pytest.Config) -> None:
    config._scratchnet_recorder = Recorder()  # type: ignore[attr-defined]
    config._scratchnet_worker_records = []  # type: ignore[attr-defined]
    n = config.getoption("--max-examples")
    if n is not None:
        if n < 1:
            raise pytest.UsageError(f"--max-examples must be >= 1, got {n}")
        from hypothesis import settings
        settings.register_profile("cli-override", settings(settings.default, max_examples=n))
        settings.load_profile("cli-override")


def load_implementation(spec: str | None) -> Any:
    """Resolve ``module:factory`` to an implementation (scratchnet when ``None``)."""
    from .protocol import ScratchnetImplementation

    if spec is None:
        return ScratchnetImplementation()
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise pytest.UsageError(f"--impl must look like 'package.module:factory', got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise pytest.UsageError(f"--impl {spec!r}: cannot load it ({exc})") from None
    impl = factory() if callable(factory) and not hasattr(factory, "build") else factory
    if not (hasattr(impl, "build") and hasattr(impl, "name")):
        raise pytest.UsageError(f"--impl {spec!r} must give an object with .name and .build(spec, state)")
    return impl


@pytest.fixture(scope="session")
def impl(pytestconfig: pytest.Config) -> Any:
    return load_implementation(pytestconfig.getoption("--impl"))


@pytest.fixture(scope="session")
def conformance(pytestconfig: pytest.Config) -> Recorder:
    return pytestconfig._scratchnet_recorder  # type: ignore[attr-defined]


def _selected_devices(config: pytest.Config) -> list[Any]:
    """``--device all``: CPU, plus CUDA when torch sees it (the suite's ``test_cuda_present``
    states the skip once). An explicit ``--device cuda`` without a GPU skips each case with
    the reason."""
    from ._torch import torch_module

    choice = config.getoption("--device")
    has_cuda = torch_module().cuda.is_available()
    wanted = (["cpu", "cuda"] if has_cuda else ["cpu"]) if choice == "all" else [choice]
    skip_cuda = pytest.mark.skipif(not has_cuda, reason=NO_CUDA_REASON)
    return [pytest.param(d, marks=[pytest.mark.cuda, skip_cuda] if d == "cuda" else [], id=d) for d in wanted]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", _selected_devices(metafunc.config))


# -- collecting across xdist workers and writing at the end -------------------------------------
def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    recorder: Recorder = config._scratchnet_recorder  # type: ignore[attr-defined]
    if _is_worker(config):
        config.workeroutput[_RECORDS_KEY] = json.dumps(  # type: ignore[attr-defined]
            {"records": [r.to_dict() for r in recorder.records], "refusals": recorder.refusals})
        return
    for payload in config._scratchnet_worker_records:  # type: ignore[attr-defined]
        data = json.loads(payload)
        recorder.records.extend(Record(**r) for r in data["records"])
        recorder.refusals.extend(data["refusals"])
    if recorder.records:
        config._scratchnet_written = _write(config, recorder)  # type: ignore[attr-defined]


def pytest_testnodedown(node: Any, error: Any) -> None:
    payload = getattr(node, "workeroutput", {}).get(_RECORDS_KEY)
    if payload:
        node.config._scratchnet_worker_records.append(payload)


def _write(config: pytest.Config, recorder: Recorder) -> Path | str:
    out = Path(config.getoption("--report-dir") or Path(config.rootpath) / "reports" / "latest" / "pytest")
    try:
        from hypothesis import settings

        from ._torch import versions
        from .reports import write_reports
    except ImportError as exc:
        return f"not written ({exc})"
    metadata = {"source": "pytest", "profile": getattr(settings, "_current_profile", ""),
                "refused_pairs": len(recorder.refusals), **versions()}
    write_reports(recorder.records, out, metadata)
    return out


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _is_worker(config):
        return
    recorder: Recorder = config._scratchnet_recorder  # type: ignore[attr-defined]
    if not recorder.records and not recorder.refusals:
        return
    tr = terminalreporter
    tr.section("scratchnet conformance")
    records = recorder.records
    combos = {(r.hidden, r.output, r.loss, r.reduction, r.flavour, r.dtype, r.device, r.optimizer, r.gd_mode)
              for r in records}
    tr.write_line(f"{len(records)} comparisons over {len(combos)} combinations; "
                  f"{len(recorder.refusals)} undefined pairs refused as required")
    worst: dict[tuple[str, str], Record] = {}
    for r in records:
        if r.status == "ref_nonfinite":
            continue
        key = (r.check, r.dtype)
        if key not in worst or r.tol_ratio > worst[key].tol_ratio:
            worst[key] = r
    tr.write_line(f"{'check':<14}{'dtype':<9}{'worst tol_ratio':>16}  where")
    for (check, dtype), r in sorted(worst.items()):
        tr.write_line(f"{check:<14}{dtype:<9}{r.tol_ratio:>16.3g}  {r.param} "
                      f"[{r.hidden}→{r.output}+{r.loss} {r.reduction} {r.flavour} {r.device}]")
    counts = {s: sum(r.status == s for r in records) for s in ("pass", "fail", "ref_nonfinite")}
    tr.write_line(f"status: {counts['pass']} pass, {counts['fail']} fail, "
                  f"{counts['ref_nonfinite']} where torch's own modular path broke down (not counted as failures)")
    for r in [r for r in records if r.status == "fail"][:20]:
        tr.write_line(f"FAIL {r.check} {r.param} tol_ratio={r.tol_ratio:.3g} "
                      f"[{r.hidden}→{r.output}+{r.loss} {r.reduction} {r.flavour} {r.dtype} {r.device}]"
                      + (f" fd sides with {r.fd_verdict}" if r.fd_verdict else ""))
    written = getattr(config, "_scratchnet_written", None)
    if written is not None:
        tr.write_line(f"records and reports: {written}")
