"""Trace text to rows: the lines of a tracefs `trace` file parsed into events, and the phases of a task
(signal, exit, exit_mmap, free; OOM kill and reaping) read from them. Pure: text in, rows out, so the
tests feed it fixture lines captured from this kernel."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

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
