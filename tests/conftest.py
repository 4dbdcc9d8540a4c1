"""Shared fixtures: every test stores runs and reports in its own temporary folders."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

# the reliability figures ledger and fault-injection helpers
pytest_plugins = ["tests.conftest_reliability"]
IS_ROOT = os.geteuid() == 0


@pytest.fixture(autouse=True)
def isolated_store(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    reports = tmp_path / "reports"
    monkeypatch.setenv("MMLAB_RUNS_DIR", str(runs))
    monkeypatch.setenv("MMLAB_REPORTS_DIR", str(reports))
    return runs


@pytest.fixture
def fixture_text():
    def read(name: str) -> str:
        return (FIXTURES / name).read_text()

    return read


# How far system Mlocked may move over an experiment's whole span (seconds) without anything of ours left
# locked: on the CI machine the one other process with locked memory, init (mlockall, VmLck 36 MiB), moved
# it between 7.76 and 8.00 MiB with no test running, and by more than 256 KiB across one experiment. The
# tests lock at least 4 MiB, so a leak still shows.
MLOCKED_SLACK_BYTES = 1 << 20


def mlocked_bytes() -> int:
    from mmlab.kernel import procfs

    return procfs.meminfo()["Mlocked"]


def _ppid(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(text[text.rindex(")") + 2:].split()[1])


def mmlab_processes(ancestor: int | None = None) -> list[int]:
    """Pids of live `python -m mmlab.kernel.child` processes (experiment children) descended from `ancestor`
    (default: this test process), so experiments run by anyone else on the machine are not counted."""
    ancestor = os.getpid() if ancestor is None else ancestor
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"mmlab.kernel.child" not in cmd:
                continue
            pid = int(d.name)
            while pid > 1:
                pid = _ppid(pid)
                if pid == ancestor:
                    out.append(int(d.name))
                    break
    return out


# `-m root` / `-m "not root"` select the tests that need root; without root they are skipped.
needs_root = pytest.mark.root


def pytest_collection_modifyitems(config, items):
    if IS_ROOT:
        return
    skip = pytest.mark.skipif(True, reason="needs root (CAP_IPC_LOCK, memory cgroups)")
    for item in items:
        if item.get_closest_marker("root"):
            item.add_marker(skip)
