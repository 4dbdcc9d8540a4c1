"""An mlock cut short: the child-side steps and parent-side probes the 2009-scenario experiments share.

The state under study is a VM_LOCKED VMA whose first pages are present and the rest absent: what
mlock() leaves when SIGKILL or a memory cgroup limit stops it part-way (kernel-history 1-2). Children
build it and report; parents watch RSS, kill, and time the exit through a pidfd. Facts behind the
choices (shared/MEASURING.md): VmLck jumps to the whole range at once, so progress is read from RSS
(/proc/PID/statm, the cheapest per-poll read) or mincore; with cgroup v1 `oom_kill_disable 1` a task
that faults at the limit sleeps in the memcg OOM wait until the limit is raised, so the parent raises it
on seeing `under_oom 1`.
"""
from __future__ import annotations

import errno as _errno
import os
import select
import signal
import time

from mmlab.core.units import PAGE_BYTES
from mmlab.kernel import cgroup, libc
from mmlab.kernel.child import Child, ChildTimeout

PAGE = PAGE_BYTES
_LOW_BIT = bytes(i & 1 for i in range(256))
FAULT_METHODS = ("auto", "populate-write", "write-loop")


# ---------------------------------------------------------------------------------------- child side
def map_anon(length: int) -> int:
    """Anonymous private writable mapping with MAP_NORESERVE: no commit charge, so a VMA far larger
    than RAM can be mapped and mlocked as long as it is killed before it is populated."""
    return libc.mmap(length, libc.PROT_READ | libc.PROT_WRITE,
                     libc.MAP_PRIVATE | libc.MAP_ANONYMOUS | libc.MAP_NORESERVE)


def resident_bytes(addr: int, length: int) -> int:
    """Bytes of [addr, addr+length) present now, by mincore (bit 0 of each page's byte)."""
    return libc.mincore(addr, length).translate(_LOW_BIT).count(1) * PAGE


def populate(addr: int, length: int, method: str = "populate-write") -> str:
    """Fault [addr, addr+length) in for writing; returns the method used.

    `populate-write` is MADV_POPULATE_WRITE (5.14+): get_user_pages -> faultin_page, the kernel path the
    pre-patch munlock took; on EINVAL (older kernel) it falls back to `write-loop`, one user-space write
    per page, labelled so. Errors other than EINVAL (ENOMEM at a cgroup limit, EINTR) propagate."""
    if length <= 0:
        return method if method != "auto" else "populate-write"
    if method in ("auto", "populate-write"):
        try:
            libc.madvise(addr, length, libc.MADV_POPULATE_WRITE)
            return "populate-write"
        except OSError as e:
            if e.errno != _errno.EINVAL:
                raise
    libc.touch(addr, length)
    return "write-loop"


def errno_name(err: int | None) -> str:
    return _errno.errorcode.get(err, str(err)) if err is not None else "ok"


# --------------------------------------------------------------------------------------- parent side
def parse_statm_resident(text: str | bytes, page_bytes: int = PAGE) -> int:
    """/proc/PID/statm (`size resident shared text lib data dt`, in pages) -> resident bytes."""
    fields = text.split()
    return int(fields[1]) * page_bytes if len(fields) > 1 else 0


class RssProbe:
    """Reads a child's resident bytes again and again from one open /proc/PID/statm (pread, no reopen):
    a few microseconds per poll, so the kill lands within a few dozen pages of the target."""

    def __init__(self, pid: int):
        self.fd = os.open(f"/proc/{pid}/statm", os.O_RDONLY)

    def read(self) -> int:
        try:
            return parse_statm_resident(os.pread(self.fd, 256, 0))
        except (OSError, ValueError):  # the task is exiting or gone
            return 0

    def close(self) -> None:
        # forget the fd before closing it, so a signal landing between the two can never make
        # a second close() hit EBADF (or an fd number already reused for something else)
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> RssProbe:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def term_signal(returncode: int | None) -> int | None:
    """The signal that ended a child (Popen returncode -N), or None if it exited normally."""
    return -returncode if returncode is not None and returncode < 0 else None


def exited(child: Child) -> bool:
    """True once the child has exited (its pidfd is readable); does not reap."""
    return child.wait_exit(0)


def kill_timed(child: Child, timeout_s: float) -> dict:
    """SIGKILL through the pidfd and time the exit: `kill_to_reap_s` runs from just before the signal to
    the pidfd becoming readable (the task has passed exit_mm, its memory torn down); `kill_to_wait_s`
    also includes waitpid(). A child that has not exited within timeout_s is a ChildTimeout."""
    t0 = time.monotonic()
    child.kill(signal.SIGKILL)
    if not child.wait_exit(timeout_s):
        raise ChildTimeout(f"child {child.target} (pid {child.pid}) not gone {timeout_s:g}s after SIGKILL")
    t1 = time.monotonic()
    rc = child.reap()
    t2 = time.monotonic()
    return {"kill_to_reap_s": t1 - t0, "kill_to_wait_s": t2 - t0, "term_signal": term_signal(rc)}


def hierarchy() -> tuple[cgroup.Hierarchy | None, str]:
    """Where memory cgroups can be made, or None and the reason they cannot."""
    try:
        return cgroup.find_hierarchy(), ""
    except (cgroup.CgroupUnavailable, OSError) as e:
        return None, str(e)


def next_event(child: Child, timeout_s: float, group: cgroup.MemoryCgroup | None = None,
               lift_on_under_oom: bool = False) -> tuple[dict, bool]:
    """The child's next event, and whether the group went under_oom meanwhile.

    With lift_on_under_oom (cgroup v1, oom_kill_disable 1) the limit is lifted as soon as a task of the
    group sleeps in the memcg OOM wait, so the child can go on and report (MEASURING.md)."""
    deadline = time.monotonic() + timeout_s
    seen = False
    while True:
        try:
            return child.recv(timeout_s=0.005), seen
        except ChildTimeout:
            if group is not None and lift_on_under_oom and group.under_oom():
                seen = True
                group.set_limit(None)
            if time.monotonic() > deadline:
                raise ChildTimeout(f"child {child.target} (pid {child.pid}) sent nothing for {timeout_s:g}s; "
                                   f"last event: {child.last_event}") from None


def leftover_events(child: Child) -> list[str]:
    """Names of the events a dead child wrote but the parent never read (e.g. `locked`, if mlock
    returned before the kill landed)."""
    import json

    data = child._buf
    if child.proc is not None and child.proc.stdout is not None:
        try:
            os.set_blocking(child.proc.stdout.fileno(), False)
            data += child.proc.stdout.read() or b""
        except (OSError, ValueError, TypeError):
            pass
    out = []
    for line in data.splitlines():
        try:
            out.append(json.loads(line).get("event", ""))
        except ValueError:
            pass
    return out


def wait_any_exit(children: list[Child], timeout_s: float) -> list[Child]:
    """Block until at least one of the children has exited (pidfd readable); the ones that have."""
    fds = {c.pidfd: c for c in children if c.pidfd is not None}
    ready, _, _ = select.select(list(fds), [], [], timeout_s)
    return [fds[f] for f in ready]
