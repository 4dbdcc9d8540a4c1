"""`prepatch-replay`: redo, on this kernel, the work the pre-patch (2.6.31) exit did after an mlock cut short.

On 2.6.31, exit_mmap() munlocked every VM_LOCKED VMA with write-GUP, faulting in (allocating and zeroing)
every page mlock never reached, then unmapped (kernel-history 1-2, 408e82b78bcc). The child here cuts mlock
short at `populated_fraction` (mlock2 MLOCK_ONFAULT, then MADV_POPULATE_WRITE of the reached prefix), then
replays that exit: munlock() (the old pass cleared VM_LOCKED first, so the pages it faulted were never
mlocked), MADV_POPULATE_WRITE over the unreached pages, which goes through get_user_pages -> faultin_page
like the old munlock did (5.14+; on EINVAL, older kernels, a user-space write loop, labelled
`fault_method = write-loop`), then munmap(). Every row is `method = replay`.

`setting` says where it runs:
- `free`: no memory cgroup: the replay's cost on free memory.
- `cgroup-oom`: a memory cgroup whose limit leaves room for only `headroom_fraction` of the unreached
  pages, default OOM handling: the 2009 condition (an exit that must allocate at the limit).
- `cgroup-enomem`: the same with cgroup v1 `oom_kill_disable 1`: faults from GUP fail with ENOMEM
  instead (a user-space write loop instead sleeps in the memcg OOM wait until the parent lifts the
  limit: outcome `oom-wait`). v1 only.
Each row also carries the modern exit of a twin child brought to the same state and SIGKILLed
(`modern_kill_to_reap_s`, a real measurement), so replay and real sit side by side.

Each row also prices its own work per page on a probe (`Probe`, `probe_bytes`, default 16 MiB) in the same
child: a VM_LOCKED miniature of the VMA, present to the same fraction and populated right after it. Its
munlock() runs just after the replay's and its munmap() just before the replay's; its fault-in (the
replay's `fault_method`) runs in turns with the replay's, 2 MiB of the probe's at a time, each turn timed on
its own (`probe_layout` interleaved): on free memory over the whole fault-in, in a cgroup setting over the
first three quarters of the pages the limit lets the replay fault (`probe_span_bytes`), so the probe is done
before the replay meets the limit: `probe_munlock_ns_per_page` (present mlocked pages),
`probe_fault_ns_per_page`, `probe_munmap_ns_per_page` (present unlocked pages), page counts in
`probe_*_pages`. This guest's per-page costs switch mode from one process to the next, drift within a
fault-in of a few hundred MiB and follow the pages a process got, so a probe elsewhere (another process, a
profile fitted minutes before) misses the mode, and a fault-in probe run before the replay's misses the
drift: on free memory the rows of one point spread 7-20% with a 12 MiB one just before (sd of log
sim/replay, 27-36 rows per size, two comparisons), 3-4% in 2 MiB turns; at a group's limit 10-12% with the
probe's fault-in just before the replay's, 4-6% in turns (27 rows per point), except the 64 MiB OOM-killed
point, 10% either way: a third of its time is the OOM kill and the exit, which no probe prices directly.
In a cgroup setting the probe is inside the group and the limit adds room for its fault-in, so that the
replay stops where it would without a probe; `fault_span_s` is the replay's own fault-in over the span the
probe ran beside, so `fault_s` less it is the rest up to the limit and the charge that failed there. An
OOM-killed replay reaches no munmap(), so it has no `probe_munmap_ns_per_page`. Without CAP_IPC_LOCK the
probe shrinks to what RLIMIT_MEMLOCK leaves beside the VMA, or is skipped; `probe_skipped` says why.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from mmlab.core import params as p
from mmlab.core.units import PAGE_BYTES
from mmlab.experiments import Experiment
from mmlab.experiments.common import RealParams, counters, progress_bar, repetitions, settle, settle_s_field
from mmlab.experiments.cut_short import (
    FAULT_METHODS,
    errno_name,
    hierarchy,
    kill_timed,
    map_anon,
    next_event,
    populate,
    resident_bytes,
    term_signal,
)
from mmlab.experiments.probe import fit as fit_probe
from mmlab.experiments.probe import interleave_plan, limit_room_bytes, limit_span_bytes, probe_bytes_field, room_bytes
from mmlab.experiments.traced import trace_field, tracer
from mmlab.kernel import cgroup, libc, procfs
from mmlab.kernel.child import Child, ChildDied, ChildError

NAME = "prepatch-replay"
CHILD = "mmlab.experiments.prepatch_replay:child_main"
SETTINGS = ("free", "cgroup-oom", "cgroup-enomem")
OUTCOMES = ("ok", "ENOMEM", "EINTR", "oom-killed", "oom-wait")
# The probe's share of each turn of an interleaved fault-in: with 16 turns (0.75 MiB of a 12 MiB fault-in)
# the probe paid 7% more per page than a 256 MiB replay's fault-in, with 2 MiB turns 4% (27 rows each).
# What is left is the call: here a 2 MiB MADV_POPULATE_WRITE costs more per page than the replay's 8 MiB
# (64 MiB VMA) and 32 MiB (256 MiB) turns, 2% and 6% (medians of 36 rows; 2 MiB replay calls too removed
# it, but added the same cost to the replay's own time, which stands for one kernel pass), so a
# free-memory replay is priced that much high.
PROBE_TURN_BYTES = 2 << 20


@dataclass(frozen=True)
class ReplayParams(RealParams):
    repeats: int = p.integer(9, "measured repetitions per point (per-page fault cost swings 1.1-4 us between repeats)", 1, 100)
    vma_bytes: tuple = p.sizes(["64MiB", "256MiB"], "sizes of the VMA whose mlock was cut short", hi=1 << 40)
    populated_fraction: float = p.real(0.25, "fraction of the VMA mlock had populated when it was cut short", 0.0, 1.0)
    settings: tuple = p.choices(list(SETTINGS), SETTINGS,
                                "free (no cgroup) | cgroup-oom (limit below the VMA) | cgroup-enomem (same, v1 oom_kill_disable 1)")
    headroom_fraction: float = p.real(0.5, "cgroup settings: the limit leaves room for this fraction of the unreached pages", 0.0, 0.99)
    fault_method: str = p.choice("auto", FAULT_METHODS, "auto (MADV_POPULATE_WRITE, write loop if EINVAL) | populate-write | write-loop")
    modern_exit: bool = p.flag(True, "also SIGKILL a twin child in the same state and time its (modern) exit")
    settle_s: float = settle_s_field()  # before the replay's timed fault-in
    probe_bytes: int = probe_bytes_field()
    trace: bool = trace_field()


def kernel_at_least(major: int, minor: int, release: str | None = None) -> bool:
    """Whether the running (or given) kernel release is at least major.minor."""
    import os
    import re

    m = re.match(r"(\d+)\.(\d+)", release or os.uname().release)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (major, minor)


def probe_plan(probe_bytes: int, lockable_bytes: int, populated_fraction: float) -> tuple[int, str | None]:
    """The probe VMA's size as it will run, and why it is skipped (None if it is not): at most what this
    process may still lock (`probe.room_bytes`: RLIMIT_MEMLOCK less VmLck without CAP_IPC_LOCK), whole
    pages, skipped under the in-row probes' minimum (`probe.fit`) or when it cannot hold a present and an
    absent page."""
    size, why = fit_probe(probe_bytes, lockable_bytes)
    if not size:
        return 0, why
    pages = size // PAGE_BYTES
    present = int(size * populated_fraction) // PAGE_BYTES
    if (populated_fraction > 0 and present < 1) or pages - present < 1:
        return 0, f"a {pages}-page probe cannot hold present and absent pages at populated_fraction {populated_fraction:g}"
    return size, None


def timed_populate(addr: int, nbytes: int, method: str) -> tuple[int, str, int | None, int]:
    """populate() of [addr, addr+nbytes), timed: ns, the method used, the errno that stopped it (None if
    none) and the minor faults it took."""
    ru0 = libc.getrusage()
    t0 = time.monotonic_ns()
    err = None
    try:
        method = populate(addr, nbytes, method)
    except OSError as e:
        err = e.errno
    ns = time.monotonic_ns() - t0
    return ns, method, err, libc.getrusage().ru_minflt - ru0.ru_minflt


class Probe:
    """A miniature of the cut-short VMA in the same child, timed next to the replay's own work: a VM_LOCKED
    VMA with the target's present fraction, populated right after the target's pages. This KVM guest's
    per-page costs switch mode from one process to the next, and only a probe whose pages were allocated
    about when the target's were follows the target's mode. Its munlock() runs just after the replay's and
    its munmap() just before, because on this guest the first of two back-to-back munlock() calls after
    the settle pause costs more per page than the second, and the second of two munmap() calls more than
    the first; its fault-in runs in turns with the replay's (`fault_in_turns`), and its pages stay mapped,
    so the replay never takes them warm.
    PROT_NONE guard pages keep it from merging with the target VMA."""

    def __init__(self, size: int, populated_fraction: float):
        self.size = size
        self.present = min(int(size * populated_fraction) // PAGE_BYTES * PAGE_BYTES, size - PAGE_BYTES)
        self.base = map_anon(size + 2 * PAGE_BYTES)
        self.addr = self.base + PAGE_BYTES
        self.ns: dict[str, int] = {}
        self.pages: dict[str, int] = {}
        try:
            libc.mprotect(self.base, PAGE_BYTES, libc.PROT_NONE)
            libc.mprotect(self.addr + size, PAGE_BYTES, libc.PROT_NONE)
            libc.mlock2(self.addr, size, libc.MLOCK_ONFAULT)
            populate(self.addr, self.present)
        except OSError:
            libc.munmap(self.base, size + 2 * PAGE_BYTES)
            raise

    @property
    def absent_bytes(self) -> int:
        return self.size - self.present

    def _timed(self, op: str, call) -> None:
        before = resident_bytes(self.addr, self.size) // PAGE_BYTES
        t0 = time.monotonic_ns()
        try:
            call()
        finally:
            self.ns[op] = time.monotonic_ns() - t0
            self.pages[op] = resident_bytes(self.addr, self.size) // PAGE_BYTES - before if op == "fault" else before

    def munlock(self) -> None:
        """munlock() of the probe: its present pages are unlocked and stay present (absent ones skipped)."""
        self._timed("munlock", lambda: libc.munlock(self.addr, self.size))

    def fault(self, method: str) -> None:
        """The replay's fault method over the probe's absent pages, all at once."""
        self._timed("fault", lambda: populate(self.addr + self.present, self.absent_bytes, method))

    def fault_in_turns(self, addr: int, nbytes: int, method: str) -> tuple[int, str, int | None, int]:
        """The replay's fault-in of [addr, addr+nbytes) and the probe's of its absent pages, in turns
        (`probe.interleave_plan`), so both take pages from the same stretch of free memory at the same
        moments. Each turn is timed on its own; returns the replay's summed ns, the method used, the
        errno that stopped it (None if none) and the minor faults of its turns alone. With nbytes 0 the
        probe's fault-in runs alone."""
        if not nbytes:
            with contextlib.suppress(OSError):
                self.fault(method)
            return 0, method, None, 0
        replay_ns = probe_ns = minflt = 0
        err = None
        before = resident_bytes(self.addr, self.size) // PAGE_BYTES
        turns = max(1, self.absent_bytes // PROBE_TURN_BYTES)
        for t_off, t_len, p_off, p_len in interleave_plan(nbytes, self.absent_bytes, turns):
            ns, method, err, flt = timed_populate(addr + t_off, t_len, method)
            replay_ns += ns
            minflt += flt
            if err is not None:
                break
            t0 = time.monotonic_ns()
            with contextlib.suppress(OSError):
                populate(self.addr + self.present + p_off, p_len, method)
            probe_ns += time.monotonic_ns() - t0
        self.ns["fault"] = probe_ns
        self.pages["fault"] = resident_bytes(self.addr, self.size) // PAGE_BYTES - before
        return replay_ns, method, err, minflt

    def munmap(self) -> None:
        """munmap() of the probe, its pages present and unlocked; then (untimed) its guard pages."""
        self._timed("munmap", lambda: libc.munmap(self.addr, self.size))
        libc.munmap(self.base, self.size + 2 * PAGE_BYTES)

    def report(self) -> dict:
        out: dict = {}
        for op, pages in self.pages.items():
            if pages:
                out[f"probe_{op}_pages"] = pages
                out[f"probe_{op}_ns"] = self.ns[op]
        return out


def child_main(ctx, vma_bytes: int, populated_bytes: int, fault_method: str, replay: bool,
               settle_s: float = 0.0, probe_bytes: int = 0) -> None:
    """Runs in the child: cut mlock short at populated_bytes, then (if replay) redo the pre-patch exit,
    each part timed next to the same operation on the probe (`Probe`), if one is asked for. The parent's
    reply to `cut` says how much of the replay's fault-in the probe's runs in turns with
    (`probe_span_bytes`); the rest of the replay's follows in one call."""
    addr = map_anon(vma_bytes)
    ctx.sync("mapped")  # the parent moves a cgroup child into its group now
    libc.mlock2(addr, vma_bytes, libc.MLOCK_ONFAULT)
    populate(addr, populated_bytes)
    probe, skipped = None, None
    if replay:
        size, skipped = probe_plan(probe_bytes, room_bytes(probe_bytes), populated_bytes / vma_bytes)
        try:
            probe = Probe(size, populated_bytes / vma_bytes) if size else None
        except OSError as e:  # not lockable or no memory after all: the row goes on without a probe
            skipped = f"the {size >> 10} KiB probe could not be set up: {errno_name(e.errno)}"
    # parent sets the limit (leaving room for the probe's fault-in too), or kills
    plan = ctx.sync("cut", populated_bytes=resident_bytes(addr, vma_bytes),
                    probe_bytes=probe.size if probe else 0, probe_fault_bytes=probe.absent_bytes if probe else 0,
                    probe_skipped=skipped)
    if not replay:
        return
    rest = vma_bytes - populated_bytes
    span = min(rest, plan.get("probe_span_bytes") or 0) // PAGE_BYTES * PAGE_BYTES if probe else 0
    if fault_method == "auto":  # MADV_POPULATE_WRITE exists from 5.14 (populate() still falls back on EINVAL)
        fault_method = "populate-write" if kernel_at_least(5, 14) else "write-loop"
    settle(settle_s)  # the twin's freed memory handed back to the host before the timed fault-in
    ctx.send("replaying", t_ns=time.monotonic_ns(), fault_method=fault_method)
    # 2.6.31's munlock pass cleared VM_LOCKED first, then faulted absent pages in as it went (kernel-history
    # 2): its fresh pages were never mlocked. So munlock() comes first here; faulting in a VM_LOCKED VMA
    # would mlock each new page and munlock it again, work the old exit did not do.
    reported0 = procfs.host_reported_kib()
    t0 = time.monotonic_ns()
    libc.munlock(addr, vma_bytes)
    munlock_ns = time.monotonic_ns() - t0
    fault_ns, method, err, minflt = 0, fault_method, None, 0
    if probe:  # its munlock() just after the replay's, its fault-in in turns with the replay's first span bytes
        probe.munlock()
        fault_ns, method, err, minflt = probe.fault_in_turns(addr + populated_bytes, span, fault_method)
        # before the rest of the replay's fault-in, which an OOM kill may end: the parent then times the
        # replay as its work so far plus the time from here to the reap, leaving the probe's own work out
        ctx.send("probed", munlock_ns=munlock_ns, fault_ns=fault_ns, t_ns=time.monotonic_ns(), **probe.report())
    if err is None and span < rest:
        ns, method, err, flt = timed_populate(addr + populated_bytes + span, rest - span, method)
        fault_ns, minflt = fault_ns + ns, minflt + flt
    ctx.sync("faulted", fault_ns=fault_ns, fault_errno=errno_name(err), fault_method=method,
             minflt=minflt)  # the parent lifts any limit before replying
    present = resident_bytes(addr, vma_bytes)
    if probe:
        probe.munmap()
    t3 = time.monotonic_ns()
    libc.munmap(addr, vma_bytes)
    t4 = time.monotonic_ns()
    reported1 = procfs.host_reported_kib()
    ctx.sync("replayed", present_after_fault_bytes=present, munlock_ns=munlock_ns, munmap_ns=t4 - t3,
             host_reported_kib=None if reported0 is None or reported1 is None else reported1 - reported0,
             **(probe.report() if probe else {}))


def cut_child(stack: contextlib.ExitStack, vma: int, populated: int, params: ReplayParams, replay: bool,
              group: cgroup.MemoryCgroup | None, row: dict, tr=None) -> Child:
    """Start a child and bring it to the cut-short state; counters before and at the cut go in row;
    the tracer, if given, watches the child from the start."""
    c = stack.enter_context(Child(CHILD, timeout_s=params.timeout_s, vma_bytes=vma, populated_bytes=populated,
                                  fault_method=params.fault_method, replay=replay,
                                  settle_s=params.settle_s if replay else 0.0,
                                  probe_bytes=params.probe_bytes if replay else 0))
    c.expect("mapped")
    if group is not None:
        group.add(c.pid)
    if tr is not None:
        tr.watch([c.pid])
    row.update(counters("before", c.pid))
    c.reply()
    msg = c.expect("cut")
    row.update(counters("cut", c.pid))
    row["populated_bytes"] = msg["populated_bytes"]
    row["probe_fault_bytes"] = msg.get("probe_fault_bytes", 0)
    if replay:
        row["probe_bytes"] = msg.get("probe_bytes", 0)
    if msg.get("probe_skipped"):
        row["probe_skipped"] = msg["probe_skipped"]
    return c


def modern_exit(vma: int, populated: int, params: ReplayParams) -> dict:
    """A twin child in the same state, SIGKILLed: the modern exit of the same VMA (method real)."""
    row: dict = {}
    with contextlib.ExitStack() as stack:
        tr = stack.enter_context(tracer(params.trace))
        c = cut_child(stack, vma, populated, params, False, None, row, tr)
        t_kill = time.monotonic()
        t = kill_timed(c, params.timeout_s)
        tr.finish(reaped_pid=c.pid)
        k = tr.phases(c.pid, t_kill)
    out = {"modern_kill_to_reap_s": t["kill_to_reap_s"], "modern_populated_bytes": row["populated_bytes"]}
    out.update({f"modern_{key}": v for key, v in k.items()
                if key in ("traced", "k_kill_to_exit_s", "k_kill_to_exit_mmap_s", "k_sched_process_free_s")})
    return out


def probe_columns(report: dict) -> dict:
    """The probe's per-page costs (ns per page) from the child's report; a part not measured is absent."""
    out = {}
    for op in ("munlock", "fault", "munmap"):
        pages = report.get(f"probe_{op}_pages") or 0
        if pages > 0:
            out[f"probe_{op}_ns_per_page"] = report[f"probe_{op}_ns"] / pages
            out[f"probe_{op}_pages"] = pages
    return out


def replay_one(vma: int, populated: int, setting: str, params: ReplayParams) -> dict:
    """One child: cut short, replay the pre-patch exit, record what it met; the row's measurements."""
    row: dict = {"setting": setting, "outcome": "ok"}
    with contextlib.ExitStack() as stack:
        tr = stack.enter_context(tracer(params.trace))
        group = None
        if setting != "free":
            group = stack.enter_context(cgroup.memory_cgroup())
            if setting == "cgroup-enomem":
                group.set_oom_kill_disable(True)
        c = cut_child(stack, vma, populated, params, True, group, row, tr)
        fault = row["probe_fault_bytes"]
        span = vma - populated  # the part of the replay's fault-in the probe's runs in turns with
        if group is not None:
            # the probe's pages present now are in the usage; its fault-in, charged in turns with the
            # replay's first pages, gets room of its own
            room = int((vma - populated) * params.headroom_fraction)
            limit = group.usage_bytes() + room + limit_room_bytes(fault, 1)
            group.set_limit(limit)
            row.update(cgroup_limit_bytes=limit, cgroup_version=group.version)
            span = limit_span_bytes(room)
        if fault:
            row.update(probe_span_bytes=span, probe_layout="interleaved" if span else "before")
        c.reply(probe_span_bytes=span if fault else 0)
        msg = c.expect("replaying")
        t_start, method = msg["t_ns"] / 1e9, msg["fault_method"]
        t_resume, before_s = t_start, 0.0  # where the replay's own time resumes after the probe, and its time so far
        probed: dict = {}
        if fault:
            probed, _ = next_event(c, params.timeout_s, group, lift_on_under_oom=setting == "cgroup-enomem")
            if probed.get("event") != "probed":
                raise ChildError(f"{NAME}: expected 'probed', got {probed}")
            row.update(probe_columns(probed), fault_span_s=probed["fault_ns"] / 1e9)
            t_resume, before_s = probed["t_ns"] / 1e9, (probed["munlock_ns"] + probed["fault_ns"]) / 1e9
        try:
            msg, waited = next_event(c, params.timeout_s, group, lift_on_under_oom=setting == "cgroup-enomem")
        except ChildDied as e:  # the group's OOM killer took the replaying child
            c.wait_exit(params.timeout_s)
            now = time.monotonic()
            row.update(outcome="oom-killed", term_signal=term_signal(e.returncode),
                       replay_s=before_s + now - t_resume, replay_wall_s=now - t_start, fault_method=method)
            if probed:
                row["munlock_s"] = probed["munlock_ns"] / 1e9
            if group is not None:
                row.update(cgroup_oom_kills=group.oom_kills())
            row.update(counters("after"))
            tr.finish(reaped_pid=c.pid)
            row.update(tr.phases(c.pid, t_start))
            return row
        if group is not None:
            group.set_limit(None)  # before the child touches new memory (the v1 OOM-wait trap)
            row.update(cgroup_oom_kills=group.oom_kills(), cgroup_oom_events=group.events().get("oom", 0))
        if msg.get("event") != "faulted":
            raise ChildError(f"{NAME}: expected 'faulted', got {msg}")
        outcome = msg["fault_errno"]
        if outcome == "ok" and waited:
            outcome = "oom-wait"
        row.update(outcome=outcome, under_oom_seen=waited, fault_s=msg["fault_ns"] / 1e9,
                   fault_method=msg["fault_method"], minflt_replay=msg["minflt"])
        row.update(counters("faulted", c.pid))
        c.reply()
        msg = c.expect("replayed")
        row.update(counters("after"))
        row.update(present_after_fault_bytes=msg["present_after_fault_bytes"], munlock_s=msg["munlock_ns"] / 1e9,
                   munmap_s=msg["munmap_ns"] / 1e9, host_reported_kib=msg["host_reported_kib"])
        row.update(probe_columns(msg))
        row["replay_s"] = row["fault_s"] + row["munlock_s"] + row["munmap_s"]
        c.reply()
        c.expect("done")
        row.update(tr.phases(c.pid, t_start))
    return row


def run(params: ReplayParams, progress: bool = True):
    import pandas as pd

    from mmlab.kernel.safety import budget

    # outside a cgroup the replay allocates the whole VMA: the guard checks vma_bytes
    # the cut-short state is an mlock2(MLOCK_ONFAULT) of the whole VMA: without CAP_IPC_LOCK it must fit RLIMIT_MEMLOCK
    b = budget(params.lock_share)
    fitted = b.fit({"vma_bytes": params.vma_bytes})
    vmas = b.check("vma_bytes", fitted.values["vma_bytes"])
    skipped: dict[str, str] = {}
    settings = list(params.settings)
    if any(s != "free" for s in settings):
        h, why = hierarchy()
        for s in [s for s in settings if s != "free"]:
            if h is None:
                skipped[s] = f"no memory cgroup: {why}"
            elif s == "cgroup-enomem" and h.version != 1:
                skipped[s] = f"{h.describe()}: cgroup v2 has no oom_kill_disable"
        settings = [s for s in settings if s not in skipped]
    points = [(s, v) for s in settings for v in vmas]
    rows = []
    with progress_bar(len(points) * (params.warmup + params.repeats), NAME, progress) as bar:
        for rep, warm in repetitions(params):
            ordered = points if rep % 2 == 0 else points[::-1]
            for seq, (setting, vma) in enumerate(ordered):
                populated = int(vma * params.populated_fraction) // PAGE_BYTES * PAGE_BYTES
                twin = modern_exit(vma, populated, params) if params.modern_exit else {}
                m = replay_one(vma, populated, setting, params)
                unreached = (vma - m["populated_bytes"]) // PAGE_BYTES
                faulted = max(0, m.get("present_after_fault_bytes", m["populated_bytes"]) - m["populated_bytes"])
                rows.append({"experiment": NAME, "method": "replay", "vma_bytes": vma, "vma_pages": vma // PAGE_BYTES,
                             "target_populated_bytes": populated, "repeat": rep, "warmup": warm, "order": seq,
                             "settle_s": params.settle_s, "headroom_fraction": params.headroom_fraction,
                             **m, "unreached_pages": unreached,
                             "pages_faulted": faulted // PAGE_BYTES if "present_after_fault_bytes" in m else float("nan"),
                             # less the probe's fault-in, which ran in the same window
                             "bytes_allocated": (m["rss_faulted_bytes"] - m["rss_cut_bytes"]
                                                 - m.get("probe_fault_pages", 0) * PAGE_BYTES) if "rss_faulted_bytes" in m else float("nan"),
                             "fault_ns_per_page": m["fault_s"] * 1e9 / (faulted // PAGE_BYTES) if faulted and "fault_s" in m else float("nan"),
                             **twin, **fitted.columns()})
                bar.update()
    df = pd.DataFrame(rows)
    for col in ("fault_s", "munlock_s", "munmap_s", "term_signal", "probe_fault_ns_per_page", "probe_munlock_ns_per_page",
                "probe_munmap_ns_per_page", "probe_skipped"):
        if col not in df and len(df):
            df[col] = float("nan")
    if len(df):
        df["term_signal"] = df["term_signal"].astype("Int64")
        # the pre-patch munlock(): its write-GUP faulted in the unreached pages, then unlocked them
        # (kernel-history 2); the summary's munlock comparison quotes this sum
        df["replay_munlock_s"] = df["fault_s"] + df["munlock_s"]
    df.attrs["skipped"] = skipped
    return df


EXPERIMENT = Experiment(
    name=NAME,
    description="replay the pre-patch exit (munlock, fault in every unreached page, munmap) after an mlock cut short",
    Params=ReplayParams,
    run=run,
    cgroup_optional=True,
)


def findings(rows) -> str:
    """Markdown sentences built from the rows: the replayed exit beside the modern one, the cost per
    faulted page, what each cgroup setting met, and skipped settings."""
    from mmlab.core.stats import measured_rows
    from mmlab.core.units import format_bytes

    lines = []
    d = measured_rows(rows)
    free = d[d["setting"] == "free"] if len(d) else d
    for vma, g in (free.groupby("vma_bytes") if len(free) else []):
        rep, mod = g["replay_s"].median(), g["modern_kill_to_reap_s"].median() if "modern_kill_to_reap_s" in g else float("nan")
        lines.append(f"- {format_bytes(vma)} VMA, {g['unreached_pages'].median():.0f} pages unreached: the replayed "
                     f"pre-patch exit took {rep * 1e3:.1f} ms ({g['fault_ns_per_page'].median():.0f} ns per page faulted, "
                     f"{g['bytes_allocated'].median() / (1 << 20):.0f} MiB allocated, fault_method "
                     f"{', '.join(sorted(set(g['fault_method'])))}), the modern exit {mod * 1e3:.1f} ms: "
                     f"{rep / mod:.1f}x.")
    for setting, g in (d[d["setting"] != "free"].groupby("setting", sort=False) if len(d) else []):
        counts = g["outcome"].value_counts()
        said = {"oom-killed": "an OOM kill (SIGKILL by the group)", "ENOMEM": "ENOMEM from get_user_pages",
                "oom-wait": "the memcg OOM wait (lifted by the parent)", "EINTR": "EINTR", "ok": "no limit (it fit)"}
        met = ", ".join(f"{said.get(k, k)} in {v} of {len(g)} runs" for k, v in counts.items())
        extra = ""
        if "pages_faulted" in g and g["pages_faulted"].notna().any():
            frac = (g["pages_faulted"] / g["unreached_pages"]).median()
            extra = f"; it faulted in a median {frac:.0%} of the unreached pages before stopping"
        lines.append(f"- {setting}: the replay at the group's limit met {met}{extra}.")
    if "host_reported_kib" in d and d["host_reported_kib"].notna().any():
        hit = d[d["host_reported_kib"] > 0]
        lines.append(f"- The guest handed free memory back to its host (free page reporting) during {len(hit)} of "
                     f"{int(d['host_reported_kib'].notna().sum())} timed replays"
                     + (f" ({format_bytes(hit['host_reported_kib'].sum() * 1024)} in all): those rows' first touches "
                        "may be slower." if len(hit) else "."))
    for setting, why in (rows.attrs.get("skipped") or {}).items():
        lines.append(f"- **{setting} skipped:** {why}")
    return "\n".join(lines) or "No measured rows."
