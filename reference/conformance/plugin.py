"""pytest plugin of the conformance suite.

It is loaded through its entry point in every pytest session of an environment where scratchnet
is installed, so it takes nothing a user's project may own: every option carries the
``--scratchnet-`` prefix (as ``--hypothesis-*`` and ``--benchmark-*`` do), the ``device``
parametrisation applies only to tests that request the ``conformance`` fixture, and a plain run
writes no file.

Options
    ``--scratchnet-impl module:factory``   the implementation under test (default: scratchnet):
                                 ``package.module:factory`` or ``path/to/adapter.py:factory``;
                                 ``factory`` is an implementation object, a class or a function
                                 returning one (see :mod:`scratchnet_reference.core.adapter`). It is
                                 validated at start-up: a malformed adapter stops the run with what
                                 is missing.
    ``--scratchnet-device {all,cpu,cuda}``  devices to compare on (``all``: CPU plus CUDA when
                                 present; CUDA cases are marked ``cuda`` and skipped, with the
                                 reason, where torch sees no GPU)
    ``--scratchnet-max-examples N``   hypothesis examples per property test (overrides the profile;
                                 1 … 10**6)
    ``--scratchnet-report-dir DIR``   write the run's records (CSV) into DIR; also the ini setting
                                 ``scratchnet_report_dir`` (relative to the ini file). Without
                                 either, nothing is written. Checked at start: a file, a path
                                 under a file or an unwritable place stops the run at once.
    ``--scratchnet-report-html``  render the Markdown/HTML report and plots too (default: CSVs)
    ``--scratchnet-timeout SECONDS``  with ``--scratchnet-impl``, the packaged matrix tests run each
                                 job in a killable worker (:mod:`..core.isolation`), this long per
                                 job (default :data:`~..core.isolation.DEFAULT_TIMEOUT_S`): a job
                                 that hangs, exits or raises anything fails its test with the named
                                 failure and the user's stack, and the session goes on

Fixtures
    ``impl``         the implementation under test (``NotImplementedError`` from its ``build`` or
                     ``configure_optimizer`` skips the test as not implemented)
    ``capabilities`` its :class:`scratchnet_reference.core.adapter.Capabilities`
    ``device``       parametrises a test that uses ``conformance`` over the selected devices
    ``conformance``  the session's :class:`Recorder`: ``conformance.check(records, job=...)`` stores
                     the records — as the records of that job of the matrix
                     (:class:`~scratchnet_reference.conformance.runner.RunPlan`), or without ``job``
                     as drawn records (hypothesis) kept apart from the matrix —, steers hypothesis
                     toward the worst ``tol_ratio`` and fails the test with a table of the failing
                     tensors and their diagnosis;
                     ``conformance.require(...)`` / ``require_case`` / ``require_training`` skip
                     what the implementation does not implement ("not implemented by <impl>: …")

A floating-point warning (``RuntimeWarning``: overflow in ``exp``, …) raised inside the code of an
implementation given with ``--scratchnet-impl`` is recorded and counted in the summary, never
turned into a test error: a sigmoid that overflows harmlessly to 0.0 is correct. (scratchnet's own
tests keep such warnings as errors: pyproject's ``filterwarnings``.)

Every record of the run — from every xdist worker — is collected into one
:class:`~scratchnet_reference.conformance.session.ConformanceRun` (the object the ``run`` command
uses too), written at session end when a report folder is given — the matrix's records in the
plan's job order, so the folder holds the same tables ``scratchnet-conformance run`` writes for the
same jobs, and CI gates it instead of running the matrix again — and summarised in the terminal,
with the diagnosis of each failing parameter, the worst failing example hypothesis found, and the
count of what was not implemented.

The deterministic matrix is also packaged, so a project that depends on scratchnet runs it
against its own network with
``pytest --pyargs scratchnet_reference.conformance.tests --scratchnet-impl pkg.mod:factory``.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import textwrap
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pytest

from ..core.isolation import DEFAULT_TIMEOUT_S
from ..core.records import Record
from .runner import RunPlan
from .session import ConformanceRun, Job
from .session import load_implementation as _load_implementation

_RECORDS_KEY = "scratchnet_records"
NO_CUDA_REASON = "CUDA not available: torch.cuda.is_available() is False on this machine"


class Recorder:
    """Collects records, refusal messages, what was not implemented and the failing examples for
    one pytest process."""

    def __init__(self, impl_name: str = "scratchnet", capabilities: Any = None) -> None:
        #: what the session found: the matrix's records by job, the drawn ones, refusals, skips
        self.run = ConformanceRun(RunPlan(), impl_name=impl_name, source="pytest")
        self.capabilities = capabilities
        #: test id -> (description, problem, worst tol_ratio) of its worst failing example (hypothesis
        #: replays the smallest one last, which can hide how large the error is)
        self.examples: dict[str, tuple[str, Any, float]] = {}
        #: test id -> lines for the terminal summary, once diagnosed at session end
        self.example_lines: dict[str, list[str]] = {}
        self._problem: Any = None
        #: floating-point warnings raised inside a user's implementation (``--scratchnet-impl``)
        self.user_warnings = UserWarnings()
        #: seconds per job in the worker (``--scratchnet-timeout``); None: jobs run in this process
        self.timeout: float | None = None
        self.worker: Any = None

    # -- running a job of the user's code ----------------------------------------------------
    def call(self, impl: Any, fn: Any, *args: Any, job: Job) -> Any:
        """``fn(impl, *args)`` (a matrix job's check), in the session's worker when the
        implementation is a user's (see ``--scratchnet-timeout``): a hang, an exit or any exception
        out of it records the job's error rows and fails the test with the named failure."""
        if self.timeout is None:
            return fn(impl, *args)
        from ..core.isolation import UserCodeFailure, Worker
        from .session import _error_records, job_label

        if self.worker is None:
            self.worker = Worker(impl, name=f"implementation {self.impl_name!r}", timeout=self.timeout)
        try:
            status, value, rows = self.worker.call(_job_in_worker, fn, args, label=f"job {job_label(job)}")
        except UserCodeFailure as exc:
            self.run.errors.append(f"{job_label(job)}: {' '.join(str(exc).split())}"[:300])
            self.run.add(_error_records(self.impl_name, job, exc, self.capabilities), job)
            pytest.fail(exc.report(), pytrace=False)
        self.user_warnings.add_rows(rows)
        if status == "skip":
            self.run.skipped("test", _current_test(), value.split(": ", 1)[-1])
            pytest.skip(value)
        if status == "not_implemented":
            raise NotImplementedError(value)
        return value

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    @property
    def impl_name(self) -> str:
        return self.run.impl_name

    @impl_name.setter
    def impl_name(self, name: str) -> None:
        self.run.impl_name = name

    @property
    def records(self) -> list[Record]:
        """Every record of the session: the matrix's, in the plan's job order, then the drawn ones."""
        return self.run.all_records

    @property
    def refusals(self) -> list[str]:
        return self.run.refusals

    @property
    def not_implemented(self) -> list[tuple[str, str, str]]:
        return self.run.not_implemented

    # -- not implemented ---------------------------------------------------------------------
    def skip_not_implemented(self, what: str) -> None:
        """Count ``what`` as not implemented and skip the test, saying so."""
        self.run.skipped("test", _current_test(), what)
        pytest.skip(f"not implemented by {self.impl_name}: {what}")

    def _caps(self) -> Any:
        if self.capabilities is None:
            from ..core.capabilities import Capabilities

            self.capabilities = Capabilities.everything()
        return self.capabilities

    def require(self, **what: Any) -> None:
        """Skip unless the implementation declares everything named (``hidden=[...]``,
        ``output=``, ``loss=``, ``reduction=``, ``dtype=``)."""
        missing = self._caps().missing(**what)
        if missing:
            self.skip_not_implemented(missing)

    def require_case(self, case: Any) -> None:
        missing = self._caps().missing_for_case(case)
        if missing:
            self.skip_not_implemented(missing)

    def require_training(self, optimizer: str, dtype: str) -> None:
        missing = self._caps().missing_for_training(optimizer, dtype)
        if missing:
            self.skip_not_implemented(missing)

    # -- checking ----------------------------------------------------------------------------
    def remember(self, problem: Any) -> None:
        """``(spec, state, x, y, device)`` of the records the next :meth:`check` gets."""
        self._problem = problem

    def check(self, records: list[Record], *, steer: bool = True, problem: Any = None, job: Job | None = None
              ) -> None:
        """Store ``records`` — the records of ``job`` of the matrix, or drawn records without one
        (see :class:`~scratchnet_reference.conformance.session.ConformanceRun`); fail with a readable
        table if any failed. ``problem`` — ``(spec, state, x, y, device)`` of the records, or the one
        given to :meth:`remember` — is kept for a full diagnosis at the end."""
        problem, self._problem = problem or self._problem, None
        records = list(records)
        if steer and records:
            try:
                from hypothesis import target
                finite = [r.tol_ratio for r in records if r.tol_ratio < float("inf")]
                target(max(finite, default=0.0), label="max tol_ratio")
            except Exception:  # noqa: BLE001 - outside a hypothesis test: nothing to steer
                pass
        if any(r.status == "fail" for r in records) and not any(r.diagnosis for r in records):
            from ..diagnosis.network import annotate

            annotate(records)  # from the records alone: cheap, fine inside a hypothesis search
        self.run.add(records, job)
        failed = [r for r in records if r.status == "fail"]
        if failed:
            lines = [f"{len(failed)} of {len(records)} comparisons failed:"]
            if problem is not None:
                description = _describe(problem)
                worst = max((r.tol_ratio for r in failed), default=0.0)
                kept = self.examples.get(_current_test())
                if kept is None or not worst < kept[2]:  # the worst example is diagnosed, not the shrunk one
                    self.examples[_current_test()] = (description, problem, worst)
                lines.append(f"  example: {description}")
            for r in failed[:12]:
                where = f" step {r.step}" if r.step >= 0 else ""
                fd = f" finite differences side with: {r.fd_verdict}" if r.fd_verdict else ""
                lines.append(f"  {r.check:<13} {r.param:<18} tol_ratio={r.tol_ratio:.3g} "
                             f"max_abs_err={r.max_abs_err:.3g} worst at {r.worst_index}{where} "
                             f"[{r.hidden}→{r.output}+{r.loss} {r.reduction} {r.flavour} {r.dtype} {r.device}]{fd}")
                if r.diagnosis:
                    from ..diagnosis.causes import diagnosis_text

                    lines.append(f"      diagnosis: {diagnosis_text(r.diagnosis)}")
            pytest.fail("\n".join(lines), pytrace=False)

    def refused(self, message: str) -> None:
        self.run.refused(message)

    def diagnose_examples(self, impl: Any) -> None:
        """The full diagnosis (re-running variants) of each test's last failing example."""
        from ..core.compare import compare_model
        from ..diagnosis import Problem, annotate, summary_lines

        recorded = impl._warnings.recorded if getattr(impl, "_warnings", None) is not None else nullcontext
        impl = getattr(impl, "unguarded", impl)
        for test, (description, problem, worst) in self.examples.items():
            spec, state, x, y, device = problem
            lines = [f"{test}", f"  worst failing example (tol_ratio {worst:.3g}): {description}"]
            try:
                with recorded():
                    records = compare_model(impl, spec, x, y, state=state, device=device, fd="on_failure")
                    annotate(records, impl, Problem(spec, state, x, y, device), self.capabilities)
                lines += ["  " + line for line in summary_lines(records, limit=2)]
            except BaseException as exc:  # noqa: BLE001 - a skip or a crash: say so, never break the summary
                lines.append(f"  (not diagnosed: {type(exc).__name__}: {exc})")
            self.example_lines[test] = lines


def _job_in_worker(impl: Any, fn: Any, args: tuple) -> tuple[str, Any, list]:
    """In the worker: ``fn(impl, *args)``; a skip or ``NotImplementedError`` comes back as data,
    with the floating-point warnings the call counted."""
    counted = getattr(impl, "_warnings", None)
    if counted is not None:
        counted.counts.clear()
    try:
        status, value = "done", fn(impl, *args)
    except NotImplementedError as exc:
        status, value = "not_implemented", str(exc)
    except pytest.skip.Exception as exc:
        status, value = "skip", str(exc.msg)
    return status, value, counted.as_rows() if counted is not None else []


def _current_test() -> str:
    return os.environ.get("PYTEST_CURRENT_TEST", "test").rsplit(" (", 1)[0]


def _describe(problem: Any) -> str:
    from ..diagnosis.network import Problem

    spec, state, x, y, device = problem
    try:
        return Problem(spec, state, x, y, device).describe()
    except Exception:  # noqa: BLE001
        return spec.describe()


# --------------------------------------------------------------------------------------------
# The implementation under test
# --------------------------------------------------------------------------------------------

class UserWarnings:
    """Floating-point warnings (``RuntimeWarning``) raised inside an implementation's own code,
    counted by (category, message, where) instead of failing the test: under a
    ``filterwarnings = error`` setting a harmless ``exp`` overflow of a correct sigmoid would
    otherwise turn into a raw traceback. Other warnings are re-issued as they came."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()

    @contextmanager
    def recorded(self) -> Iterator[None]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield
            finally:
                others = self._count(caught)
        for w in others:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    def _count(self, caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
        others = []
        for w in caught:
            if issubclass(w.category, RuntimeWarning):
                self.counts[(w.category.__name__, str(w.message), _where(w.filename, w.lineno))] += 1
            else:
                others.append(w)
        return others

    def wrap(self, fn: Any) -> Any:
        """``fn`` running inside :meth:`recorded` (anything not callable is returned as is)."""
        if not callable(fn):
            return fn

        @functools.wraps(fn)
        def inside(*args: Any, **kwargs: Any) -> Any:
            with self.recorded():
                return fn(*args, **kwargs)
        return inside

    def as_rows(self) -> list[list[Any]]:
        return [[*key, n] for key, n in self.counts.items()]

    def add_rows(self, rows: list[list[Any]]) -> None:
        for category, message, where, n in rows:
            self.counts[(category, message, where)] += n

    def summary(self, impl_name: str, limit: int = 5) -> str:
        """``"2 RuntimeWarnings inside textbook-net (not failures): overflow encountered in exp at
        adapter.py:12 in sigmoid (2)"``."""
        total = sum(self.counts.values())
        kinds = sorted({category for category, _, _ in self.counts})
        top = "; ".join(f"{message} at {where} ({n})" for (_, message, where), n in self.counts.most_common(limit))
        more = f"; … {len(self.counts) - limit} more" if len(self.counts) > limit else ""
        return f"{total} {'/'.join(kinds)}s inside {impl_name} (not failures): {top}{more}"


@functools.lru_cache(maxsize=256)
def _where(filename: str, lineno: int) -> str:
    """``file.py:12 in function`` — the function found by parsing the file (``file.py:12`` when
    it cannot be read)."""
    import ast

    place = f"{Path(filename).name}:{lineno}"
    try:
        tree = ast.parse(Path(filename).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return place
    names = [node.name for node in ast.walk(tree)
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
             and node.lineno <= lineno <= (node.end_lineno or node.lineno)]
    return f"{place} in {names[-1]}" if names else place


class _GuardedModel:
    """A model whose ``configure_optimizer`` turns ``NotImplementedError`` into a skip."""

    def __init__(self, model: Any, recorder: Recorder, user_warnings: UserWarnings | None = None):
        self._model, self._recorder, self._warnings = model, recorder, user_warnings

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._model, name)
        return self._warnings.wrap(attr) if self._warnings is not None else attr

    def configure_optimizer(self, spec: Any) -> None:
        try:
            self.__getattr__("configure_optimizer")(spec)
        except NotImplementedError as exc:
            self._recorder.skip_not_implemented(str(exc) or f"optimizer {dict(spec)}")


class GuardedImplementation:
    """The implementation under test, as the tests see it: ``NotImplementedError`` raised by
    ``build`` (or the model's ``configure_optimizer``) skips the test as not implemented instead
    of failing it (and hypothesis re-raises a skip at once, without shrinking)."""

    def __init__(self, inner: Any, recorder: Recorder, user_warnings: UserWarnings | None = None):
        self._inner, self._recorder, self._warnings = inner, recorder, user_warnings
        self.name = inner.name

    @property
    def inner(self) -> Any:
        """The implementation itself (``Network.fit`` checks need scratchnet's, unwrapped)."""
        return self._inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        return self._warnings.wrap(attr) if self._warnings is not None else attr

    @property
    def unguarded(self) -> Any:
        """The implementation itself, for code that must see ``NotImplementedError`` as an
        exception (the diagnosis's variants), not as a skip of the running test."""
        return self._inner

    def build(self, spec: Any, state: Any) -> Any:
        try:
            model = self.__getattr__("build")(spec, state)
        except NotImplementedError as exc:
            self._recorder.skip_not_implemented(str(exc) or spec.describe())
        return _GuardedModel(model, self._recorder, self._warnings)


def load_implementation(spec: str | None) -> Any:
    """Resolve and validate ``module:factory`` (scratchnet when ``None``); a malformed adapter
    is a usage error naming what is missing."""
    return _load_implementation(spec, pytest.UsageError)[0]


#: Every option of the plugin starts with this prefix; the ini setting is ``scratchnet_report_dir``.
PREFIX = "--scratchnet-"
OPT_IMPL, OPT_DEVICE = f"{PREFIX}impl", f"{PREFIX}device"
OPT_MAX_EXAMPLES, OPT_REPORT_DIR = f"{PREFIX}max-examples", f"{PREFIX}report-dir"
OPT_REPORT_HTML, OPT_TIMEOUT = f"{PREFIX}report-html", f"{PREFIX}timeout"
INI_REPORT_DIR = "scratchnet_report_dir"
MAX_EXAMPLES_LIMIT = 10**6


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("scratchnet", "scratchnet conformance")
    group.addoption(OPT_IMPL, dest="scratchnet_impl", default=None, metavar="MODULE:FACTORY",
                    help="implementation under test as package.module:factory or path/to/adapter.py:factory "
                         "(default scratchnet); see reference/core/adapter.py")
    group.addoption(OPT_DEVICE, dest="scratchnet_device", default="all", choices=("all", "cpu", "cuda"),
                    help="devices to compare on (default: all available)")
    group.addoption(OPT_MAX_EXAMPLES, dest="scratchnet_max_examples", default=None, metavar="N",
                    help=f"hypothesis examples per property test (1 … {MAX_EXAMPLES_LIMIT:,}; overrides the profile)")
    group.addoption(OPT_REPORT_DIR, dest="scratchnet_report_dir", default=None, metavar="DIR",
                    help=f"write the run's records (CSV) into DIR (also the ini setting {INI_REPORT_DIR}); "
                         "nothing is written without one")
    group.addoption(OPT_REPORT_HTML, dest="scratchnet_report_html", action="store_true",
                    help="with a report folder, also render report.md/report.html and the plots "
                         "(`python -m scratchnet_reference report DIR` renders them later)")
    group.addoption(OPT_TIMEOUT, dest="scratchnet_timeout", default=None, metavar="SECONDS",
                    help="with --scratchnet-impl: the time one matrix job may take in its worker before its test "
                         f"fails, naming the job and where it was (default {DEFAULT_TIMEOUT_S:g})")
    parser.addini(INI_REPORT_DIR, default=None,
                  help="scratchnet conformance: folder for the run's records (relative to the ini file); "
                       "nothing is written without it or --scratchnet-report-dir")


def max_examples(text: str | None) -> int | None:
    """``--scratchnet-max-examples`` as an integer in 1 … :data:`MAX_EXAMPLES_LIMIT` (``None``: the
    profile's); anything else is a :class:`pytest.UsageError` naming the option."""
    if text is None:
        return None
    try:
        n = int(str(text).strip())
    except ValueError:
        raise pytest.UsageError(f"{OPT_MAX_EXAMPLES} must be a whole number, got {text!r}") from None
    if not 1 <= n <= MAX_EXAMPLES_LIMIT:
        raise pytest.UsageError(f"{OPT_MAX_EXAMPLES} must be between 1 and {MAX_EXAMPLES_LIMIT:,}, got {n}")
    return n


def timeout(text: str | None) -> float:
    """``--scratchnet-timeout`` as positive seconds (default :data:`DEFAULT_TIMEOUT_S`); anything
    else is a :class:`pytest.UsageError` naming the option."""
    if text is None:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(str(text).strip())
    except ValueError:
        raise pytest.UsageError(f"{OPT_TIMEOUT} must be a number of seconds, got {text!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise pytest.UsageError(f"{OPT_TIMEOUT} must be a positive number of seconds, got {text!r}")
    return seconds


def report_dir(config: pytest.Config) -> Path | None:
    """Where the run's records go: ``--scratchnet-report-dir``, else the ini setting (relative to
    the ini file's folder), else ``None`` (nothing is written)."""
    given = config.getoption("scratchnet_report_dir")
    if given:
        return Path(given).expanduser()
    ini = config.getini(INI_REPORT_DIR)
    if ini:
        base = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
        return base / Path(str(ini)).expanduser()
    return None


def check_report_dir(path: Path) -> None:
    """Make sure the run can write into ``path`` (creating it); a :class:`pytest.UsageError` with
    one line naming the option and the reason otherwise — at start, not after the suite."""
    from ..reports.files import output_dir_problem

    what = f"{OPT_REPORT_DIR} {path}"
    problem = output_dir_problem(path)
    if problem:
        raise pytest.UsageError(f"{what}: {problem}")
    try:  # os.access says yes to root everywhere; only a real write tells (/proc refuses even root)
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise pytest.UsageError(f"{what}: cannot write there ({exc.strerror or type(exc).__name__})") from None


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(), "scratchnet_conformance_xdist")
    blank = config.getoption("scratchnet_impl")
    if blank is not None and not blank.strip():
        raise pytest.UsageError(f"{OPT_IMPL} is empty: give package.module:factory or path/to/adapter.py:factory, "
                                "or leave the option out to test scratchnet itself (an unset variable in CI?)")
    config._scratchnet_start = time.perf_counter()  # type: ignore[attr-defined]
    config._scratchnet_recorder = Recorder()  # type: ignore[attr-defined]
    config._scratchnet_worker_records = []  # type: ignore[attr-defined]
    config._scratchnet_impl = None  # type: ignore[attr-defined]
    n = max_examples(config.getoption("scratchnet_max_examples"))
    out = report_dir(config)
    if out is not None and not _is_worker(config):
        check_report_dir(out)
    config._scratchnet_report_dir = out  # type: ignore[attr-defined]
    if n is not None:
        from hypothesis import settings
        settings.register_profile("cli-override", settings(settings.default, max_examples=n))
        settings.load_profile("cli-override")
    seconds = timeout(config.getoption("scratchnet_timeout"))
    if config.getoption("scratchnet_impl"):
        config._scratchnet_recorder.timeout = seconds  # type: ignore[attr-defined]
        _load(config)  # a malformed adapter stops the run here, before collection


def _load(config: pytest.Config) -> Any:
    """The implementation and its validated capabilities, loaded once per process."""
    if config._scratchnet_impl is None:  # type: ignore[attr-defined]
        inner, caps = _load_implementation(config.getoption("scratchnet_impl"), pytest.UsageError)
        recorder: Recorder = config._scratchnet_recorder  # type: ignore[attr-defined]
        recorder.impl_name, recorder.capabilities = inner.name, caps
        recorder.run.impl_spec = config.getoption("scratchnet_impl")
        # a user's implementation: its floating-point warnings are counted, not test errors
        user_warnings = recorder.user_warnings if config.getoption("scratchnet_impl") else None
        config._scratchnet_impl = GuardedImplementation(inner, recorder, user_warnings)  # type: ignore[attr-defined]
    return config._scratchnet_impl  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def impl(pytestconfig: pytest.Config) -> Any:
    return _load(pytestconfig)


@pytest.fixture(scope="session")
def capabilities(pytestconfig: pytest.Config) -> Any:
    _load(pytestconfig)
    return pytestconfig._scratchnet_recorder.capabilities  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def conformance(pytestconfig: pytest.Config) -> Recorder:
    return pytestconfig._scratchnet_recorder  # type: ignore[attr-defined]


def _selected_devices(config: pytest.Config) -> list[Any]:
    """``--scratchnet-device all``: CPU, plus CUDA when torch sees it (the suite's
    ``test_cuda_present`` states the skip once). An explicit ``--scratchnet-device cuda`` without
    a GPU skips each case with the reason."""
    from ..core.torch_import import torch_module

    choice = config.getoption("scratchnet_device")
    has_cuda = torch_module().cuda.is_available()
    wanted = (["cpu", "cuda"] if has_cuda else ["cpu"]) if choice == "all" else [choice]
    skip_cuda = pytest.mark.skipif(not has_cuda, reason=NO_CUDA_REASON)
    return [pytest.param(d, marks=[pytest.mark.cuda, skip_cuda] if d == "cuda" else [], id=d) for d in wanted]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # only the suite's own tests (they take ``conformance``): a user's test with a ``device``
    # fixture of its own is left alone
    if "device" in metafunc.fixturenames and "conformance" in metafunc.fixturenames:
        metafunc.parametrize("device", _selected_devices(metafunc.config))


# -- collecting across xdist workers and writing at the end -------------------------------------
def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    recorder: Recorder = config._scratchnet_recorder  # type: ignore[attr-defined]
    recorder.close()
    if recorder.examples:
        recorder.diagnose_examples(_load(config))
    if _is_worker(config):
        config.workeroutput[_RECORDS_KEY] = json.dumps(  # type: ignore[attr-defined]
            {**recorder.run.payload(), "examples": recorder.example_lines,
             "user_warnings": recorder.user_warnings.as_rows()})
        return
    for payload in config._scratchnet_worker_records:  # type: ignore[attr-defined]
        data = json.loads(payload)
        recorder.run.merge(data)
        recorder.example_lines.update(data.get("examples", {}))
        recorder.user_warnings.add_rows(data.get("user_warnings", []))
    recorder.run.wall_s = time.perf_counter() - config._scratchnet_start  # type: ignore[attr-defined]
    out = config._scratchnet_report_dir  # type: ignore[attr-defined]
    if recorder.records and out is not None:
        config._scratchnet_written = _write(config, recorder, out)  # type: ignore[attr-defined]


class XdistHooks:
    """The hooks that exist only with pytest-xdist, registered only where it is installed
    (:func:`pytest_configure`): a plugin module defining an unknown hook breaks every pytest run
    of an environment without xdist."""

    @staticmethod
    def pytest_testnodedown(node: Any, error: Any) -> None:
        payload = getattr(node, "workeroutput", {}).get(_RECORDS_KEY)
        if payload:
            node.config._scratchnet_worker_records.append(payload)


def _plan(records: list[Record], capabilities: Any) -> RunPlan:
    """The plan the session's matrix tests ran: the devices they ran on (CPU first, as
    ``run`` lists them), every dtype, training, finite differences on failure."""
    devices = sorted({r.device for r in records}, key=lambda d: (d != "cpu", d)) or ["cpu"]
    return RunPlan(devices=tuple(devices),
                   capabilities=None if capabilities is None or capabilities.is_everything else capabilities)


def _write(config: pytest.Config, recorder: Recorder, out: Path) -> Path | str:
    try:
        from hypothesis import settings
    except ImportError as exc:
        return f"not written ({exc})"
    run = recorder.run
    run.plan = _plan(run.records, recorder.capabilities)
    run.capabilities = recorder.capabilities
    run.profile = str(getattr(settings, "_current_profile", "") or "")
    if recorder.user_warnings.counts:
        run.notes["user_warnings"] = recorder.user_warnings.summary(recorder.impl_name)
    # CSVs always (seconds); the HTML page and plots on request (they take ~20-40 s for a full run)
    try:
        return run.write(out, render=config.getoption("scratchnet_report_html"))
    except ImportError as exc:
        return f"not written ({exc})"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _is_worker(config):
        return
    recorder: Recorder = config._scratchnet_recorder  # type: ignore[attr-defined]
    if not (recorder.records or recorder.refusals or recorder.not_implemented or recorder.user_warnings.counts):
        return
    tr = terminalreporter
    tr.section("scratchnet conformance")
    records = recorder.records
    combos = {(r.hidden, r.output, r.loss, r.reduction, r.flavour, r.dtype, r.device, r.optimizer, r.gd_mode)
              for r in records}
    impl = f" of {recorder.impl_name}" if recorder.impl_name != "scratchnet" else ""
    tr.write_line(f"{len(records)} comparisons{impl} over {len(combos)} combinations; "
                  f"{len(recorder.refusals)} undefined pairs refused as required")
    if recorder.not_implemented:
        tr.write_line(recorder.run.not_implemented_summary() + " (not failures)")
    if recorder.user_warnings.counts:
        tr.write_line(recorder.user_warnings.summary(recorder.impl_name))
    worst: dict[tuple[str, str], Record] = {}
    for r in records:
        if r.status == "unverified":
            continue
        key = (r.check, r.dtype)
        if key not in worst or r.tol_ratio > worst[key].tol_ratio:
            worst[key] = r
    if worst:
        tr.write_line(f"{'check':<14}{'dtype':<9}{'worst tol_ratio':>16}  where")
    for (check, dtype), r in sorted(worst.items()):
        tr.write_line(f"{check:<14}{dtype:<9}{r.tol_ratio:>16.3g}  {r.param} "
                      f"[{r.hidden}→{r.output}+{r.loss} {r.reduction} {r.flavour} {r.device}]")
    counts = {s: sum(r.status == s for r in records) for s in ("pass", "fail", "unverified")}
    tr.write_line(f"status: {counts['pass']} pass, {counts['fail']} fail, "
                  f"{counts['unverified']} unverified (no oracle could judge them; not counted as failures)")
    oracles = Counter(r.oracle for r in records if r.status != "unverified")
    tr.write_line("judged by: " + ", ".join(f"{name} {n}" for name, n in sorted(oracles.items())))
    for r in [r for r in records if r.status == "fail"][:20]:
        tr.write_line(f"FAIL {r.check} {r.param} tol_ratio={r.tol_ratio:.3g} "
                      f"[{r.hidden}→{r.output}+{r.loss} {r.reduction} {r.flavour} {r.dtype} {r.device}]"
                      + (f" fd sides with {r.fd_verdict}" if r.fd_verdict else ""))
    if any(r.status == "fail" and r.diagnosis for r in records):
        from ..diagnosis.causes import summary_lines

        tr.write_line("root causes of the failing comparisons:")
        for line in summary_lines(records):
            tr.write_line("  " + line)
    if recorder.example_lines:
        tr.write_line("worst failing examples (hypothesis), fully diagnosed:")
        for lines in recorder.example_lines.values():
            for line in lines:
                if line.startswith("  worst failing example"):  # the others come wrapped already
                    for wrapped in textwrap.wrap(line, width=120, subsequent_indent=" " * 6):
                        tr.write_line("  " + wrapped)
                else:
                    tr.write_line("  " + line)
    written = getattr(config, "_scratchnet_written", None)
    if written is not None:
        tr.write_line(f"records and reports: {written}")
    elif records:
        tr.write_line(f"records not written (give {OPT_REPORT_DIR} DIR or the ini setting {INI_REPORT_DIR} "
                      "to keep them)")
