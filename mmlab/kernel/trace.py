"""The kernel's own timeline: tracepoints read from a private tracefs instance.

A `session()` makes `instances/mmlab-<pid>-<seq>` under tracefs (mounting tracefs first if nobody has),
so the user's own tracing (the top-level buffer, other instances) is never touched; it sets the
instance's clock to `mono` (CLOCK_MONOTONIC, the clock of `time.monotonic()`), enables `EVENTS` with
per-event filters naming the experiment's tasks, and reads the buffer back as tidy rows. The instance,
and with it every event enabled in it, is removed on leaving, on every exit path; instances of mmlab
processes that died (SIGKILL leaves no chance to clean up) are removed by `remove_stale()`, the same
janitor that removes their memory cgroups. Without root or without tracefs, `availability()` says why
and the experiments run untraced.

The parser (`trace_events`: `parse_line`, `parse`, `phases`) is pure: the `trace` file's lines in, rows out.
Kernel facts behind the events (mm/oom_kill.c, kernel/exit.c, v6.18):
- `__oom_kill_process()`: SIGKILL (`signal_generate`), `mark_victim` (the victim's pid, its RSS at the
  kill) microseconds later, then `queue_oom_reaper()`: a timer fires OOM_REAPER_DELAY (2*HZ) later and,
  unless exit_mmap() has already set MMF_OOM_SKIP, `wake_reaper`; the oom_reaper kthread then logs
  `start_task_reaping` / `finish_task_reaping` (or `skip_task_reaping`).
- The OOM report is printk'd in the context of the task that hit the limit before the kill ("invoked
  oom-killer" first, "Killed process" last); `printk:console` traces each line when it is stored.
- `mmap:exit_mmap` fires at the end of exit_mmap(), in the exiting task; `sched_process_exit` in
  do_exit(); `sched_process_free` when the task_struct is freed (RCU, after the parent reaped it).
"""
from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mmlab.core.errors import MmlabError
from mmlab.kernel import procfs
from mmlab.kernel.cgroup import rmdir_when_idle
from mmlab.kernel.trace_events import on_cpu_s as on_cpu_s
from mmlab.kernel.trace_events import parse as parse
from mmlab.kernel.trace_events import parse_line as parse_line
from mmlab.kernel.trace_events import phases as phases
from mmlab.kernel.trace_events import timeline as timeline

TRACEFS = Path(os.environ.get("MMLAB_TRACEFS", "/sys/kernel/tracing"))
NAME_RE = re.compile(r"mmlab-([0-9]{1,10})-([0-9]{1,10})")  # used with fullmatch only
BUFFER_KB = 2048  # per CPU: an OOM kill with its memcg reclaim retries writes a few hundred events
_seq = itertools.count()


@dataclass(frozen=True)
class Event:
    """One tracepoint to enable and how to filter it to the experiment's tasks: `field` names the task
    the event concerns (`pid` for events about another task, `common_pid` for the running task)."""

    system: str
    name: str
    field: str  # or several, comma-separated: the event concerns the task named by any of them
    extra: str = ""  # an extra condition ANDed with the task filter
    also: str = ""  # an extra condition ORed with it (events logged by a kernel thread)

    @property
    def path(self) -> str:
        return f"{self.system}/{self.name}"

    def filter(self, pids: Iterable[int]) -> str:
        who = " || ".join(f"{f} == {int(p)}" for p in sorted(set(pids)) for f in self.field.split(","))
        if self.also:
            who = f"{who} || {self.also}" if who else self.also
        if not who:
            who = f"{self.field.split(',')[0]} == -1"
        return f"({self.extra}) && ({who})" if self.extra else who


EVENTS: tuple[Event, ...] = (
    Event("oom", "mark_victim", "pid"),
    Event("oom", "wake_reaper", "pid"),
    Event("oom", "start_task_reaping", "pid"),
    Event("oom", "finish_task_reaping", "pid"),
    Event("oom", "skip_task_reaping", "pid"),
    Event("signal", "signal_generate", "pid", extra="sig == 9"),
    Event("signal", "signal_deliver", "common_pid", extra="sig == 9"),
    Event("mmap", "exit_mmap", "common_pid"),
    Event("sched", "sched_process_exit", "pid"),
    Event("sched", "sched_process_free", "pid"),
    Event("sched", "sched_switch", "prev_pid,next_pid"),  # on and off the CPU: running or waiting
    Event("vmscan", "mm_vmscan_memcg_reclaim_begin", "common_pid"),
    Event("vmscan", "mm_vmscan_memcg_reclaim_end", "common_pid"),
    Event("printk", "console", "common_pid", extra='msg ~ "*oom*" || msg ~ "*Killed process*"',
          also='msg ~ "oom_reaper*"'),
)


class TraceUnavailable(MmlabError, RuntimeError):
    """Tracing cannot be done here; the message says why."""


# ---------------------------------------------------------------------------------------- tracefs
def _mounted_at() -> Path | None:
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                dev, mnt, fstype, *_ = line.split()
                if fstype == "tracefs" and Path(mnt.replace("\\040", " ")) == TRACEFS:
                    return TRACEFS
    except OSError:
        pass
    return TRACEFS if (TRACEFS / "instances").is_dir() else None


def _mount() -> None:
    """mount -t tracefs nodev TRACEFS, through the C library (the kernel's own knob, no helper binary)."""
    from . import libc

    libc.mount_fs("nodev", str(TRACEFS), "tracefs")


def tracefs(mount: bool = True) -> Path:
    """The tracefs root, mounted if it was not (needs root); TraceUnavailable saying why otherwise."""
    root = _mounted_at()
    if root is not None:
        return root
    if os.geteuid() != 0:
        raise TraceUnavailable(f"tracefs is not mounted at {TRACEFS} and only root may mount it")
    if not mount:
        raise TraceUnavailable(f"tracefs is not mounted at {TRACEFS}")
    try:
        _mount()
    except OSError as e:
        raise TraceUnavailable(f"cannot mount tracefs at {TRACEFS}: {e.strerror or e}") from None
    if _mounted_at() is None:
        raise TraceUnavailable(f"tracefs mounted at {TRACEFS} but has no instances folder")
    return TRACEFS


def missing_events(root: Path, events: Iterable[Event] = EVENTS) -> list[str]:
    return [e.path for e in events if not (root / "events" / e.path / "enable").exists()]


def availability() -> tuple[bool, str]:
    """Whether experiments can be traced here, and a sentence saying how or why not (does not mount)."""
    if os.geteuid() != 0:
        return False, f"tracing needs root (uid {os.geteuid()})"
    try:
        root = tracefs(mount=False)
    except TraceUnavailable as e:
        if "tracefs" in (Path("/proc/filesystems").read_text() if Path("/proc/filesystems").exists() else ""):
            return True, f"yes: tracefs will be mounted at {TRACEFS}"
        return False, str(e)
    if not os.access(root / "instances", os.W_OK):
        return False, f"{root}/instances is not writable"
    gone = missing_events(root)
    return True, "yes" + (f" (this kernel lacks {', '.join(gone)})" if gone else "") + f": {root}"


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


class Session:
    """One private trace instance with `events` enabled for the tasks given to `watch()`."""

    def __init__(self, root: Path, path: Path, events: tuple[Event, ...]):
        self.root, self.path = root, path
        self.events = tuple(e for e in events if (path / "events" / e.path / "enable").exists())
        self.missing = [e.path for e in events if e not in self.events]
        self.pids: set[int] = set()

    def watch(self, pids: Iterable[int]) -> None:
        """Trace events concerning these tasks (added to those already watched); tracing starts now."""
        self.pids |= {int(p) for p in pids}
        for e in self.events:
            d = self.path / "events" / e.path
            _write(d / "filter", e.filter(self.pids))
            _write(d / "enable", "1")
        _write(self.path / "tracing_on", "1")

    def text(self) -> str:
        return (self.path / "trace").read_text(errors="replace")

    def read(self) -> list[dict[str, object]]:
        """Every event recorded so far, parsed, in time order (the buffer is not consumed)."""
        return parse(self.text())

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            _write(self.path / "tracing_on", "0")

    def remove(self, timeout_s: float = 5.0) -> None:
        """Stop, disable every event, and rmdir the instance (retrying the brief EBUSY of a reader)."""
        remove_instance(self.path, timeout_s)

    def __repr__(self) -> str:
        return f"trace.Session({self.path})"


def remove_instance(path: Path, timeout_s: float = 5.0) -> None:
    with contextlib.suppress(OSError):
        _write(path / "tracing_on", "0")
    with contextlib.suppress(OSError):
        _write(path / "events" / "enable", "0")
    rmdir_when_idle(path, timeout_s)


def next_path() -> Path:
    """The path of this process's next instance, `instances/mmlab-<pid>-<seq>` (tracefs mounted if need be).

    Callers name the path before it exists so that their cleanup covers every moment after mkdir(),
    even a Ctrl-C landing between the syscall's return and the assignment of its result."""
    return tracefs() / "instances" / f"mmlab-{os.getpid()}-{next(_seq)}"


def create(events: tuple[Event, ...] = EVENTS, buffer_kb: int = BUFFER_KB, path: Path | None = None) -> Session:
    """A fresh instance (at `path`, default `next_path()`), clock `mono`, events configured but not yet
    enabled; on any failure it is removed again."""
    path = path or next_path()
    try:
        try:
            path.mkdir()
        except OSError as e:
            raise TraceUnavailable(f"cannot create a trace instance under {path.parent}: {e.strerror}") from None
        _write(path / "tracing_on", "0")
        _write(path / "trace_clock", "mono")
        _write(path / "buffer_size_kb", str(buffer_kb))
        s = Session(path.parent.parent, path, events)
        if not s.events:
            raise TraceUnavailable(f"none of the events exist on this kernel: {', '.join(s.missing)}")
        return s
    except BaseException:
        remove_instance(path)
        raise


@contextlib.contextmanager
def session(events: tuple[Event, ...] = EVENTS) -> Iterator[Session]:
    """A private trace instance, always removed on leaving (exceptions and Ctrl-C included)."""
    path = next_path()
    try:
        yield create(events, path=path)
    finally:
        remove_instance(path)


def instances(root: Path | None = None) -> list[Path]:
    """Every trace instance named by mmlab (live creators included)."""
    root = root or _mounted_at()
    if root is None:
        return []
    with contextlib.suppress(OSError):
        return sorted(p for p in (root / "instances").iterdir() if NAME_RE.fullmatch(p.name))
    return []


def stale_instances() -> list[Path]:
    """mmlab's trace instances whose creating process is gone."""
    return [p for p in instances() if not procfs.pid_alive(int(NAME_RE.fullmatch(p.name).group(1)))]  # type: ignore[union-attr]


def remove_stale() -> list[Path]:
    """The janitor: remove trace instances left by mmlab processes that died; returns what it removed."""
    removed = []
    for path in stale_instances():
        with contextlib.suppress(OSError):
            remove_instance(path)
            removed.append(path)
    return removed


def enabled_events(path: Path) -> list[str]:
    """`system:event` lines of an instance's (or the top level's) set_event: what is enabled there."""
    try:
        return [x for x in (path / "set_event").read_text().split() if x]
    except OSError:
        return []
