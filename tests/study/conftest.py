"""The multi-class study's tests: the quick profile end to end (run once per session), the IDX
reader on files the tests write themselves, and the one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the study verifies against PyTorch: pip install -c constraints.txt "
                    "'scratchnet[reference]'")
pytest.importorskip("pandas", reason="the study's tables need pandas: pip install 'scratchnet[reports]'")
pytest.importorskip("matplotlib", reason="the study's plots need matplotlib: pip install 'scratchnet[reports]'")


@pytest.fixture(scope="session")
def quick_study(tmp_path_factory) -> tuple[int, str, str, Path]:
    """``(exit code, stdout, stderr, folder)`` of ``study --quick`` (needs scikit-learn)."""
    pytest.importorskip("sklearn", reason="the digits need scikit-learn: pip install 'scratchnet[study]'")
    import contextlib
    import io

    from scratchnet_reference import cli

    out = tmp_path_factory.mktemp("study") / "study"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(["study", "--quick", "--out", str(out)])
    return code, stdout.getvalue(), stderr.getvalue(), out
