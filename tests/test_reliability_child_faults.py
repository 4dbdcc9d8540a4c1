"""Child faults: a child that hangs (SIGSTOP past timeout_s), exits early (its parent's pipe closed, so
it exits at its next sync), or is killed by something else (SIGKILL from outside). Each is reported as
such (rows, or ExperimentFailed whose one line names the experiment and the fault), and the stopped or
dying child is reaped: no process, memory cgroup or locked memory is left, and nothing is stored.
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

from mmlab import experiments
from mmlab.experiments import ExperimentFailed
from mmlab.kernel.child import Child, ChildDied, ChildTimeout
from tests.conftest_reliability import (
    SEED,
    TAG_ENV,
    assert_mlocked_back,
    assert_no_cgroups,
    assert_no_processes,
    children_of,
    cli_args,
    earlier_run,
    experiment_names,
    new_tag,
    one_line_error,
    start_mmlab,
    stop,
    tiny,
    wait_until,
)

pytestmark = pytest.mark.reliability
TARGETS = "tests.reliability_targets"
WORDS = {"hang": "hung", "exit": "exited early", "kill": "was killed"}
# Per experiment, what keeps a faulted run short (its own backstops below the default 30 s or more).
SHORT = {"sigkill-during-mlock": {"kill_after_s": 1}, "oom-kill": {"repeats": 4}}
# Experiments that cannot go on without the faulted child: they must fail, naming the fault.
MUST_FAIL = {"mlock-throughput"}


class Injector(threading.Thread):
    """Waits for the first experiment child of this process, then, after `delay_s`, stops or kills it."""

    def __init__(self, action: str, delay_s: float):
        super().__init__(daemon=True)
        self.action, self.delay_s, self.victim = action, delay_s, None
        self.done = threading.Event()

    def run(self) -> None:
        sig = signal.SIGSTOP if self.action == "hang" else signal.SIGKILL
        if wait_until(lambda: children_of(os.getpid()), 150, 0.002):
            time.sleep(self.delay_s)
            deadline = time.monotonic() + 60
            while self.victim is None and time.monotonic() < deadline:
                for pid in children_of(os.getpid()):  # whichever child is alive now
                    try:
                        os.kill(pid, sig)
                        self.victim = pid
                        break
                    except ProcessLookupError:
                        continue
                else:
                    time.sleep(0.001)
        self.done.set()


@pytest.fixture
def close_stdin_on_second_reply(monkeypatch):
    """Injects "exits early": the parent closes the child's stdin instead of its second reply; the child
    then reads EOF at its next sync and exits (code 3), mid-protocol."""
    state = {"replies": 0, "closed": None}
    real = Child.reply

    def reply(self, **data):
        state["replies"] += 1
        if state["replies"] == 2 and state["closed"] is None:
            state["closed"] = self.pid
            self.proc.stdin.close()
            return
        try:
            real(self, **data)
        except (BrokenPipeError, ValueError):  # the closed child's pipe: it exits on its own
            pass

    monkeypatch.setattr(Child, "reply", reply)
    return state


@pytest.mark.parametrize("fault", ["hang", "kill"])
@pytest.mark.parametrize("name", experiment_names())
def test_outside_fault_in_a_real_experiment_is_reported_and_leaves_nothing(name, fault, isolated_store, monkeypatch, ledger):
    """A child stopped (hangs past timeout_s) or SIGKILLed from outside: the experiment either goes on and
    stores its rows, or fails with one ExperimentFailed line naming it and the fault; either way the child
    is reaped and no process, cgroup or locked memory is left; a failed run stores nothing."""
    tag = new_tag()
    monkeypatch.setenv(TAG_ENV, tag)
    snap = earlier_run(isolated_store)
    values = tiny(name, **{"repeats": 20, "timeout_s": 1, **SHORT.get(name, {})})
    inj = Injector(fault, random.Random(f"{SEED}-{name}-{fault}").uniform(0.0, 0.2))
    with ledger.fault():
        inj.start()
        try:
            result = experiments.run(name, values, progress=False)
        except ExperimentFailed as e:
            message = str(e)
            assert "\n" not in message and message.startswith(name), message
            assert WORDS[fault] in message, message
            if fault == "kill":
                assert "SIGKILL" in message and "not sent by mmlab" in message, message
            assert snap.new_entries() == [], "a failed run stored something"
        else:
            assert name not in MUST_FAIL, f"{name} went on without its child"
            assert len(result.rows) > 0 or result.skipped, "neither rows nor a failure"
        inj.done.wait(60)
        assert inj.victim is not None, "the fault was never injected"
        assert_no_processes(tag)
        assert_no_cgroups(os.getpid())
        assert_mlocked_back(tag)
        snap.assert_nothing_half_written()
        ledger.runs(snap)


@pytest.mark.parametrize("name", experiment_names())
def test_child_exiting_early_in_a_real_experiment_is_reported(name, isolated_store, monkeypatch,
                                                               close_stdin_on_second_reply, ledger):
    """A child that exits mid-protocol is reported as having exited early (or the experiment goes on
    with rows); nothing is left behind and a failed run stores nothing."""
    tag = new_tag()
    monkeypatch.setenv(TAG_ENV, tag)
    snap = earlier_run(isolated_store)
    with ledger.fault():
        try:
            result = experiments.run(name, tiny(name, **{"repeats": 2, "timeout_s": 5, **SHORT.get(name, {})}),
                                     progress=False)
        except ExperimentFailed as e:
            assert "\n" not in str(e) and "exited early" in str(e) and "exit code 3" in str(e), str(e)
            assert snap.new_entries() == []
        else:
            assert name not in MUST_FAIL, f"{name} went on without its child"
            assert len(result.rows) > 0 or result.skipped
        assert close_stdin_on_second_reply["closed"] is not None, "the fault was never injected"
        assert_no_processes(tag)
        assert_no_cgroups(os.getpid())
        assert_mlocked_back(tag)
        ledger.runs(snap)


def test_mlock_throughput_child_killed_from_outside_is_one_line_exit_1_from_the_cli(isolated_store, ledger):
    """`mmlab experiment` whose child is SIGKILLed by another process prints one line saying so (no
    traceback), exits 1, stores nothing, and leaves no process behind."""
    tag = new_tag()
    snap = earlier_run(isolated_store)
    proc = start_mmlab(["experiment", "mlock-throughput", *cli_args(tiny("mlock-throughput", repeats=50))], tag)
    try:
        with ledger.fault():
            kids = wait_until(lambda: children_of(proc.pid), 150)
            assert kids
            os.kill(kids[0], signal.SIGKILL)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 1, err
            line = one_line_error(err)
            assert "mlock-throughput failed (a child was killed)" in line and "SIGKILL" in line, line
            assert_no_processes(tag)
            assert snap.new_entries() == []
            ledger.runs(snap)
    finally:
        stop(proc)


# ---------------------------------------------------------------- the Child itself, with test targets
@pytest.fixture
def targets_importable(monkeypatch):
    from tests.conftest_reliability import ROOT

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def test_hung_child_is_reported_as_hung_and_killed(targets_importable, ledger):
    """A child silent past timeout_s raises ChildTimeout saying it hung; leaving the block kills it."""
    with ledger.fault():
        t0 = time.monotonic()
        with pytest.raises(ChildTimeout, match="hung") as err:
            with Child(f"{TARGETS}:hang", timeout_s=1) as c:
                c.expect("ready")
                pid = c.pid
                c.recv()
        assert err.value.fault == "hung" and time.monotonic() - t0 < 10
        assert not os.path.exists(f"/proc/{pid}"), "the hung child was not reaped"


def test_child_exiting_early_is_reported_with_its_exit_code(targets_importable, ledger):
    """A child that exits before finishing raises ChildDied saying it exited early, with its code."""
    with ledger.fault():
        with pytest.raises(ChildDied, match="exited early with exit code 7") as err:
            with Child(f"{TARGETS}:exit_early", timeout_s=10) as c:
                c.expect("ready")
                c.recv()
        assert err.value.fault == "exited-early" and err.value.returncode == 7


def test_child_killed_by_another_process_is_reported_as_killed(targets_importable, ledger):
    """A child SIGKILLed by someone else raises ChildDied naming SIGKILL and saying mmlab did not send it;
    one mmlab killed itself is reported as sent by mmlab."""
    with ledger.fault():
        with pytest.raises(ChildDied, match="SIGKILL, not sent by mmlab") as err:
            with Child(f"{TARGETS}:hang", timeout_s=10) as c:
                c.expect("ready")
                os.kill(c.pid, signal.SIGKILL)
                c.recv()
        assert err.value.fault == "killed"
        with pytest.raises(ChildDied, match=r"SIGKILL \(sent by mmlab\)"):
            with Child(f"{TARGETS}:hang", timeout_s=10) as c:
                c.expect("ready")
                c.kill()
                c.recv()
