"""Memory cgroups for real when root; otherwise skipped with the reason."""
import os
import signal
import subprocess
import sys

import pytest

from mmlab.kernel import cgroup

from .conftest import needs_root


def _available():
    ok, why = cgroup.availability()
    if not ok:
        pytest.skip(why)


@needs_root
def test_group_is_created_with_its_limit_and_removed():
    _available()
    with cgroup.memory_cgroup(64 << 20) as g:
        assert g.path.is_dir() and g.limit_bytes() == 64 << 20
        path = g.path
    assert not path.exists()


@needs_root
def test_group_is_removed_even_with_a_process_inside_and_an_exception():
    _available()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(RuntimeError):
            with cgroup.memory_cgroup(64 << 20) as g:
                g.add(proc.pid)
                assert g.pids() == [proc.pid]
                path = g.path
                raise RuntimeError("boom")
        assert not path.exists()
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@needs_root
def test_allocating_past_the_limit_oom_kills_the_task_inside():
    """With the default oom_kill_disable 0, a task that writes more than the limit is SIGKILLed and counted."""
    _available()
    code = "import mmap,sys; sys.stdin.readline(); m=mmap.mmap(-1, 96<<20); m.write(b'x'*(96<<20))"
    with cgroup.memory_cgroup(32 << 20) as g:
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
        g.add(proc.pid)
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        rc = proc.wait(timeout=30)
        assert rc == -signal.SIGKILL
        assert g.oom_kills() >= 1


@needs_root
def test_janitor_removes_groups_whose_creator_died():
    _available()
    h = cgroup.find_hierarchy()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = h.parent / f"mmlab-{dead.pid}-0"
    stale.mkdir()
    try:
        assert stale in cgroup.stale_groups()
        assert stale in cgroup.remove_stale()
        assert not stale.exists()
    finally:
        if stale.exists():
            os.rmdir(stale)


def test_proc_cgroup_parsing():
    text = "12:memory:/a/b\n0::/user.slice\n3:cpu,cpuacct:/\n"
    parsed = cgroup.parse_proc_cgroup(text)
    assert parsed["memory"] == "/a/b" and parsed[""] == "/user.slice" and parsed["cpuacct"] == "/"
