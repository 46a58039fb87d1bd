"""``scratchnet-conformance ops`` on learner functions that hang or end the process: that op is
the named failure (where, in the learner's file), the other op is still checked, exit 1 (the
tool's, not the learner's), and the whole run takes seconds (issue 23)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

BODIES = {
    "hang": "    while True:\n        pass\n",
    "sys_exit": "    import sys\n    sys.exit(3)\n",
    "os_exit": "    import os\n    os._exit(4)\n",
}
WORDS = {"hang": ("timeout", "did not return within 3 s"), "sys_exit": ("exit", "sys.exit(3)"),
         "os_exit": ("exit", "os._exit(4)")}


@pytest.mark.parametrize("how", list(BODIES))
def test_one_bad_op_is_its_own_failure(tmp_path: Path, how: str) -> None:
    module = tmp_path / f"learner_{how}.py"
    module.write_text("import numpy as np\n\n\ndef relu(z):\n    return np.maximum(z, 0)\n\n\n"
                      "def sigmoid(z):\n" + BODIES[how])
    # the loop's two lines (9: ``while True:``, 10: ``pass``): where the timeout stops it depends on the moment
    bad_lines = (9, 10) if how == "hang" else (10,)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "scratchnet_reference", "ops", "--impl", str(module), "--timeout",
                           "3", "--max-examples", "10"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    took = time.monotonic() - start
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    kind, words = WORDS[how]
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("relu ", "sigmoid "))}
    assert rows["relu"][-1] == "pass", out
    assert rows["sigmoid"][1] == kind and rows["sigmoid"][-1] == "FAIL", out
    assert words in out, out
    assert any(f"{module.name}:{line} in sigmoid" in out for line in bad_lines), out
    assert took < 60, f"took {took:.1f} s"
