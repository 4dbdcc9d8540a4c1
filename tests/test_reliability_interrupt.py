"""Interruption: SIGINT/SIGTERM to `mmlab experiment` and `mmlab run` at random moments, SIGKILL of a
notebook kernel or of an experiment's parent while its child locks memory. Afterwards no process of the
experiment is left (children die with their parent: PR_SET_PDEATHSIG), no memory cgroup is left (the
janitor removes a dead creator's groups at the next start), system Mlocked is back where it was, earlier
runs are byte-for-byte untouched, and nothing is half-written. Moments come from MMLAB_FAULT_SEED.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import textwrap
import time

import nbformat
import pytest

from tests.conftest import needs_root
from tests.conftest_reliability import (
    PYTHON,
    ROOT,
    SEED,
    RunsSnapshot,
    assert_mlocked_back,
    assert_no_cgroups,
    assert_no_processes,
    children_of,
    cli_args,
    cmdline,
    earlier_run,
    experiment_names,
    mmlab_cgroups,
    mmlab_env,
    new_tag,
    start_mmlab,
    stop,
    tiny,
    vmlck_bytes,
    wait_until,
)

pytestmark = pytest.mark.reliability
LOCK_WAIT_S = 150  # another real experiment on this machine may hold the machine lock for a while


def _reports_snapshot(reports) -> RunsSnapshot:
    earlier = reports / "earlier-report"
    earlier.mkdir(parents=True)
    (earlier / "index.html").write_text("<html>earlier</html>")
    return RunsSnapshot(reports)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("name", experiment_names())
def test_signal_to_mmlab_experiment_leaves_nothing_behind(name, sig, isolated_store, ledger):
    """A signal at a random moment of a real experiment ends it cleanly: exit 128+sig with one message,
    no process or memory cgroup of it left, Mlocked back, earlier runs untouched, nothing half-written."""
    snap = earlier_run(isolated_store)
    tag = new_tag()
    delay = random.Random(f"{SEED}-{name}-{int(sig)}").uniform(0.0, 0.5)
    proc = start_mmlab(["experiment", name, *cli_args(tiny(name, repeats=50))], tag)
    try:
        with ledger.fault():
            assert wait_until(lambda: children_of(proc.pid), LOCK_WAIT_S), \
                f"{name} started no child: {proc.poll()} {proc.stderr.read() if proc.poll() is not None else ''}"
            time.sleep(delay)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 128 + sig, f"rc {proc.returncode} (signal {delay:.3f}s after the first child): {err}"
            assert "Traceback" not in err, err
            assert ("interrupted" if sig == signal.SIGINT else "terminated") in err.strip().splitlines()[-1]
            assert_no_processes(tag)
            assert_no_cgroups(proc.pid)
            assert_mlocked_back(tag)
            snap.assert_nothing_half_written()
            ledger.runs(snap)
    finally:
        stop(proc)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_to_mmlab_run_leaves_nothing_behind(sig, isolated_store, tmp_path, ledger):
    """A signal to `mmlab run` while a notebook's experiment runs shuts the kernel and its children down;
    the report folder is marked `<id>.incomplete`; earlier runs and reports are untouched."""
    snap = earlier_run(isolated_store)
    reports = _reports_snapshot(tmp_path / "reports")
    tag = new_tag()
    delay = random.Random(f"{SEED}-run-{int(sig)}").uniform(0.0, 0.5)
    proc = start_mmlab(["run", "01", "-p", "sizes", "16MiB", "-p", "repeats", "60", "-p", "warmup", "0"], tag)
    try:
        with ledger.fault():
            def kernel_child():
                kernels = children_of(proc.pid, "ipykernel")
                return kernels and children_of(kernels[0])
            assert wait_until(kernel_child, LOCK_WAIT_S + 60, 0.05), f"no experiment child appeared: {proc.poll()}"
            time.sleep(delay)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 128 + sig, err
            # (the dying kernel and nbclient's leftover task may print their own tracebacks around ours)
            word = "interrupted" if sig == signal.SIGINT else "terminated"
            assert any(ln.startswith(f"mmlab: {word}") for ln in err.splitlines()), err
            assert_no_processes(tag, timeout_s=10)
            assert_mlocked_back(tag)
            new = reports.new_entries()
            assert all(p.name.endswith(".incomplete") for p in new), f"an interrupted report looks complete: {new}"
            reports.assert_intact()
            snap.assert_nothing_half_written()
            ledger.runs(snap)
    finally:
        stop(proc)


def _experiment_notebook(path, name: str, values: dict) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nb.cells = [nbformat.v4.new_code_cell("label: str = 'kill-test'  # unused", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(f"import mmlab\nmmlab.experiment({name!r}, {values!r}, progress=False)")]
    nbformat.write(nb, path)


@pytest.mark.parametrize("name", experiment_names())
def test_sigkill_of_the_notebook_kernel_while_a_child_locks_memory(name, isolated_store, tmp_path, ledger):
    """SIGKILL of the kernel while its experiment's child has a VM_LOCKED region: the child dies with it
    (PR_SET_PDEATHSIG), `mmlab run` reports the dead kernel, Mlocked comes back, and the kernel's memory
    cgroups (if any) are removed by the janitor at the next real experiment, which names them."""
    snap = earlier_run(isolated_store)
    tag = new_tag()
    nb = tmp_path / "90-kill.ipynb"
    _experiment_notebook(nb, name, tiny(name, repeats=60))
    proc = start_mmlab(["run", str(nb)], tag)
    try:
        with ledger.fault():
            found: dict = {}

            def locking_child():
                kernels = children_of(proc.pid, "ipykernel")
                for k in kernels:
                    for c in children_of(k):
                        if vmlck_bytes(c) > 0:
                            found.update(kernel=k, child=c)
                            return True
                return False
            assert wait_until(locking_child, LOCK_WAIT_S + 60, 0.001), f"never saw a child of {name} with VmLck > 0"
            kernel, child = found["kernel"], found["child"]
            os.kill(kernel, signal.SIGKILL)  # an outside kill, by pid
            assert wait_until(lambda: not children_of(kernel) and "mmlab.kernel.child" not in cmdline(child), 5.0), \
                "the child outlived its kernel"
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 1 and ("DeadKernelError" in err or "Kernel died" in err), err
            assert_no_processes(tag, timeout_s=10)
            assert_mlocked_back(tag)
            left = mmlab_cgroups(kernel)
            janitor = subprocess.run([PYTHON, "-m", "mmlab", "experiment", "mlock-throughput", "-p", "sizes", "1MiB",
                                      "-p", "warmup", "0", "--repeats", "1", "--no-save", "--json"],
                                     capture_output=True, text=True, timeout=LOCK_WAIT_S + 60, env=mmlab_env(tag))
            assert janitor.returncode == 0, janitor.stderr
            for group in left:
                assert str(group) in janitor.stderr, f"janitor did not name {group}: {janitor.stderr}"
            assert_no_cgroups(kernel)
            snap.assert_nothing_half_written()
            ledger.runs(snap)
    finally:
        stop(proc)


HOLDER = textwrap.dedent("""
    import sys
    from mmlab.kernel import cgroup
    from mmlab.kernel.child import Child
    group = cgroup.create()
    c = Child("mmlab.experiments.mlock_throughput:child_main", size_bytes=16 << 20, mapping="anon-private",
              file_dir="/tmp").start()
    c.expect("mapped"); group.add(c.pid); c.reply()
    c.expect("locked")
    print(group.path, c.pid, flush=True)
    sys.stdin.read()
""")


@needs_root
def test_janitor_removes_the_cgroup_of_a_sigkilled_parent_at_next_start(isolated_store, ledger):
    """SIGKILL of a parent whose child sits in an mmlab memory cgroup with 16 MiB mlocked: the child dies
    with it and its memory is unlocked, the (now empty) group stays, and the next `mmlab experiment`
    removes it at start and names it on stderr."""
    tag = new_tag()
    proc = subprocess.Popen([PYTHON, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=mmlab_env(tag), cwd=str(ROOT))
    try:
        with ledger.fault():
            group, child = proc.stdout.readline().split()
            assert vmlck_bytes(int(child)) >= 16 << 20
            proc.kill()
            proc.wait(10)
            assert_no_processes(tag)
            assert_mlocked_back(tag)
            assert [str(g) for g in mmlab_cgroups(proc.pid)] == [group], "the dead parent's group should be left"
            r = subprocess.run([PYTHON, "-m", "mmlab", "experiment", "mlock-throughput", "-p", "sizes", "1MiB",
                                "-p", "warmup", "0", "--repeats", "1", "--no-save", "--json"],
                               capture_output=True, text=True, timeout=LOCK_WAIT_S + 60, env=mmlab_env(tag))
            assert r.returncode == 0, r.stderr
            assert "removed 1 stale memory cgroup" in r.stderr and group in r.stderr, r.stderr
            assert_no_cgroups(proc.pid)
            assert len(json.loads(r.stdout)) == 1
    finally:
        stop(proc)
        for g in mmlab_cgroups(proc.pid):
            g.rmdir()
