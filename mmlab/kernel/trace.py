"""The kernel's own timeline: tracepoints read from a private tracefs instance.

A `session()` makes `instances/mmlab-<pid>-<seq>` under tracefs (mounting tracefs first if nobody has),
so the user's own tracing (the top-level buffer, other instances) is never touched; it sets the
instance's clock to `mono` (CLOCK_MONOTONIC, the clock of `time.monotonic()`), enables `EVENTS` with
per-event filters naming the experiment's tasks, and reads the buffer back as tidy rows. The instance,
and with it every event enabled in it, is removed on leaving, on every exit path; instances of mmlab
processes that died (SIGKILL leaves no chance to clean up) are removed by `remove_stale()`, the same
janitor that removes their memory cgroups. Without root or without tracefs, `availability()` says why
and the experiments run untraced.

The parser (`parse_line`, `parse`) is pure: the text lines of the `trace` file in, rows out.
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
import errno
import itertools
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mmlab.core.errors import MmlabError

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


# ---------------------------------------------------------------------------------------- parsing
_LINE_RE = re.compile(
    r"^\s*(?P<comm>.+?)-(?P<tid>\d+)\s+"
    r"(?:\(\s*(?P<tgid>[\d-]+)\)\s+)?"  # record-tgid
    r"\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s:]{4,6})\s+)?"  # irq-info
    r"(?P<ts>\d+\.\d+):\s+(?P<event>\w+):\s?(?P<body>.*)$")
_KEY_RE = re.compile(r"(?:^|\s)([A-Za-z_][\w-]*)[=:]")
_KB_RE = re.compile(r"^(-?\d+)kB$")


def parse_fields(body: str) -> dict[str, object]:
    """`pid=12 comm=python3 total-vm=1056kB file-rss:0kB` -> {pid: 12, comm: 'python3',
    total_vm_bytes: 1081344, file_rss_bytes: 0}: keys as Python names, `kB` values in bytes, integers
    as int. A value runs to the next key, so a comm with spaces survives."""
    keys = list(_KEY_RE.finditer(body))
    out: dict[str, object] = {}
    for i, m in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(body)
        raw = body[m.end():end].strip()
        key = m.group(1).replace("-", "_")
        kb = _KB_RE.match(raw)
        if kb:
            out[f"{key}_bytes"] = int(kb.group(1)) * 1024
        elif re.fullmatch(r"-?\d+", raw):
            out[key] = int(raw)
        else:
            out[key] = raw
    return out


_REAPED_RE = re.compile(r"oom_reaper: reaped process (\d+) \((.*)\), now anon-rss:(\d+)kB, file-rss:(\d+)kB, "
                        r"shmem-rss:(\d+)kB")
_KILLED_RE = re.compile(r"Killed process (\d+) \((.*)\) total-vm:(\d+)kB, anon-rss:(\d+)kB")


def parse_console(msg: str) -> dict[str, object]:
    """What an OOM report line says: which step it is, and the task it names."""
    msg = msg.strip()
    if "invoked oom-killer" in msg:
        return {"step": "oom_invoked", "comm": msg.split(" invoked oom-killer")[0]}
    m = _KILLED_RE.search(msg)
    if m:
        return {"step": "oom_killed_report", "pid": int(m.group(1)), "comm": m.group(2),
                "anon_rss_bytes": int(m.group(4)) * 1024}
    m = _REAPED_RE.search(msg)
    if m:
        return {"step": "oom_reaped_report", "pid": int(m.group(1)), "comm": m.group(2),
                "anon_rss_bytes": int(m.group(3)) * 1024}
    return {"step": "oom_report"}


def parse_line(line: str) -> dict[str, object] | None:
    """One line of a tracefs `trace` file -> a row, or None for headers, blank and lost-event lines.

    Row: time_s (the instance clock), event, task_comm/task_pid (the running task), cpu, pid (the task
    the event concerns: its `pid` field if it has one, else the running task), and the event's fields."""
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    m = _LINE_RE.match(line.rstrip("\n"))
    if m is None:
        return None
    event, body = m.group("event"), m.group("body")
    task_pid = int(m.group("tid"))
    row: dict[str, object] = {"time_s": float(m.group("ts")), "event": event, "task_comm": m.group("comm").strip(),
                              "task_pid": task_pid, "cpu": int(m.group("cpu"))}
    if event == "console":
        fields = parse_console(body)
        row["msg"] = body.strip()
        row["event"] = str(fields.pop("step"))
    elif event == "exit_mmap":
        fields = {}
    else:
        fields = parse_fields(body)
    if event == "signal_generate" and "grp" in fields:
        fields["group"] = fields.pop("grp")
    if event == "sched_switch" and isinstance(fields.get("prev_state"), str):
        fields["prev_state"] = str(fields["prev_state"]).split()[0]  # `R+ ==>`: the arrow is not the state
    row.update({k: v for k, v in fields.items() if k not in row})
    if not isinstance(row.get("pid"), int):
        row["pid"] = task_pid
    return row


def parse(text: str | Iterable[str]) -> list[dict[str, object]]:
    """The rows of a whole `trace` file, in time order."""
    lines = text.splitlines() if isinstance(text, str) else text
    rows = [r for r in (parse_line(x) for x in lines) if r is not None]
    return sorted(rows, key=lambda r: r["time_s"])


# The phases a row of an experiment gains, per task, as (column stem, event). The first occurrence of
# each event for the task is taken, except the memcg reclaim, whose first begin marks the limit.
PHASES: tuple[tuple[str, str], ...] = (
    ("limit", "mm_vmscan_memcg_reclaim_begin"),
    ("oom_invoked", "oom_invoked"),
    ("mark_victim", "mark_victim"),
    ("signal_generate", "signal_generate"),
    ("signal_deliver", "signal_deliver"),
    ("wake_reaper", "wake_reaper"),
    ("start_task_reaping", "start_task_reaping"),
    ("finish_task_reaping", "finish_task_reaping"),
    ("skip_task_reaping", "skip_task_reaping"),
    ("exit_mmap", "exit_mmap"),
    ("sched_process_exit", "sched_process_exit"),
    ("sched_process_free", "sched_process_free"),
)


def phases(events: list[Mapping[str, object]], pid: int, origin_s: float) -> dict[str, object]:
    """Kernel-side phase columns for one task from parsed events: `k_<phase>_s` (seconds since
    `origin_s`, same clock), NaN where the event did not occur, and derived durations:
    `k_kill_to_exit_mmap_s` and `k_kill_to_exit_s` from the SIGKILL's generation, `k_exit_to_exit_mmap_s`
    (do_exit to the end of the teardown) and the part of it spent on a CPU (`..._oncpu_s`; the rest it
    was off the CPU: preempted by other work, or sleeping), `k_oom_to_kill_s`
    from the OOM report's start to mark_victim, `k_reaped_bytes` (RSS the OOM reaper took)."""
    mine = [e for e in events if e.get("pid") == pid]
    # the OOM report runs in the task that hit the limit; it concerns that task's group, and its
    # "invoked oom-killer" line names no pid: count it for the task that logged it
    out: dict[str, object] = {}
    first: dict[str, float] = {}
    for e in sorted(mine, key=lambda e: e["time_s"]):
        first.setdefault(str(e["event"]), float(e["time_s"]))  # type: ignore[arg-type]
    nan = float("nan")
    for stem, ev in PHASES:
        out[f"k_{stem}_s"] = first[ev] - origin_s if ev in first else nan
    out["k_memcg_reclaims"] = sum(1 for e in mine if e["event"] == "mm_vmscan_memcg_reclaim_begin")

    def gap(a: str, b: str) -> float:
        return first[b] - first[a] if a in first and b in first else nan

    out["k_exit_to_exit_mmap_s"] = gap("sched_process_exit", "exit_mmap")
    out["k_exit_to_exit_mmap_oncpu_s"] = (on_cpu_s(events, pid, first["sched_process_exit"], first["exit_mmap"])
                                          if "sched_process_exit" in first and "exit_mmap" in first else nan)
    out["k_kill_to_exit_mmap_s"] = gap("signal_generate", "exit_mmap")
    out["k_kill_to_exit_s"] = gap("signal_generate", "sched_process_exit")
    out["k_oom_to_kill_s"] = gap("oom_invoked", "mark_victim")
    marked = next((e for e in mine if e["event"] == "mark_victim"), None)
    reaped = next((e for e in mine if e["event"] == "oom_reaped_report"), None)
    out["k_mark_victim_anon_rss_bytes"] = marked.get("anon_rss_bytes", nan) if marked else nan
    out["k_reaped_bytes"] = (int(marked["anon_rss_bytes"]) - int(reaped["anon_rss_bytes"])  # type: ignore[arg-type]
                             if marked and reaped and "anon_rss_bytes" in marked else (0 if marked else nan))
    return out


def on_cpu_s(events: list[Mapping[str, object]], pid: int, start_s: float, end_s: float) -> float:
    """Seconds the task ran on a CPU within [start_s, end_s], from sched_switch (switched in when it is
    next_pid, out when prev_pid); the task is taken as running at start_s (it logged the start event)."""
    running_since: float | None = start_s
    total = 0.0
    for e in events:
        if e["event"] != "sched_switch":
            continue
        t = float(e["time_s"])  # type: ignore[arg-type]
        if t <= start_s or t > end_s:
            continue
        if e.get("prev_pid") == pid and running_since is not None:
            total += t - running_since
            running_since = None
        elif e.get("next_pid") == pid and running_since is None:
            running_since = t
    if running_since is not None:
        total += end_s - running_since
    return total


def timeline(events: list[Mapping[str, object]], roles: Mapping[int, str], origin_s: float) -> list[dict]:
    """Events about the given tasks as rows for a plot: time_s since `origin_s`, event, pid, role."""
    out = []
    for e in events:
        pid = e.get("pid")
        if pid in roles:
            out.append({"time_s": float(e["time_s"]) - origin_s, "event": e["event"], "pid": pid,  # type: ignore[arg-type]
                        "role": roles[pid], "task_comm": e.get("task_comm"), "task_pid": e.get("task_pid")})
    return out


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


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
    return [p for p in instances() if not _pid_alive(int(NAME_RE.fullmatch(p.name).group(1)))]  # type: ignore[union-attr]


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
