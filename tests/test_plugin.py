"""The pytest plugin is loaded in every pytest session of an environment that has scratchnet, so it
must be safe in other people's projects: its options are namespaced (``--scratchnet-*``), a
project's own ``--device`` option and ``device`` fixture work unchanged, a plain run writes no
file, bad options are refused at start with one line, and a floating-point warning inside a
user's implementation is counted, not a test error.

Each test runs ``python -m pytest`` in a throwaway folder with this interpreter (the environment
where scratchnet and its plugin are installed)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_in(folder: Path, *args: str, timeout: float = 240) -> tuple[int, str]:
    """``(exit code, output)`` of ``python -m pytest *args`` run in ``folder``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(CI="1", PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=folder,
                          capture_output=True, text=True, timeout=timeout, env=env)
    return done.returncode, done.stdout + done.stderr


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project that owns ``--device`` and a ``device`` fixture, as many do."""
    (tmp_path / "conftest.py").write_text(textwrap.dedent('''
        import pytest

        def pytest_addoption(parser):
            parser.addoption("--device", default="gpu0", help="the project's own device option")
            parser.addoption("--impl", default="fast")
            parser.addoption("--report-dir", default=None)

        @pytest.fixture
        def device(request):
            return request.config.getoption("--device")
    '''))
    (tmp_path / "test_mine.py").write_text(textwrap.dedent('''
        def test_device(device, pytestconfig):
            assert device == "gpu0"
            assert pytestconfig.getoption("--impl") == "fast"
    '''))
    return tmp_path


def test_a_project_with_its_own_device_option_runs_unchanged(project):
    code, out = pytest_in(project, "-q")
    assert code == 0, out
    assert "1 passed" in out
    loaded = pytest_in(project, "--trace-config", "-q")[1]
    assert "scratchnet_reference.conformance.plugin" in loaded  # the plugin was there all along
    assert files_under(project) == {"conftest.py", "test_mine.py"}  # and wrote nothing


def test_a_project_runs_its_pytest_where_xdist_is_not_installed(project):
    """``-p no:xdist`` leaves xdist's hook specifications out, as an environment without it does: the
    plugin's xdist hook (``pytest_testnodedown``) must then not be registered (it was: every pytest
    run stopped with "unknown hook"). ``scripts/check-installs`` does the same in a fresh venv."""
    code, out = pytest_in(project, "-q", "-p", "no:xdist")
    assert code == 0 and "1 passed" in out, out


def test_records_of_xdist_workers_are_still_collected(tmp_path):
    """The xdist hook now lives in a plugin object registered only with xdist: with ``-n 2`` the
    workers' comparisons must still reach the summary and the report folder."""
    pytest.importorskip("xdist", reason="pytest-xdist: pip install -c constraints.txt 'scratchnet[test]'")
    out_dir = tmp_path / "reports"
    code, out = pytest_in(tmp_path, "-q", "-n", "2", "--pyargs", "scratchnet_reference.conformance.tests", "-k",
                          "test_case_matches_torch and relu-softmax-cross_entropy-mean and float64",
                          "--scratchnet-report-dir", str(out_dir), timeout=400)
    assert code == 0 and " comparisons over " in out, out  # no summary: the workers' records were lost
    compared = int(out.split(" comparisons over ")[0].rsplit("\n", 1)[-1])
    assert compared > 0 and (out_dir / "records.csv").is_file(), out


@pytest.mark.parametrize("value", ["", "  "])
def test_a_blank_impl_is_refused_not_read_as_scratchnet(project, value):
    code, out = pytest_in(project, "-q", f"--scratchnet-impl={value}")
    assert code == 4 and "--scratchnet-impl is empty" in out, out


def test_plugin_options_are_namespaced(project):
    code, out = pytest_in(project, "--help")
    assert code == 0, out
    for option in ("--scratchnet-impl", "--scratchnet-device", "--scratchnet-max-examples",
                   "--scratchnet-report-dir", "--scratchnet-report-html"):
        assert option in out
    assert "scratchnet_report_dir" in out  # the ini setting


def test_loading_the_plugin_imports_neither_torch_nor_pandas():
    code = ("import sys, scratchnet_reference.conformance.plugin as p; "
            "print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


# -- options refused at start ----------------------------------------------------------------------

@pytest.fixture
def slow_project(tmp_path: Path) -> Path:
    """A project whose test would fail if it ever ran: a refusal must come before it."""
    (tmp_path / "test_never.py").write_text("def test_never():\n    raise AssertionError('the suite ran')\n")
    return tmp_path


@pytest.mark.parametrize("value,expected", [
    ("0", "must be between 1 and 1,000,000, got 0"),
    ("-3", "must be between 1 and 1,000,000, got -3"),
    ("99999999999999999999", "must be between 1 and 1,000,000, got 99999999999999999999"),
    ("2.5", "must be a whole number, got '2.5'"),
    ("many", "must be a whole number, got 'many'"),
])
def test_absurd_max_examples_is_refused_at_start(slow_project, value, expected):
    code, out = pytest_in(slow_project, f"--scratchnet-max-examples={value}")
    assert code == pytest.ExitCode.USAGE_ERROR, out
    assert f"--scratchnet-max-examples {expected}" in out
    assert "the suite ran" not in out and "Traceback" not in out


@pytest.mark.parametrize("report_dir,expected", [
    ("taken", "--scratchnet-report-dir taken: taken is a file, not a folder"),
    ("taken/sub/dir", "taken is a file, so taken/sub/dir cannot be a folder"),
    # /proc refuses new folders even to root (a chmod would not stop root)
    ("/proc/scratchnet-reports", "--scratchnet-report-dir /proc/scratchnet-reports: cannot write there"),
])
def test_a_report_dir_that_cannot_be_written_is_refused_at_start(slow_project, report_dir, expected):
    (slow_project / "taken").write_text("a file")
    code, out = pytest_in(slow_project, "--scratchnet-report-dir", report_dir)
    assert code == pytest.ExitCode.USAGE_ERROR, out
    assert expected in out
    assert "the suite ran" not in out and "Traceback" not in out


# -- records written only when asked; warnings inside a user's code --------------------------------

#: A correct textbook network whose sigmoid ``1 / (1 + exp(-z))`` overflows harmlessly to 0.0
#: for very negative z (numpy warns "overflow encountered in exp").
OVERFLOWING_SIGMOID_ADAPTER = '''
import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


class Model:
    def __init__(self, state):
        self.params = {k: np.array(v, dtype=np.float64) for k, v in state.items()}
        self.n_layers = len(self.params) // 2

    def load_state_dict(self, state):
        self.params = {k: np.array(v, dtype=np.float64) for k, v in state.items()}

    def forward(self, x):
        self.a = [np.asarray(x, dtype=np.float64)]
        for k in range(self.n_layers):
            z = self.a[-1] @ self.params[f"layers.{k}.weight"].T + self.params[f"layers.{k}.bias"]
            self.a.append(sigmoid(z))
        return self.a[-1]

    def loss_and_grads(self, x, y):
        p = self.forward(x)
        y = np.asarray(y, dtype=np.float64)
        delta = 2 * (p - y) / p.size * p * (1 - p)
        grads = {}
        for k in reversed(range(self.n_layers)):
            grads[f"layers.{k}.weight"] = delta.T @ self.a[k]
            grads[f"layers.{k}.bias"] = delta.sum(axis=0)
            if k:
                delta = (delta @ self.params[f"layers.{k}.weight"]) * self.a[k] * (1 - self.a[k])
        return float(np.mean((p - y) ** 2)), grads


class Overflowing:
    name = "overflowing-sigmoid"
    capabilities = {"hidden": ["sigmoid"], "outputs": ["sigmoid"], "losses": ["mse"], "reductions": ["mean"],
                    "dtypes": ["float64"], "optimizers": [], "optimizer_options": [], "hyperparameters": []}

    def build(self, spec, state):
        return Model(state)


def make_implementation():
    return Overflowing()
'''


def _overflow_test(folder: Path) -> None:
    """A test of the suite's kind (``conformance.check`` over ``compare_model``) on logits of
    ±1000, where the adapter's sigmoid overflows."""
    (folder / "pyproject.toml").write_text('[tool.pytest.ini_options]\n'
                                           'filterwarnings = ["error:.*encountered in:RuntimeWarning"]\n')
    (folder / "overflow_adapter.py").write_text(OVERFLOWING_SIGMOID_ADAPTER)
    (folder / "test_overflow.py").write_text(textwrap.dedent('''
        import numpy as np
        import scratchnet
        from scratchnet_reference import compare_model, initial_state

        def test_overflowing_sigmoid_is_right(impl, device, conformance):
            spec = scratchnet.ModelSpec((2, 3), hidden=(), output="sigmoid", loss="mse", dtype="float64", seed=0)
            state = initial_state(spec)
            state["layers.0.weight"] = np.array([[1e3, 0.0], [-1e3, 0.0], [0.0, 1.0]])
            x = np.array([[1.0, 0.5], [-1.0, 0.0]])
            y = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]])
            conformance.check(compare_model(impl, spec, x, y, state=state, device=device))
    '''))


def test_warnings_inside_a_users_code_are_counted_not_errors(tmp_path):
    _overflow_test(tmp_path)
    code, out = pytest_in(tmp_path, "--scratchnet-impl", "overflow_adapter:make_implementation",
                          "--scratchnet-device", "cpu", "-q")
    assert code == 0, out
    assert "1 passed" in out
    assert "0 fail" in out
    # counted in the summary, with where it came from
    assert "RuntimeWarnings inside overflowing-sigmoid (not failures): overflow encountered in exp at " \
           "overflow_adapter.py:6 in sigmoid" in out
    assert files_under(tmp_path) == {"pyproject.toml", "overflow_adapter.py", "test_overflow.py"}
    assert "records not written (give --scratchnet-report-dir DIR" in out


def test_records_are_written_only_where_asked(tmp_path):
    _overflow_test(tmp_path)
    code, out = pytest_in(tmp_path, "--scratchnet-impl", "overflow_adapter:make_implementation",
                          "--scratchnet-device", "cpu", "--scratchnet-report-dir", "out/run", "-q")
    assert code == 0, out
    assert {"out/run/records.csv", "out/run/matrix.csv"} <= files_under(tmp_path)
    assert f"records and reports: out{os.sep}run" in out
    # the ini setting, relative to the ini file
    with open(tmp_path / "pyproject.toml", "a") as ini:
        ini.write('scratchnet_report_dir = "from-ini"\n')
    code, out = pytest_in(tmp_path, "--scratchnet-impl", "overflow_adapter:make_implementation",
                          "--scratchnet-device", "cpu", "-q")
    assert code == 0, out
    assert (tmp_path / "from-ini" / "matrix.csv").exists()
