"""The machine-wide lock for real experiments: one at a time per machine, simulations never take it.

Two real experiments at once disturb each other's timings and can push each other into the OOM killer,
so `mmlab.experiments.run` holds an exclusive `flock(2)` on one file for the whole experiment. The
kernel drops a flock when its last file descriptor closes, so a holder that dies (even by SIGKILL)
never leaves the machine locked. Who holds it is read from /proc/locks (the kernel's own record:
pid, device and inode of each lock), never from text a holder wrote, so it cannot be stale or forged.

A second caller waits up to `MMLAB_LOCK_WAIT_S` seconds (default 120; 0 refuses at once), saying once
on stderr whom it waits for, then refuses with `MachineBusy`: one line naming the holder's pid and
command. The lock is re-entrant within a process (flock conflicts between two open() of the same file
even in one process).

Lock file: `MMLAB_LOCK_FILE`, else /run/lock/mmlab-real.lock (/tmp/mmlab-real.lock without /run/lock),
shared by every user, because an unprivileged run disturbs a root run just as much. It is opened with
O_NOFOLLOW and must be a regular file; it is created 0644 and never written to, so a planted symlink or
hard link cannot make root write anywhere. flock works on a read-only descriptor, so a user who cannot
write the file (created by root) can still lock it.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mmlab.core.errors import MmlabError

DEFAULT_WAIT_S = 120.0
POLL_S = 0.05


class MachineBusy(MmlabError, RuntimeError):
    """Another process holds the machine lock for real experiments; the message names it (one line).
    Exit code 75, EX_TEMPFAIL of sysexits.h: try again later."""

    exit_code = 75
    label = "busy"


@dataclass(frozen=True)
class Holder:
    """A process holding a flock, as /proc/locks reports it."""

    pid: int
    command: str

    def describe(self) -> str:
        return f"pid {self.pid} ({self.command})" if self.command else f"pid {self.pid}"


def lock_path() -> Path:
    """The lock file, read from the environment at call time (tests point it elsewhere)."""
    env = os.environ.get("MMLAB_LOCK_FILE")
    if env:
        return Path(env)
    run_lock = Path("/run/lock")
    return (run_lock if run_lock.is_dir() else Path("/tmp")) / "mmlab-real.lock"


def wait_s_default() -> float:
    """MMLAB_LOCK_WAIT_S as seconds (>= 0); a malformed value is a one-line error, not a silent default."""
    raw = os.environ.get("MMLAB_LOCK_WAIT_S")
    if raw is None or raw.strip() == "":
        return DEFAULT_WAIT_S
    from mmlab.core.params import ParamError

    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (0.0 <= value <= 86400.0):  # also rejects NaN
        raise ParamError("MMLAB_LOCK_WAIT_S", raw, "seconds from 0 (refuse at once) to 86400", "is not valid")
    return value


# ------------------------------------------------------------------------------------- pure parsers
def parse_proc_locks(text: str) -> list[dict]:
    """/proc/locks lines -> [{kind, mode, pid, major, minor, inode}] for FLOCK locks.

    Format (fs/locks.c lock_get_status): `1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF`; blocked
    waiters are listed with a `->` before the kind and are not holders, so they are left out."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 6 or "->" in parts[1]:
            continue
        kind, mode, rw, pid, dev = parts[1], parts[2], parts[3], parts[4], parts[5]
        if kind != "FLOCK":
            continue
        try:
            major, minor, inode = dev.split(":")
            out.append({"kind": kind, "mode": mode, "rw": rw, "pid": int(pid),
                        "major": int(major, 16), "minor": int(minor, 16), "inode": int(inode)})
        except ValueError:
            continue
    return out


def parse_cmdline(raw: bytes, limit: int = 160) -> str:
    """/proc/PID/cmdline (NUL-separated) -> one printable line, shortened to `limit` characters."""
    text = " ".join(a.decode(errors="replace") for a in raw.split(b"\0") if a)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------- I/O
def holders(path: Path | None = None) -> list[Holder]:
    """Processes holding a flock on the lock file (normally one), from /proc/locks."""
    path = path or lock_path()
    try:
        st = os.stat(path, follow_symlinks=False)
        text = Path("/proc/locks").read_text()
    except OSError:
        return []
    out = []
    for lk in parse_proc_locks(text):
        if lk["inode"] == st.st_ino and os.makedev(lk["major"], lk["minor"]) == st.st_dev:
            try:
                cmd = parse_cmdline(Path(f"/proc/{lk['pid']}/cmdline").read_bytes())
            except OSError:
                cmd = ""
            out.append(Holder(lk["pid"], cmd))
    return out


def _open(path: Path) -> int:
    """An fd on the lock file: created 0644 if absent, never through a symlink, never a non-regular file.

    Falls back to opening without O_CREAT (fs.protected_regular forbids O_CREAT on another user's file in
    a sticky folder) and then read-only (enough for flock)."""
    flags = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
    last: OSError | None = None
    for extra in (os.O_RDWR | os.O_CREAT, os.O_RDWR, os.O_RDONLY):
        try:
            old = os.umask(0o022)
            try:
                fd = os.open(path, flags | extra, 0o644)
            finally:
                os.umask(old)
            break
        except OSError as e:
            last = e
            if e.errno == errno.ELOOP:
                raise MachineBusy(f"machine lock {path} is a symbolic link; refusing to follow it (remove it)") from None
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                break
    else:
        fd = -1
    if fd < 0:
        assert last is not None
        raise MachineBusy(f"cannot open the machine lock {path}: {last.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise MachineBusy(f"machine lock {path} is not a regular file; refusing to use it")
    return fd


_guard = threading.RLock()
_held: dict[str, int] = {"fd": -1, "depth": 0}


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise


def acquire(wait_s: float | None = None, path: Path | None = None, quiet: bool = False) -> None:
    """Take the lock (re-entrant in this process): wait up to `wait_s`, then MachineBusy naming the holder."""
    with _guard:
        if _held["depth"] > 0:
            _held["depth"] += 1
            return
        path = path or lock_path()
        wait_s = wait_s_default() if wait_s is None else wait_s
        fd = _open(path)
        try:
            deadline = time.monotonic() + wait_s
            said = False
            while not _try_flock(fd):
                who = ", ".join(h.describe() for h in holders(path)) or "another process"
                if time.monotonic() >= deadline:
                    waited = f"after waiting {wait_s:g}s" if wait_s > 0 else "(MMLAB_LOCK_WAIT_S=0)"
                    raise MachineBusy(
                        f"another real experiment holds the machine lock {path}: {who}; two at once would disturb "
                        f"each other, so this one is refused {waited}; retry when it ends or set MMLAB_LOCK_WAIT_S "
                        f"to wait longer")
                if not said and not quiet:
                    print(f"mmlab: waiting up to {wait_s:g}s for the machine lock held by {who}", file=sys.stderr, flush=True)
                    said = True
                time.sleep(POLL_S)
        except BaseException:
            os.close(fd)
            raise
        _held["fd"], _held["depth"] = fd, 1


def release() -> None:
    """Drop one level of the lock; the flock goes with the last one (closing the fd releases it)."""
    with _guard:
        if _held["depth"] <= 0:
            return
        _held["depth"] -= 1
        if _held["depth"] == 0:
            fd, _held["fd"] = _held["fd"], -1
            with contextlib.suppress(OSError):
                os.close(fd)


def held() -> bool:
    """Whether this process holds the lock now."""
    return _held["depth"] > 0


@contextlib.contextmanager
def hold(wait_s: float | None = None, path: Path | None = None, quiet: bool = False) -> Iterator[None]:
    """The lock for the duration of a `with` block (released on every exit path)."""
    acquire(wait_s, path, quiet)
    try:
        yield
    finally:
        release()


def _reset_after_fork() -> None:
    # A forked child shares the open file description: it must not think it holds the lock, nor
    # release it for the parent. (Children of mmlab are exec'd with close_fds, so they never see the fd.)
    _held["fd"], _held["depth"] = -1, 0


os.register_at_fork(after_in_child=_reset_after_fork)
