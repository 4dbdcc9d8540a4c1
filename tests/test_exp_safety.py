"""Safety and no residue for the 2009-scenario experiments: every child killed and reaped, every memory
cgroup removed and system Mlocked back, on a normal end, an exception, SIGINT to `mmlab`, and a child
that hangs past its timeout; sizes above the guard refused outside a cgroup."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import mmlab
from mmlab.core.params import ParamError
from mmlab.core.units import PAGE_BYTES
from mmlab.kernel import cgroup

from .conftest import IS_ROOT, MLOCKED_SLACK_BYTES, mlocked_bytes, mmlab_processes, needs_root

ROOT = Path(__file__).resolve().parent.parent
PAGE = PAGE_BYTES


# ------------------------------------------------------------- helpers (also used by test_exp_*.py)
@pytest.fixture
def tagged(monkeypatch):
    """A unique tag in the environment every child of this test inherits, to find our own children
    among those of anyone else running experiments on the machine."""
    tag = uuid.uuid4().hex
    monkeypatch.setenv("MMLAB_TEST_TAG", tag)
    return tag


def hold_machine():
    """The machine lock for real experiments (re-entrant in this process), so no other mmlab run on the
    machine changes system Mlocked between a test's before and after; a no-op in a tree without it."""
    import contextlib

    try:
        from mmlab.kernel import machine_lock
    except ImportError:
        return contextlib.nullcontext()
    return machine_lock.hold()


def run_between_counts(name: str, **params):
    """Run a real experiment (not stored) under the machine lock; (result, system Mlocked before, after),
    so a test can check nothing stayed locked."""
    import mmlab

    from .conftest import mlocked_bytes

    with hold_machine():
        before = mlocked_bytes()
        result = mmlab.experiment(name, save=False, progress=False, **params)
        return result, before, mlocked_bytes()


@pytest.fixture
def quiet_machine():
    with hold_machine():
        yield


def our_children(tag: str, settle_s: float = 2.0) -> list[int]:
    """Experiment children (`python -m mmlab.kernel.child`, zombies included) carrying the tag; waits up to
    settle_s for orphans of a dead parent to be reaped by init."""
    deadline = time.monotonic() + settle_s
    while True:
        out = []
        for pid in mmlab_processes():
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            if f"MMLAB_TEST_TAG={tag}".encode() in env.split(b"\0"):
                out.append(pid)
        if not out or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


def groups_of(pid: int) -> list[Path]:
    """Memory cgroups named for the mmlab process `pid` (mmlab-<pid>-<seq>) that still exist."""
    out = []
    for h in cgroup.candidate_parents():
        out += [p for p in h.parent.glob(f"mmlab-{pid}-*") if p.is_dir()]
    return out


def mlocked_back_to(before: int, timeout_s: float = 3.0) -> bool:
    """System Mlocked returns within MLOCKED_SLACK_BYTES of `before` (sampled for a while: others may be busy)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if abs(mlocked_bytes() - before) <= MLOCKED_SLACK_BYTES:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def hanging_child(ctx, **_ignored) -> None:
    """A child that reports once, locks 8 MiB and then hangs silently (for the timeout test)."""
    from mmlab.kernel import libc

    ctx.sync("started")
    addr = libc.mmap(8 << 20)
    libc.mlock(addr, 8 << 20)
    while True:
        time.sleep(3600)


TINY = {
    "sigkill-during-mlock": dict(vma_bytes="1GiB", populated_bytes="16MiB", repeats=1, warmup=0),
    "munlock-partial": dict(vma_bytes="16MiB", populated_fractions="0.5", repeats=1, warmup=0),
    "prepatch-replay": dict(vma_bytes="16MiB", repeats=1, warmup=0),
    "oom-kill": dict(limit_bytes="64MiB", lock_bytes="128MiB", bystanders=1, bystander_bytes="4MiB", repeats=1, warmup=0),
}


# ------------------------------------------------------------------------------------------ tests
@needs_root
@pytest.mark.parametrize("name", list(TINY))
def test_normal_end_leaves_no_child_no_cgroup_and_nothing_locked(name, tagged, quiet_machine):
    """After each experiment ends normally, no child of it runs, none of its memory cgroups exists, and
    system Mlocked is back within a few pages."""
    before = mlocked_bytes()
    r = mmlab.experiment(name, save=False, progress=False, **TINY[name])
    assert len(r.rows) > 0 and r.skipped is None
    assert our_children(tagged) == []
    assert groups_of(os.getpid()) == []
    assert mlocked_back_to(before)


@needs_root
def test_an_exception_mid_mlock_kills_the_child_and_removes_its_cgroup(tagged, quiet_machine, monkeypatch):
    """An exception raised while a child is in the middle of mlocking a 64 GiB VMA inside a memory
    cgroup still kills and reaps it, removes the group, and unlocks its pages."""
    from mmlab.experiments import sigkill_during_mlock as sdm

    seen = {}

    def boom(child, timeout_s):
        seen["pid"] = child.pid
        seen["groups"] = groups_of(os.getpid())
        raise RuntimeError("injected failure")

    monkeypatch.setattr(sdm, "kill_timed", boom)
    before = mlocked_bytes()
    with pytest.raises(RuntimeError, match="injected"):
        mmlab.experiment("sigkill-during-mlock", vma_bytes="64GiB", populated_bytes="32MiB", repeats=1, warmup=0,
                         save=False, progress=False)
    assert seen["groups"], "the child was not in a memory cgroup when the exception came"
    assert not Path(f"/proc/{seen['pid']}").exists()
    assert our_children(tagged) == [] and groups_of(os.getpid()) == []
    assert mlocked_back_to(before)


@needs_root
def test_an_exception_in_the_oom_experiment_removes_group_victim_and_bystanders(tagged, quiet_machine, monkeypatch):
    """An exception while the victim mlocks among bystanders kills all of them and removes the group."""
    from mmlab.experiments import oom_kill

    def boom(children, timeout_s):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(oom_kill, "wait_any_exit", boom)
    before = mlocked_bytes()
    with pytest.raises(RuntimeError, match="injected"):
        mmlab.experiment("oom-kill", save=False, progress=False, **TINY["oom-kill"])
    assert our_children(tagged) == [] and groups_of(os.getpid()) == []
    assert mlocked_back_to(before)


@needs_root
@pytest.mark.parametrize("argv", [
    ["sigkill-during-mlock", "-p", "vma_bytes", "64GiB", "-p", "populated_bytes", "64MiB", "--repeats", "100"],
    ["oom-kill", "-p", "limit_bytes", "64MiB", "-p", "lock_bytes", "128MiB", "-p", "bystanders", "2",
     "-p", "bystander_bytes", "4MiB", "--repeats", "100"],
], ids=["sigkill-during-mlock", "oom-kill"])
def test_sigint_to_mmlab_experiment_leaves_nothing_behind(argv, tagged):
    """Ctrl-C (SIGINT) to `mmlab experiment` in the middle of a run exits with 130, and leaves no child,
    no memory cgroup, nothing locked: its children, the only lockers, are gone (the subprocess takes the
    machine lock itself, so system Mlocked may move with others' work meanwhile and is not compared)."""
    proc = subprocess.Popen([sys.executable, "-m", "mmlab", "experiment", *argv, "--no-save"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (our_children(tagged, settle_s=0) and groups_of(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert groups_of(proc.pid), "the run never got going"
        time.sleep(0.3)  # well into the repetitions
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 130, proc.stderr.read()
    assert our_children(tagged) == []
    assert groups_of(proc.pid) == []


@needs_root
def test_a_child_hanging_past_its_timeout_is_killed_and_its_cgroup_removed(tagged, quiet_machine, monkeypatch):
    """A bystander that locks memory and then hangs silently makes the run fail after timeout_s with a
    one-line error naming the hung child; it is killed, the group removed, its pages unlocked."""
    from mmlab.experiments import oom_kill

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setattr(oom_kill, "BYSTANDER", "tests.test_exp_safety:hanging_child")
    before = mlocked_bytes()
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="sent nothing") as err:  # ChildError, or ExperimentFailed wrapping it
        mmlab.experiment("oom-kill", save=False, progress=False, timeout_s=2, **TINY["oom-kill"])
    assert time.monotonic() - t0 < 15
    assert "hanging_child" in str(err.value)
    assert our_children(tagged) == [] and groups_of(os.getpid()) == []
    assert mlocked_back_to(before)


@pytest.mark.skipif(not IS_ROOT, reason="the guard's numbers differ without CAP_IPC_LOCK")
@pytest.mark.parametrize("name,values", [
    ("sigkill-during-mlock", dict(vma_bytes="8TiB", populated_bytes="4TiB")),
    ("munlock-partial", dict(vma_bytes="4TiB", populated_fractions="1", variants="onfault")),
    ("prepatch-replay", dict(vma_bytes="1TiB", settings="free")),
    ("oom-kill", dict(limit_bytes="1TiB", lock_bytes="2TiB", bystanders=0)),
])
def test_sizes_above_the_guard_are_refused_with_a_clear_error_before_anything_runs(name, values, tagged):
    """What would be locked outside a memory cgroup (or a group's limit) above the guard's share of
    MemAvailable is a ParamError naming the guard; no child is started."""
    with pytest.raises(ParamError, match="safety guard"):
        mmlab.experiment(name, save=False, progress=False, **values)
    assert our_children(tagged) == []
