"""Unprivileged users: the key paths run as `nobody` (uid 65534, no groups, no capabilities) with the
default RLIMIT_MEMLOCK of 8 MiB. Real experiments run at the sizes that limit allows or are skipped with
their reason; simulation, the store and the HTML report work; nothing that needs root is attempted
(traced with strace: no syscall fails with EPERM, nothing under /sys/fs/cgroup is written).

The suite runs as root, often from a clone under a folder `nobody` cannot enter (here the interpreter
itself lives under /root). Then the interpreter, the venv's packages and the project are mirrored into a
world-readable temporary folder with hard links (instant on one filesystem; copied otherwise), and the
unprivileged runs use that mirror.
"""
from __future__ import annotations

import json
import os
import re
import resource
import shutil
import site
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mmlab.kernel import machine_lock
from tests.conftest import IS_ROOT
from tests.conftest_reliability import ROOT, cli_args, experiment_names, scenario_names, tiny

pytestmark = [pytest.mark.reliability,
              pytest.mark.skipif(not IS_ROOT, reason="dropping to an unprivileged user needs root")]

NOBODY = 65534
RLIMIT_MEMLOCK_BYTES = 8 << 20  # the kernel's default since 5.16 (and what this machine's users get)
# Sizes that fit under 8 MiB, per experiment (other parameters from the shared tiny table).
UNPRIVILEGED = {
    "mlock-throughput": {"sizes": "1MiB"},
    "sigkill-during-mlock": {"vma_bytes": "4MiB,6MiB", "populated_bytes": "2MiB", "kill_after_s": 5},
    "munlock-partial": {"vma_bytes": "4MiB"},
    "prepatch-replay": {"vma_bytes": "4MiB"},
}


def _runs_as_nobody(python: str, env: dict) -> bool:
    try:
        r = _drop([python, "-c", "import mmlab, pandas, papermill, ipykernel"], env, timeout=120)
    except PermissionError:  # the interpreter itself is out of reach
        return False
    return r.returncode == 0


def _drop(argv: list[str], env: dict, timeout: float = 300, trace: Path | None = None, umask: int | None = None):
    """Run argv as nobody: no groups, no capabilities, RLIMIT_MEMLOCK = 8 MiB (optionally under strace).

    The drop is Python's own (setgroups, setregid, setreuid in the child before exec) or strace's `-u`:
    moving every uid off 0 clears all capabilities before the exec, so even the exec's path lookup is
    nobody's. (setpriv keeps its capabilities until its own exec, which lets it start a binary that
    nobody could not reach: not a faithful drop.)"""
    def limits():
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (RLIMIT_MEMLOCK_BYTES, RLIMIT_MEMLOCK_BYTES))
        if umask is not None:
            os.umask(umask)

    if trace is not None and shutil.which("strace") is None:
        trace = None  # without strace the syscall check is skipped; the other assertions still hold
    if trace is None:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, preexec_fn=limits,
                              cwd="/", user=NOBODY, group=NOBODY, extra_groups=[])
    cmd = ["strace", "-f", "-qq", "--seccomp-bpf", "-u", "nobody", "-o", str(trace), "-e", "status=failed",
           "-e", "trace=mkdir,rmdir,openat,unlink,mlock,mlock2,mlockall,setrlimit,prlimit64,kill", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, preexec_fn=limits, cwd="/")


def _link_tree(src: Path, dst: Path, ignore=None) -> None:
    """Mirror src at dst with hard links (copies across filesystems); folders keep their modes."""
    def link(s, d):
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)
    shutil.copytree(src, dst, symlinks=True, copy_function=link, ignore=ignore)


def _interpreter_for_nobody(work: Path, env: dict) -> str:
    """The interpreter nobody can run mmlab with: ours if nobody can reach it and the project, else a
    hard-linked mirror of interpreter, venv and project under `work` (env gains the paths to it)."""
    python = sys.executable
    if not _runs_as_nobody(python, env):
        # Mirror interpreter, packages and project where nobody can read them.
        # (bytecode caches come along: same inodes, same mtimes, so nothing is recompiled)
        py, venv, project = work / "py", work / "venv", work / "project"
        _link_tree(Path(sys.base_prefix), py, ignore=shutil.ignore_patterns("test", "tests", "idlelib", "site-packages"))
        _link_tree(Path(sys.prefix), venv, ignore=shutil.ignore_patterns("bin"))
        _link_tree(ROOT, project, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "reports", ".hypothesis",
                                                                ".pytest_cache", "benchmarks"))
        sitepk = venv / Path(site.getsitepackages()[0]).relative_to(sys.prefix)
        python = str(py / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}")
        env.update(PYTHONPATH=f"{project}:{sitepk}", LD_LIBRARY_PATH=str(py / "lib"), PATH=f"{py / 'bin'}:/usr/bin:/bin",
                   JUPYTER_PATH=str(venv / "share" / "jupyter"))
        if not _runs_as_nobody(python, env):
            pytest.fail("cannot make the interpreter and project readable by nobody, even through a mirror")

    return python


@pytest.fixture(scope="session")
def nobody(tmp_path_factory):
    """A runner for `python -m mmlab ...` as nobody, with its own writable runs/reports/home folders."""
    base = None
    for cand in (tempfile.gettempdir(), "/var/tmp", "/tmp"):
        if os.path.isdir(cand) and os.stat(cand).st_dev == os.stat(sys.base_prefix).st_dev:
            base = cand
            break
    work = Path(tempfile.mkdtemp(prefix="mmlab-nobody-", dir=base))
    os.chmod(work, 0o755)
    home = work / "home"
    for d in ("home", "runs", "reports", "lockdir"):
        (work / d).mkdir()
        os.chown(work / d, NOBODY, NOBODY)
    os.chmod(work / "lockdir", 0o1777)  # like /run/lock: sticky, world-writable
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "MMLAB_RUNS_DIR": str(work / "runs"),
           "MMLAB_REPORTS_DIR": str(work / "reports"), "MPLCONFIGDIR": str(home / "mpl"),
           "JUPYTER_RUNTIME_DIR": str(home / "jupyter-runtime"), "IPYTHONDIR": str(home / "ipython"),
           "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "MMLAB_LOCK_FILE": str(work / "lockdir" / "mmlab-real.lock"),
           "LANG": "C.UTF-8"}
    try:
        python = _interpreter_for_nobody(work, env)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise

    class Nobody:
        runs, reports, lock = work / "runs", work / "reports", Path(env["MMLAB_LOCK_FILE"])

        def mmlab(self, *args: str, trace: Path | None = None, umask: int | None = None, **extra: str):
            return _drop([python, "-m", "mmlab", *args], {**env, **extra}, trace=trace, umask=umask)

        def python(self, code: str):
            return _drop([python, "-c", code], env)

    yield Nobody()
    shutil.rmtree(work, ignore_errors=True)


def _root_attempts(trace: Path) -> list[str]:
    """Failed syscalls in an strace log that only root could have made succeed (none without strace)."""
    bad = []
    if not trace.exists():
        return bad
    for line in trace.read_text().splitlines():
        if "EPERM" in line or ("/sys/fs/cgroup" in line and ("mkdir" in line or "O_WRONLY" in line or "rmdir" in line)):
            bad.append(line)
        if re.search(r"\bmlock(2|all)?\(.*= -1 E(NOMEM|PERM|AGAIN)", line):
            bad.append(line)
    return bad


def test_nobody_has_no_cap_ipc_lock_and_the_default_memlock_limit(nobody):
    """As nobody, mmlab sees no CAP_IPC_LOCK, RLIMIT_MEMLOCK = 8 MiB and no memory cgroup, and says why."""
    r = nobody.mmlab("env", "--json")
    assert r.returncode == 0, r.stderr
    env = json.loads(r.stdout)
    assert env["uid"] == NOBODY and env["cap_ipc_lock"] is False
    assert env["rlimit_memlock_soft_bytes"] == RLIMIT_MEMLOCK_BYTES
    assert env["memory_cgroup"] is False and env["memory_cgroup_detail"]


def test_nobody_divides_sizes_into_the_memlock_limit_and_locks_them(nobody, tmp_path):
    """mlock-throughput as nobody with 1 MiB and 64 MiB asked: 64 MiB is above RLIMIT_MEMLOCK (8 MiB), so
    both sizes are divided by 8 (128 KiB and 8 MiB, still 64x apart); each child locks exactly its size
    (its own VmLck), the rows say so, and no mlock fails."""
    trace = tmp_path / "strace.log"
    r = nobody.mmlab("experiment", "mlock-throughput", "-p", "sizes", "1MiB,64MiB", "-p", "repeats", "2",
                     "-p", "warmup", "0", "-p", "mappings", "anon-private,anon-onfault", "-p", "settle_s", "0",
                     "--json", trace=trace)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert sorted({row["size_bytes"] for row in rows}) == [128 << 10, 8 << 20] and len(rows) == 8
    assert all(row["vmlck_locked_bytes"] == row["size_bytes"] for row in rows)
    assert all(row["size_divisor"] == 8 and row["memlock_limit_bytes"] == RLIMIT_MEMLOCK_BYTES for row in rows)
    assert "divided by 8" in r.stderr
    assert _root_attempts(trace) == []


@pytest.mark.parametrize("name", experiment_names())
def test_every_real_experiment_runs_or_skips_with_its_reason_as_nobody(name, nobody, tmp_path):
    """Each real experiment, as nobody at sizes under 8 MiB: exit 0 with rows, or skipped with a reason
    on stderr; no traceback, and no syscall that needs root is attempted."""
    trace = tmp_path / "strace.log"
    values = tiny(name, **UNPRIVILEGED.get(name, {}))
    r = nobody.mmlab("experiment", name, *cli_args(values), "--json", "--no-save", trace=trace)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    rows = json.loads(r.stdout)
    if not rows:
        assert re.search(rf"{re.escape(name)} skipped: \S.+", r.stderr), r.stderr
    attempts = _root_attempts(trace)
    assert attempts == [], "\n".join(attempts[:5])


@pytest.mark.skipif(not scenario_names(), reason="mmlab.sim is not importable")
def test_simulations_store_and_load_as_nobody(nobody):
    """Every simulated scenario runs and stores as nobody, and `mmlab.load()` reads the rows back."""
    total = 0
    for name in scenario_names():
        r = nobody.mmlab("simulate", name, "--save", "--json")
        assert r.returncode == 0, r.stderr
        total += len(json.loads(r.stdout))
    r = nobody.python("import mmlab; df = mmlab.load(); print(len(df[df['method'] == 'simulated']))")
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.strip().splitlines()[-1]) == total


def test_report_builds_as_nobody_with_nothing_world_writable(nobody):
    """`mmlab run` as nobody (umask 000 on purpose) builds the HTML report of a real notebook at an allowed
    size; every file and folder it writes is neither group- nor world-writable."""
    r = nobody.mmlab("run", "01", "-p", "sizes", "1MiB", "-p", "repeats", "1", "-p", "warmup", "0", umask=0)
    assert r.returncode == 0, r.stderr
    index = Path(r.stdout.strip().splitlines()[-1].removeprefix("HTML index: "))
    assert index.is_file() and (index.parent / "01-mlock-throughput.html").is_file()
    for folder in (nobody.runs, nobody.reports):
        for p in [folder, *folder.rglob("*")]:
            if p.stat().st_uid == NOBODY:
                assert not p.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH), f"{p} is writable by others"


def test_nobody_is_refused_while_root_holds_the_machine_lock(nobody, monkeypatch):
    """The lock is shared across users: while root holds it (file made by root, 0644, unwritable by nobody),
    nobody's real experiment is refused with one line naming root's process, and runs nothing."""
    lock = nobody.lock.with_name("made-by-root.lock")
    monkeypatch.setenv("MMLAB_LOCK_FILE", str(lock))
    with machine_lock.hold(wait_s=0):
        assert lock.stat().st_uid == 0 and stat.S_IMODE(lock.stat().st_mode) == 0o644
        r = nobody.mmlab("experiment", "mlock-throughput", "-p", "sizes", "1MiB", MMLAB_LOCK_WAIT_S="0",
                         MMLAB_LOCK_FILE=str(lock))
    assert r.returncode == 75, r.stderr
    assert f"pid {os.getpid()}" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("name", ["mlock-throughput", "sigkill-during-mlock", "munlock-partial", "prepatch-replay"])
def test_default_sizes_are_divided_into_the_limit_and_measured_as_nobody(name, nobody):
    """At its default sizes (up to a 64 GiB VMA), each experiment that needs no memory cgroup measures real
    rows as nobody: every size divided by one power of two into RLIMIT_MEMLOCK, no child's lock above it."""
    quick = {"repeats": "1", "warmup": "0"}
    if name in ("mlock-throughput", "prepatch-replay"):
        quick["settle_s"] = "0"
    r = nobody.mmlab("experiment", name, *cli_args(quick), "--json", "--no-save")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert rows and all(row["size_divisor"] > 1 and row["memlock_limit_bytes"] == RLIMIT_MEMLOCK_BYTES for row in rows)
    size = "size_bytes" if name == "mlock-throughput" else "vma_bytes"
    assert max(row[size] for row in rows) <= RLIMIT_MEMLOCK_BYTES
    assert "SizesScaled" in r.stderr and "Traceback" not in r.stderr


def test_the_replay_probe_locks_only_what_rlimit_memlock_leaves_as_nobody(nobody):
    """As nobody the replay's probe is locked beside the whole VMA, within RLIMIT_MEMLOCK: beside a VMA
    that fills the limit it is skipped with the reason and the row still measures; elsewhere it shrinks."""
    r = nobody.mmlab("experiment", "prepatch-replay", *cli_args({"vma_bytes": "2MiB,8MiB", "settings": "free",
                                                                 "repeats": "1", "warmup": "0", "settle_s": "0"}),
                     "--json", "--no-save")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {row["vma_bytes"] for row in rows} == {2 << 20, 8 << 20}
    for row in rows:
        assert row["vma_bytes"] + row["probe_bytes"] <= RLIMIT_MEMLOCK_BYTES and row["munlock_s"] > 0
    full = [row for row in rows if row["vma_bytes"] == RLIMIT_MEMLOCK_BYTES]
    assert all(row["probe_bytes"] == 0 and "RLIMIT_MEMLOCK" in row["probe_skipped"] for row in full)
    assert all(row["probe_munlock_ns_per_page"] > 0 for row in rows if row["vma_bytes"] == 2 << 20)
