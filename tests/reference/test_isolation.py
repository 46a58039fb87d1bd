"""User code in a killable worker: a hang, an exit, any exception or a crash is a named failure with
the user's stack, and the next call works (the worker replaced when it had to be)."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from scratchnet_reference.core.isolation import (
    UserCodeCrash,
    UserCodeExit,
    UserCodeRaised,
    UserCodeTimeout,
    Worker,
)


class Net:
    """A stand-in for a learner's network object (the worker's target)."""

    def __init__(self):
        self.calls = 0


# -- what the worker runs: module-level functions (sent by reference), target first ------------

def count(net, k):
    net.calls += k
    return net.calls


def whoami(net):
    return os.getpid()


def learners_forward_that_never_returns(net):
    while True:
        pass


def learners_forward_that_sleeps(net):
    time.sleep(3600)


def deep_sys_exit(net, code):
    def layer_two():
        sys.exit(code)
    layer_two()


def deep_os_exit(net, code):
    def layer_two():
        os._exit(code)
    layer_two()


class LearnerStop(BaseException):
    """A BaseException subclass, as some learners define."""


def raise_base_exception(net):
    raise LearnerStop("stop <script>alert(1)</script>")


def raise_keyboard_interrupt(net):
    raise KeyboardInterrupt


def raise_value_error(net):
    raise ValueError("y has 9 columns, but the network outputs 10 classes")


def segfault(net):
    import ctypes

    ctypes.string_at(0)


def kill_self(net):
    os.kill(os.getpid(), signal.SIGKILL)


def unpicklable_result(net):
    return lambda: None


@pytest.fixture
def worker():
    with Worker(Net(), name="implementation 'mine'", timeout=1.5) as w:
        yield w


def test_calls_run_in_one_persistent_worker_on_a_copy(worker):
    parent = worker.target
    assert worker.call(count, 2) == 2
    assert worker.call(count, 3) == 5  # state persists in the worker between calls
    assert parent.calls == 0  # the parent's object is untouched: the worker has its own copy
    pid = worker.call(whoami)
    assert pid != os.getpid() and worker.call(whoami) == pid and worker.restarts == 0


@pytest.mark.parametrize("hang", [learners_forward_that_never_returns, learners_forward_that_sleeps])
def test_a_hang_is_a_timeout_with_the_users_stack_and_the_worker_is_replaced(worker, hang):
    pid = worker.call(whoami)
    start = time.monotonic()
    with pytest.raises(UserCodeTimeout, match=r"implementation 'mine': .* did not return within 1.5 s") as info:
        worker.call(hang)
    assert time.monotonic() - start < 1.5 + 5  # the limit, the stack dump's grace, the kill
    assert hang.__name__ in info.value.user_stack  # where it hung, from faulthandler
    assert "(at test_isolation.py:" in str(info.value) and f"in {hang.__name__})" in str(info.value)
    assert info.value.kind == "timeout"
    assert worker.call(whoami) != pid and worker.restarts == 1  # a fresh worker answers
    assert worker.call(count, 1) == 1  # …forked from the parent's object again


def test_sys_exit_deep_in_user_code_is_a_named_exit_and_the_worker_lives_on(worker):
    pid = worker.call(whoami)
    with pytest.raises(UserCodeExit, match=r"called sys.exit\(3\)") as info:
        worker.call(deep_sys_exit, 3)
    assert info.value.code == 3 and "layer_two" in info.value.user_stack and "in layer_two)" in str(info.value)
    assert worker.call(whoami) == pid  # SystemExit was caught in the worker: no restart needed


def test_os_exit_is_a_named_exit_with_the_stack_and_the_worker_is_replaced(worker):
    pid = worker.call(whoami)
    with pytest.raises(UserCodeExit, match=r"called os._exit\(4\)") as info:
        worker.call(deep_os_exit, 4)
    assert info.value.code == 4 and "layer_two" in info.value.user_stack and "in layer_two)" in str(info.value)
    assert worker.call(whoami) != pid


@pytest.mark.parametrize("fn, exc_type", [(raise_base_exception, "LearnerStop"),
                                          (raise_keyboard_interrupt, "KeyboardInterrupt"),
                                          (raise_value_error, "ValueError")])
def test_any_exception_base_exceptions_included_is_named_with_its_traceback(worker, fn, exc_type):
    pid = worker.call(whoami)
    with pytest.raises(UserCodeRaised, match=rf"implementation 'mine': {fn.__name__} raised {exc_type}") as info:
        worker.call(fn)
    assert info.value.exc_type == exc_type and fn.__name__ in info.value.user_stack
    assert f"in {fn.__name__})" in str(info.value)
    assert "Traceback" in info.value.report()
    assert worker.call(whoami) == pid


@pytest.mark.parametrize("fn, signame", [(segfault, "SIGSEGV"), (kill_self, "SIGKILL")])
def test_a_crash_is_named_by_its_signal_and_the_worker_is_replaced(worker, fn, signame):
    pid = worker.call(whoami)
    with pytest.raises(UserCodeCrash, match=rf"crashed its process \({signame}\)") as info:
        worker.call(fn)
    if signame == "SIGSEGV":
        assert "segfault" in info.value.user_stack  # faulthandler's dump of where
    assert worker.call(whoami) != pid


def test_an_unpicklable_result_is_a_named_failure(worker):
    with pytest.raises(UserCodeRaised, match="the result could not be sent back"):
        worker.call(unpicklable_result)
    assert worker.call(count, 1) == 1


def test_bad_timeout_is_refused_naming_it():
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds, got 0"):
        Worker(Net(), timeout=0)


def test_close_stops_the_worker():
    w = Worker(Net())
    pid = w.call(whoami)
    w.close()
    w.close()  # idempotent
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.05)


PARENT = """
import sys
from tests.reference.test_isolation import Net, learners_forward_that_never_returns, whoami
from scratchnet_reference.core.isolation import Worker
worker = Worker(Net(), timeout=600)
print(worker.call(whoami), flush=True)
worker.call(learners_forward_that_never_returns)
"""


def test_a_hanging_worker_dies_with_its_parent_even_on_sigkill():
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=root, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(root)})
    try:
        worker_pid = int(parent.stdout.readline())
        time.sleep(0.5)  # the worker is in the endless loop now
        parent.kill()
        parent.wait(timeout=30)
    finally:
        parent.kill()
        parent.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{worker_pid}/stat") as stat:  # a zombie awaiting its reaper counts as gone
            if stat.read().split(")")[-1].split()[0] == "Z":
                return
        time.sleep(0.1)
    pytest.fail(f"worker {worker_pid} outlived its SIGKILLed parent")
