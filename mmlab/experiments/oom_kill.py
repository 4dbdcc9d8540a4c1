"""`oom-kill`: a victim mlocks more than its memory cgroup allows; who does the OOM killer take?

Inside a fresh memory cgroup limited to `limit_bytes`, `bystanders` children each fill `bystander_bytes`
with a pattern and report its CRC; then a victim mlocks `lock_bytes` (> limit). mlock's get_user_pages
charges each page to the group; at the limit the group's OOM killer SIGKILLs the task with the largest
RSS (the victim, once it outgrows each bystander), mlock stops on the fatal signal, and on a modern
kernel the victim's exit only frees what it got (kernel-history 4-5). In 2009 that exit faulted in
every unreached page and bystanders were killed too ("mm: munlock use follow_page", 408e82b78bcc).
Bystanders are checked alive with their memory intact (CRC recomputed) before they are torn down.
The parent polls the group tightly: its failed-charge count (v1 memory.failcnt, v2 memory.events max)
marks the limit first hit, its oom_kill count the kill, each pidfd an exit. `limit_to_kill_s`, the OOM
killer's own time (reclaim retries, victim selection, report), prices the simulator's `oom_kill_s`.
Runs only inside a memory cgroup; without one the experiment is skipped.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
import zlib
from dataclasses import dataclass

from mmlab.core import params as p
from mmlab.core.units import PAGE_BYTES, format_bytes
from mmlab.experiments import Experiment
from mmlab.experiments.common import RealParams, counters, progress_bar, repetitions
from mmlab.experiments.cut_short import RssProbe, hierarchy, map_anon, term_signal, wait_any_exit
from mmlab.experiments.traced import trace_field, tracer
from mmlab.kernel import cgroup, libc
from mmlab.kernel.child import Child
from mmlab.kernel.safety import Skipped

NAME = "oom-kill"
VICTIM = "mmlab.experiments.oom_kill:victim_main"
BYSTANDER = "mmlab.experiments.oom_kill:bystander_main"
PER_PROCESS_SLACK_BYTES = 16 << 20  # what a Python child may charge to the group besides its data


@dataclass(frozen=True)
class OomParams(RealParams):
    limit_bytes: int = p.size("256MiB", "the memory cgroup's limit", lo=16 << 20)
    lock_bytes: int = p.size("1GiB", "the victim's mlock() (must exceed limit_bytes)", hi=1 << 44)
    bystanders: int = p.integer(2, "bystander processes in the same group", 0, 16)
    bystander_bytes: int = p.size("32MiB", "memory each bystander fills and keeps")
    trace: bool = trace_field()

    def check(self) -> None:
        if self.lock_bytes <= self.limit_bytes:
            raise p.ParamError("lock_bytes", format_bytes(self.lock_bytes),
                               f"more than limit_bytes ({format_bytes(self.limit_bytes)})", "does not exceed the limit")
        room = self.limit_bytes - (self.bystanders + 1) * PER_PROCESS_SLACK_BYTES
        if self.bystanders * self.bystander_bytes > room / 2:
            raise p.ParamError("bystander_bytes", format_bytes(self.bystander_bytes),
                               f"bystanders x bystander_bytes at most {format_bytes(max(0, room // 2))} "
                               f"(half of limit_bytes less {format_bytes(PER_PROCESS_SLACK_BYTES)} per process), "
                               "so the victim outgrows each bystander", "is too large for the limit")


def crc(addr: int, length: int) -> int:
    """CRC32 of the memory itself, read in place (no copy charged to the group)."""
    return zlib.crc32(memoryview((libc.ctypes.c_char * length).from_address(addr)))


def bystander_main(ctx, nbytes: int, seed: int) -> None:
    """Runs in a bystander: join the group, fill memory with a pattern, keep it, prove it on request."""
    ctx.sync("started")  # the parent moves us into the group now
    addr = map_anon(nbytes)
    libc.fill(addr, nbytes, seed)
    for off in range(0, nbytes, 1 << 20):  # vary it per MiB so a lost or zeroed page shows
        libc.fill(addr + off, 8, (seed + off // (1 << 20)) % 255 + 1)
    first = crc(addr, nbytes)
    ctx.sync("ready", crc=first, resident_bytes=_resident(addr, nbytes))
    ctx.sync("checked", crc=crc(addr, nbytes), crc_ready=first, resident_bytes=_resident(addr, nbytes))
    libc.munmap(addr, nbytes)


def _resident(addr: int, nbytes: int) -> int:
    from mmlab.experiments.cut_short import resident_bytes

    return resident_bytes(addr, nbytes)


def victim_main(ctx, lock_bytes: int) -> None:
    """Runs in the victim: join the group, map, then mlock more than the group may hold."""
    ctx.sync("started")
    addr = map_anon(lock_bytes)
    ctx.sync("mapped")
    ctx.send("locking", t_ns=time.monotonic_ns())
    libc.mlock(addr, lock_bytes)
    ctx.sync("locked")  # reached only if the OOM killer did not take us


def _join(c: Child, group: cgroup.MemoryCgroup) -> None:
    c.expect("started")
    group.add(c.pid)
    c.reply()


def run_once(params: OomParams, traced: bool | None = None) -> tuple[list[dict], dict]:
    """One group, its bystanders and one victim: rows per process and the group's figures; with
    tracing, each row gains the kernel's phases for its task (k_* columns, seconds since mlock())."""
    rows: list[dict] = []
    with contextlib.ExitStack() as stack:
        group = stack.enter_context(cgroup.memory_cgroup(params.limit_bytes))
        tr = stack.enter_context(tracer(params.trace if traced is None else traced))
        shared = {"limit_bytes": params.limit_bytes, "cgroup_version": group.version}
        shared.update(counters("before"))
        bys = []
        for i in range(params.bystanders):
            b = stack.enter_context(Child(BYSTANDER, timeout_s=params.timeout_s, nbytes=params.bystander_bytes, seed=i + 1))
            _join(b, group)
            ready = b.expect("ready")
            bys.append((b, ready))
        v = stack.enter_context(Child(VICTIM, timeout_s=params.timeout_s, lock_bytes=params.lock_bytes))
        _join(v, group)
        v.expect("mapped")
        probe = stack.enter_context(RssProbe(v.pid))
        rss_base = probe.read()  # the interpreter, charged before it joined the group
        ev0 = group.events()
        kills0, max0 = ev0.get("oom_kill", 0), ev0.get("max", 0)
        tr.watch([v.pid] + [b.pid for b, _ in bys])
        v.reply()
        t_start = v.expect("locking")["t_ns"] / 1e9
        deadline = time.monotonic() + params.timeout_s
        everyone = [v] + [b for b, _ in bys]
        t_kill: float | None = None
        t_max: float | None = None  # first failed charge at the limit (v1 failcnt, v2 events max)
        t_exit: dict[int, float] = {}
        rss_last = 0
        # Poll tightly: the failed-charge count marks the limit, the oom_kill count the kill, each pidfd the exit.
        while v.pid not in t_exit and time.monotonic() < deadline:
            r = probe.read()
            rss_last = r or rss_last
            if t_kill is None:
                ev = group.events()
                now = time.monotonic()
                if t_max is None and ev.get("max", 0) > max0:
                    t_max = now
                if ev.get("oom_kill", 0) > kills0:
                    t_kill = now
            for c in wait_any_exit([c for c in everyone if c.pid not in t_exit], 0):
                t_exit[c.pid] = time.monotonic()
        probe.close()
        if v.pid not in t_exit:
            raise TimeoutError(f"{NAME}: the victim (pid {v.pid}) was neither OOM-killed nor done after "
                               f"{params.timeout_s:g}s")
        events = group.events()
        group_figs = {"cgroup_oom_kill": events.get("oom_kill", 0), "cgroup_oom": events.get("oom", 0),
                      "cgroup_max": events.get("max", 0), "cgroup_peak_bytes": group.peak_bytes()}
        shared.update(group_figs)
        rc = v.reap()
        tr.finish(reaped_pid=v.pid)  # the OOM episode ends here; the bystanders' later exits are not part of it
        t_k = t_kill if t_kill is not None else float("nan")
        rows.append({"role": "victim", "pid": v.pid, "survived": rc >= 0, "term_signal": term_signal(rc),
                     "start_to_kill_s": t_k - t_start, "kill_to_reap_s": t_exit[v.pid] - t_k,
                     "limit_to_kill_s": t_k - t_max if t_max is not None else float("nan"),
                     "start_to_exit_s": t_exit[v.pid] - t_start,
                     "rss_at_death_bytes": rss_last, "populated_at_death_bytes": max(0, rss_last - rss_base),
                     "memory_intact": None, "process_bytes": params.lock_bytes})
        for b, ready in bys:
            if b.pid in t_exit or b.wait_exit(0):
                rc = b.reap()
                te = t_exit.get(b.pid, time.monotonic())
                rows.append({"role": "bystander", "pid": b.pid, "survived": False, "term_signal": term_signal(rc),
                             "start_to_kill_s": te - t_start, "kill_to_reap_s": float("nan"),
                             "start_to_exit_s": te - t_start, "rss_at_death_bytes": None,
                             "memory_intact": False, "process_bytes": params.bystander_bytes})
                continue
            b.reply()
            chk = b.expect("checked")
            intact = chk["crc"] == ready["crc"] and chk["resident_bytes"] >= params.bystander_bytes
            rows.append({"role": "bystander", "pid": b.pid, "survived": True, "term_signal": None,
                         "start_to_kill_s": float("nan"), "kill_to_reap_s": float("nan"),
                         "start_to_exit_s": float("nan"), "rss_at_death_bytes": None,
                         "memory_intact": intact, "resident_at_check_bytes": chk["resident_bytes"],
                         "process_bytes": params.bystander_bytes})
            b.reply()
            b.expect("done")
        for r in rows:
            r.update(tr.phases(r["pid"], t_start))
    shared.update(counters("after"))
    return rows, shared


def run(params: OomParams, progress: bool = True):
    import pandas as pd

    from mmlab.kernel.safety import budget

    h, why = hierarchy()
    if h is None:
        raise Skipped(f"{NAME} runs only inside a memory cgroup, and none can be made here: {why}")
    # the group's limit bounds what can be locked; it must itself be within the guard
    b = budget(params.lock_share)
    b.check("limit_bytes", params.limit_bytes)
    if b.rlimit_bytes is not None and params.lock_bytes > b.rlimit_bytes:
        # Without CAP_IPC_LOCK an mlock() above RLIMIT_MEMLOCK fails with ENOMEM before it charges the group;
        # the victim still outgrows the group with an mlock() of the limit itself, if that is above the limit.
        if b.rlimit_bytes <= params.limit_bytes:
            raise Skipped(f"{NAME}: without CAP_IPC_LOCK mlock is capped at RLIMIT_MEMLOCK = "
                          f"{format_bytes(b.rlimit_bytes)}, not above limit_bytes {format_bytes(params.limit_bytes)}: "
                          "the victim's mlock would fail with ENOMEM instead of meeting the group's limit")
        params = dataclasses.replace(params, lock_bytes=b.rlimit_bytes // PAGE_BYTES * PAGE_BYTES)
    rows = []
    with progress_bar(params.warmup + params.repeats, NAME, progress) as bar:
        for rep, warm in repetitions(params):
            procs, shared = run_once(params)
            for seq, r in enumerate(procs):
                rows.append({"experiment": NAME, "method": "real", "repeat": rep, "warmup": warm, "order": seq,
                             "lock_bytes": params.lock_bytes, "bystanders": params.bystanders,
                             "bystander_bytes": params.bystander_bytes, **r, **shared})
            bar.update()
    df = pd.DataFrame(rows)
    df["term_signal"] = df["term_signal"].astype("Int64")  # a signal number, or null for survivors
    df["memory_intact"] = df["memory_intact"].astype("boolean")
    return df


def outcome(rows) -> dict:
    """What happened across repeats (warm-ups excluded): victims killed (and by which signal), bystanders
    alive with memory intact, and the group's OOM-kill count per repeat."""
    from mmlab.core.stats import measured_rows

    d = measured_rows(rows)
    v = d[d["role"] == "victim"]
    b = d[d["role"] == "bystander"]
    return {"repeats": int(d["repeat"].nunique()), "victims": len(v), "victims_killed": int((~v["survived"].astype(bool)).sum()),
            "victim_signals": sorted({int(s) for s in v["term_signal"].dropna()}),
            "bystanders": len(b), "bystanders_alive": int(b["survived"].astype(bool).sum()),
            "bystanders_intact": int((b["memory_intact"] == True).sum()),  # noqa: E712 - None means not checked
            "oom_kills_per_repeat": sorted({int(k) for k in d.groupby("repeat")["cgroup_oom_kill"].first()})}


EXPERIMENT = Experiment(
    name=NAME,
    description="in a memory cgroup, a victim mlocks beyond the limit among bystanders: who is OOM-killed",
    Params=OomParams,
    run=run,
    needs_cgroup=True,
)


def findings(rows) -> str:
    """Markdown sentences built from the rows: who was killed, by which signal, after how long, and
    whether the bystanders survived with their memory intact."""
    from mmlab.core.stats import measured_rows

    o = outcome(rows)
    d = measured_rows(rows)
    v = d[d["role"] == "victim"]
    sig = ", ".join(str(s) for s in o["victim_signals"]) or "none"
    lines = [f"- The victim was killed in {o['victims_killed']} of {o['victims']} repeats (signal {sig}), "
             f"median {v['start_to_kill_s'].median() * 1e3:.0f} ms after mlock() began, with "
             f"{v['populated_at_death_bytes'].median() / (1 << 20):.0f} MiB of the mlocked VMA populated (limit "
             f"{d['limit_bytes'].iloc[0] / (1 << 20):.0f} MiB); its exit took a median "
             f"{v['kill_to_reap_s'].median() * 1e3:.1f} ms. From the first charge failing at the limit to the "
             f"kill, the OOM killer took a median {v['limit_to_kill_s'].median() * 1e3:.1f} ms.",
             f"- {o['bystanders_alive']} of {o['bystanders']} bystanders survived; {o['bystanders_intact']} had their "
             "memory intact (CRC unchanged, all pages resident).",
             f"- OOM kills counted by the group per repeat: {', '.join(map(str, o['oom_kills_per_repeat']))}."]
    lines += kernel_findings(v)
    if o["bystanders"] and o["bystanders_alive"] == o["bystanders"] == o["bystanders_intact"]:
        lines.append("\nOn this kernel the bystanders survive: the OOM killer took only the mlocking victim.")
    elif o["bystanders"]:
        lines.append(f"\nOn this kernel {o['bystanders'] - o['bystanders_alive']} bystander(s) were killed.")
    return "\n".join(lines)


def kernel_findings(victims) -> list[str]:
    """Sentences from the kernel's own events for the victims of traced repeats (none if untraced)."""
    if "k_mark_victim_s" not in victims or not victims["k_mark_victim_s"].notna().any():
        return []
    v = victims[victims["k_mark_victim_s"].notna()]
    ms = lambda s: s.median() * 1e3  # noqa: E731
    ran = int(v["k_start_task_reaping_s"].notna().sum())
    reaper = (f"the OOM reaper ran in {ran} of {len(v)} (median {v.loc[v['k_start_task_reaping_s'].notna(), 'k_reaped_bytes'].median() / (1 << 20):.0f} MiB reaped)"
              if ran else "the OOM reaper never ran (its wake-up is queued 2 s after the kill and skipped once exit_mmap is done)")
    return [f"- The kernel's own events ({len(v)} traced repeats, medians): from the first memcg reclaim at the "
            f"limit to `mark_victim` {ms(v['k_mark_victim_s'] - v['k_limit_s']):.1f} ms (the OOM report alone "
            f"{ms(v['k_oom_to_kill_s']):.1f} ms); from the SIGKILL to `do_exit` {ms(v['k_kill_to_exit_s']):.1f} ms; "
            f"from the SIGKILL to the end of `exit_mmap` {ms(v['k_kill_to_exit_mmap_s']):.1f} ms "
            f"({ms(v['k_exit_to_exit_mmap_oncpu_s']):.1f} ms of the teardown on a CPU, of "
            f"{ms(v['k_exit_to_exit_mmap_s']):.1f} ms); {reaper}. User space saw the kill "
            f"{ms(v['start_to_kill_s'] - v['k_mark_victim_s']):.1f} ms after `mark_victim`."]
