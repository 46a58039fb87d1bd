"""Core-test hooks: print the worst float64 finite-difference agreement the run observed."""

from .helpers import FD_RTOL, FD_WORST


def pytest_terminal_summary(terminalreporter):
    if FD_WORST.n:
        terminalreporter.write_line(
            f"float64 FD agreement over {FD_WORST.n} comparisons (rtol={FD_RTOL:g}): "
            f"worst tol_ratio={FD_WORST.tol_ratio:.3g} [{FD_WORST.ratio_where}]; "
            f"worst max_abs_err={FD_WORST.max_abs_err:.3g} [{FD_WORST.abs_where}]")
