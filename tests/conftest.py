"""Shared fixtures: every test stores runs and reports in its own temporary folders."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
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


def mlocked_bytes() -> int:
    from mmlab import procfs

    return procfs.meminfo()["Mlocked"]


def mmlab_processes() -> list[int]:
    """Pids of live `python -m mmlab.child` processes (experiment children)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"mmlab.child" in cmd:
                out.append(int(d.name))
    return out


needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (CAP_IPC_LOCK, memory cgroups)")
