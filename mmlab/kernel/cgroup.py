"""Memory cgroups, v2 (root or a delegated subtree) and v1: create, limit, read, move in, remove.

mmlab names every group it makes `mmlab-<pid>-<seq>` so a janitor can tell its own stale groups (their
creator is dead) from anyone else's. `memory_cgroup()` always kills what is inside and removes the group,
on every exit path. Facts behind the v1 handling (shared/MEASURING.md): with oom_kill_disable 1 an
over-limit task sleeps in the memcg OOM wait until the limit is raised or it is killed.
"""
from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mmlab.core.errors import MmlabError
from mmlab.kernel import procfs
from mmlab.kernel.procfs import parse_flat_keyed

CGROUP_ROOT = Path(os.environ.get("MMLAB_CGROUP_ROOT", "/sys/fs/cgroup"))
NAME_RE = re.compile(r"mmlab-([0-9]{1,10})-([0-9]{1,10})")  # used with fullmatch only, ASCII digits
_seq = itertools.count()


class CgroupUnavailable(MmlabError, RuntimeError):
    """No memory cgroup can be made here; the message says why."""


def _read(path: Path) -> str:
    return path.read_text()


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup -> {controller or '' (v2): path}."""
    out = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for c in (controllers.split(",") if controllers else [""]):
            out[c] = path
    return out


def _mounts() -> list[tuple[str, str, str]]:
    """(fstype, mountpoint, options) of cgroup mounts."""
    out = []
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                dev, mnt, fstype, opts, *_ = line.split()
                if fstype in ("cgroup", "cgroup2"):
                    out.append((fstype, mnt.replace("\\040", " "), opts))
    except OSError:
        pass
    return out


@dataclass(frozen=True)
class Hierarchy:
    """Where memory groups can be made: version 1 or 2 and the parent folder."""

    version: int
    parent: Path

    def describe(self) -> str:
        return f"cgroup v{self.version} at {self.parent}"


def candidate_parents() -> list[Hierarchy]:
    """Places to try, best first: a v2 tree with the memory controller, then v1's memory hierarchy.

    Each is tried at its root (root user) and at this process's own group (a delegated subtree)."""
    try:
        own = parse_proc_cgroup(Path("/proc/self/cgroup").read_text())
    except OSError:
        own = {}
    out: list[Hierarchy] = []
    for fstype, mnt, opts in _mounts():
        base = Path(mnt)
        if fstype == "cgroup2":
            controllers = (base / "cgroup.controllers")
            if controllers.exists() and "memory" in controllers.read_text().split():
                out.append(Hierarchy(2, base))
                if own.get("", "/") not in ("/", ""):
                    out.append(Hierarchy(2, base / own[""].lstrip("/")))
        elif "memory" in opts.split(","):
            out.append(Hierarchy(1, base))
            if own.get("memory", "/") not in ("/", ""):
                out.append(Hierarchy(1, base / own["memory"].lstrip("/")))
    return out


def find_hierarchy() -> Hierarchy:
    """The first place where this process may create a memory group, or CgroupUnavailable saying why."""
    reasons = []
    cands = candidate_parents()
    if not cands:
        raise CgroupUnavailable("no memory cgroup controller is mounted (neither cgroup v2 with 'memory' nor v1 'memory')")
    for h in cands:
        if os.access(h.parent, os.W_OK):
            if h.version == 2:
                sub = h.parent / "cgroup.subtree_control"
                if sub.exists() and "memory" not in sub.read_text().split():
                    # A v2 parent must enable memory for its children; try, since we may own it.
                    try:
                        sub.write_text("+memory")
                    except OSError as e:
                        reasons.append(f"{h.describe()}: cannot enable memory for children ({e.strerror})")
                        continue
            return h
        reasons.append(f"{h.describe()}: not writable by uid {os.getuid()}")
    raise CgroupUnavailable("no memory cgroup can be made here: " + "; ".join(reasons))


def rmdir_when_idle(path: Path, timeout_s: float) -> None:
    """Remove a kernel-filesystem directory (a memory cgroup, a tracefs instance) that the kernel may still
    hold for a moment after its last user left (EBUSY), retrying until `timeout_s`; gone already is fine."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class MemoryCgroup:
    """One memory group that mmlab made."""

    def __init__(self, hierarchy: Hierarchy, path: Path):
        self.hierarchy, self.path = hierarchy, path

    @property
    def version(self) -> int:
        return self.hierarchy.version

    def _file(self, v1: str, v2: str) -> Path:
        return self.path / (v1 if self.version == 1 else v2)

    def set_limit(self, limit_bytes: int | None) -> None:
        """Hard limit; None lifts it."""
        if self.version == 1:
            value = "-1" if limit_bytes is None else str(int(limit_bytes))
            self._file("memory.limit_in_bytes", "").write_text(value)
        else:
            self._file("", "memory.max").write_text("max" if limit_bytes is None else str(int(limit_bytes)))
            swap = self.path / "memory.swap.max"
            if swap.exists() and limit_bytes is not None:
                swap.write_text("0")

    def limit_bytes(self) -> int | None:
        raw = _read(self._file("memory.limit_in_bytes", "memory.max")).strip()
        return None if raw == "max" or int(raw) >= (1 << 62) else int(raw)

    def set_oom_kill_disable(self, disable: bool) -> None:
        """v1 only: with 1 the group's tasks wait at the limit instead of being OOM-killed."""
        if self.version != 1:
            raise CgroupUnavailable("oom_kill_disable exists only in cgroup v1 (v2 has no such switch)")
        (self.path / "memory.oom_control").write_text("1" if disable else "0")

    def usage_bytes(self) -> int:
        return int(_read(self._file("memory.usage_in_bytes", "memory.current")))

    def peak_bytes(self) -> int | None:
        p = self._file("memory.max_usage_in_bytes", "memory.peak")
        return int(_read(p)) if p.exists() else None

    def events(self) -> dict[str, int]:
        """Counters with v2 names: oom, oom_kill, max (limit hits); plus under_oom on v1."""
        if self.version == 2:
            return parse_flat_keyed(_read(self.path / "memory.events"))
        ctl = parse_flat_keyed(_read(self.path / "memory.oom_control"))
        failcnt = int(_read(self.path / "memory.failcnt"))
        return {"max": failcnt, "oom": ctl.get("oom_kill", 0), "oom_kill": ctl.get("oom_kill", 0),
                "under_oom": ctl.get("under_oom", 0), "oom_kill_disable": ctl.get("oom_kill_disable", 0)}

    def oom_kills(self) -> int:
        return self.events().get("oom_kill", 0)

    def under_oom(self) -> bool:
        return bool(self.events().get("under_oom", 0))

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in _read(self.path / "cgroup.procs").split()]
        except FileNotFoundError:
            return []

    def kill_all(self, timeout_s: float = 10.0) -> None:
        """SIGKILL everything inside and wait until the group is empty."""
        deadline = time.monotonic() + timeout_s
        if self.version == 1:
            with contextlib.suppress(OSError):
                self.set_limit(None)  # wake tasks sleeping in the v1 memcg OOM wait
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self, timeout_s: float = 10.0) -> None:
        """Kill what is inside, then rmdir; retries the brief EBUSY after the last task exits."""
        self.kill_all(timeout_s)
        rmdir_when_idle(self.path, timeout_s)

    def __repr__(self) -> str:
        return f"MemoryCgroup(v{self.version}, {self.path})"


def create(limit_bytes: int | None = None, hierarchy: Hierarchy | None = None) -> MemoryCgroup:
    h = hierarchy or find_hierarchy()
    path = h.parent / f"mmlab-{os.getpid()}-{next(_seq)}"
    try:
        path.mkdir()
    except OSError as e:
        raise CgroupUnavailable(f"cannot create a memory cgroup in {h.describe()}: {e.strerror}") from None
    group = MemoryCgroup(h, path)
    try:
        if limit_bytes is not None:
            group.set_limit(limit_bytes)
    except BaseException:
        group.remove()
        raise
    return group


@contextlib.contextmanager
def memory_cgroup(limit_bytes: int | None = None) -> Iterator[MemoryCgroup]:
    """A fresh memory group, always emptied and removed on leaving (exceptions and Ctrl-C included)."""
    group = create(limit_bytes)
    try:
        yield group
    finally:
        group.remove()


def availability() -> tuple[bool, str]:
    """Whether a memory cgroup can be made here (tries it) and a sentence saying which or why not."""
    try:
        with memory_cgroup(64 << 20) as g:
            return True, f"yes: {g.hierarchy.describe()}"
    except (CgroupUnavailable, OSError) as e:
        return False, str(e)


def stale_groups() -> list[Path]:
    """Groups named by mmlab whose creating process is gone."""
    out = []
    for h in candidate_parents():
        with contextlib.suppress(OSError):
            for child in h.parent.iterdir():
                m = NAME_RE.fullmatch(child.name)
                if m and child.is_dir() and not procfs.pid_alive(int(m.group(1))):
                    out.append(child)
    return sorted(set(out))


def remove_stale() -> list[Path]:
    """The janitor: empty and remove groups left by mmlab processes that died; returns what it removed."""
    removed = []
    for path in stale_groups():
        h = next((c for c in candidate_parents() if c.parent == path.parent), None)
        if h is None:
            continue
        with contextlib.suppress(OSError):
            MemoryCgroup(h, path).remove(timeout_s=5)
            removed.append(path)
    return removed
