"""Concurrent runs on one machine: real experiments take the machine-wide lock (a second one waits, or
refuses with one line naming the holder), simulations never take it, and no run clobbers another's
files. Lock-holding tests use a private lock file (MMLAB_LOCK_FILE) so they neither wait for nor block
other users of this machine; one test checks the machine-wide default.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import textwrap
import time

import pytest

from mmlab.core import store
from mmlab.kernel import machine_lock
from tests.conftest_reliability import (
    PYTHON,
    ROOT,
    children_of,
    cli_args,
    mmlab_env,
    new_tag,
    one_line_error,
    scenario_names,
    start_mmlab,
    stop,
    tiny,
    wait_until,
)

pytestmark = pytest.mark.reliability

HOLD = textwrap.dedent("""
    import sys
    from mmlab.kernel import machine_lock
    with machine_lock.hold(wait_s=0):
        print("held", flush=True)
        sys.stdin.read()
""")


@pytest.fixture
def lock_file(tmp_path, monkeypatch):
    path = tmp_path / "mmlab-real.lock"
    monkeypatch.setenv("MMLAB_LOCK_FILE", str(path))
    return path


def _holder(tag: str) -> subprocess.Popen:
    proc = subprocess.Popen([PYTHON, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=mmlab_env(tag), cwd=str(ROOT))
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_real_experiment_is_refused_naming_the_holder(lock_file, isolated_store):
    """While one `mmlab experiment` runs, a second with MMLAB_LOCK_WAIT_S=0 starts no child, exits 75
    with one line naming the first's pid and command, and stores nothing; the first finishes whole."""
    tag_a, tag_b = new_tag(), new_tag()
    a = start_mmlab(["experiment", "mlock-throughput", *cli_args(tiny("mlock-throughput", repeats=15)), "--json"], tag_a)
    try:
        assert wait_until(lambda: machine_lock.holders(lock_file), 60), "the first never took the lock"
        b = subprocess.run([PYTHON, "-m", "mmlab", "experiment", "mlock-throughput", "-p", "sizes", "1MiB"],
                           capture_output=True, text=True, timeout=60, env=mmlab_env(tag_b, MMLAB_LOCK_WAIT_S="0"))
        assert b.returncode == 75, b.stderr
        line = one_line_error(b.stderr)
        assert f"pid {a.pid}" in line and "mmlab experiment mlock-throughput" in line, line
        out, err = a.communicate(timeout=120)
        assert a.returncode == 0, err
        assert len(json.loads(out)) == 15
        assert len(store.run_dirs(isolated_store)) == 1, "only the first run is stored"
    finally:
        stop(a)


def test_second_real_experiment_waits_and_never_overlaps_the_first(lock_file, isolated_store):
    """With a wait allowed, the second says whom it waits for, runs after the first, and at no moment do
    children of both exist; both runs are stored whole, in different folders."""
    a = start_mmlab(["experiment", "mlock-throughput", *cli_args(tiny("mlock-throughput", repeats=8))], new_tag())
    b = None
    overlap, seen = [], {"a": 0, "b": 0}
    try:
        assert wait_until(lambda: machine_lock.holders(lock_file), 60)
        b = start_mmlab(["experiment", "mlock-throughput", *cli_args(tiny("mlock-throughput", repeats=8))], new_tag(),
                        MMLAB_LOCK_WAIT_S="120")
        while a.poll() is None or b.poll() is None:
            ka, kb = children_of(a.pid), children_of(b.pid)
            seen["a"] += bool(ka)
            seen["b"] += bool(kb)
            if ka and kb:
                overlap.append((ka, kb))
            time.sleep(0.002)
        _, err_b = b.communicate()
        assert a.returncode == 0 and b.returncode == 0, err_b
        assert seen["a"] and seen["b"], seen
        assert not overlap, f"children of both at once: {overlap[:3]}"
        assert f"waiting up to 120s for the machine lock held by pid {a.pid}" in err_b
        dirs = store.run_dirs(isolated_store)
        assert len(dirs) == 2 and len({d.name for d in dirs}) == 2
        for d in dirs:
            store.read_run(d)
    finally:
        stop(a)
        if b is not None:
            stop(b)


def test_lock_is_released_when_its_holder_is_sigkilled(lock_file):
    """The kernel drops a flock when its holder dies, even by SIGKILL: the machine is never left locked."""
    holder = _holder(new_tag())
    try:
        with pytest.raises(machine_lock.MachineBusy, match=f"pid {holder.pid}"):
            machine_lock.acquire(wait_s=0, quiet=True)
        holder.kill()
        holder.wait(10)
        with machine_lock.hold(wait_s=0):
            assert [h.pid for h in machine_lock.holders(lock_file)] == [os.getpid()]
    finally:
        stop(holder)


def test_lock_is_reentrant_within_one_process(lock_file):
    """A real experiment started from inside another (same process) does not deadlock on its own lock,
    and the flock is dropped only when the outermost hold ends."""
    with machine_lock.hold(wait_s=0):
        with machine_lock.hold(wait_s=0):
            assert machine_lock.holders(lock_file)
        assert [h.pid for h in machine_lock.holders(lock_file)] == [os.getpid()]
    assert machine_lock.holders(lock_file) == []


def test_machine_wide_lock_file_is_a_private_regular_file(monkeypatch):
    """The default lock (shared by every user) is a regular file, 0644 when mmlab made it, never writable
    by others, and its holder is found through /proc/locks."""
    monkeypatch.delenv("MMLAB_LOCK_FILE", raising=False)
    path = machine_lock.lock_path()
    with machine_lock.hold(wait_s=300, quiet=True):
        st = os.stat(path, follow_symlinks=False)
        assert stat.S_ISREG(st.st_mode)
        assert not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        assert os.getpid() in [h.pid for h in machine_lock.holders(path)]


@pytest.mark.skipif(not scenario_names(), reason="mmlab.sim is not importable")
def test_simulations_run_in_parallel_while_a_real_experiment_holds_the_lock(lock_file, isolated_store):
    """Two `mmlab simulate --save` at once, while the machine lock is held, both finish (simulations never
    take it) and store their rows in two different run folders."""
    holder = _holder(new_tag())
    try:
        name = scenario_names()[0]
        sims = [start_mmlab(["simulate", name, "--save", "--json"], new_tag(), MMLAB_LOCK_WAIT_S="0") for _ in range(2)]
        outs = [s.communicate(timeout=120) for s in sims]
        for s, (out, err) in zip(sims, outs):
            assert s.returncode == 0, err
            assert len(json.loads(out)) > 0
        assert holder.poll() is None and machine_lock.holders(lock_file)[0].pid == holder.pid
        dirs = store.run_dirs(isolated_store)
        assert len(dirs) == 2
    finally:
        stop(holder)


SAVE = textwrap.dedent("""
    import sys, time
    import pandas as pd
    from mmlab.core import store
    who, start = sys.argv[1], float(sys.argv[2])
    rows = pd.DataFrame({"experiment": ["x"] * 5, "method": ["simulated"] * 5, "writer": [who] * 5})
    time.sleep(max(0.0, start - time.time()))
    print(store.save({"x": rows}, {"x": {}}, {"host_tag": who}, run_id="20000101T000000.000Z-same"))
""")


def test_two_saves_with_the_same_run_id_at_once_never_clobber(isolated_store):
    """Two processes saving a run under the same id at the same instant get two folders, each holding
    exactly its own rows and a run.json naming its own folder."""
    start = time.time() + 1.5
    procs = [subprocess.Popen([PYTHON, "-c", SAVE, who, str(start)], stdout=subprocess.PIPE, text=True,
                              cwd=str(ROOT)) for who in ("one", "two")]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(outs)) == 2
    writers = set()
    for d in store.run_dirs(isolated_store):
        meta, frames = store.read_run(d)
        assert meta["run_id"] == d.name
        w = set(frames["x"]["writer"])
        assert len(w) == 1 and meta["env"]["host_tag"] in w
        writers |= w
    assert writers == {"one", "two"}

