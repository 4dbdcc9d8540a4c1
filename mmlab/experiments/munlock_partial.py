"""`munlock-partial`: munlock() of a VM_LOCKED range that is only partly populated, in one process.

Two ways to get there, as `variant`:
- `onfault`: mlock2(MLOCK_ONFAULT) marks the whole VMA VM_LOCKED and populates nothing (4.4+); then
  MADV_POPULATE_WRITE faults in the first `populated_fraction` of it (those pages are mlocked as they
  are faulted, being in a VM_LOCKED VMA).
- `cgroup-limit`: a plain mlock() inside a cgroup v1 memory group with `oom_kill_disable 1` and a limit
  at `populated_fraction` of the VMA: mlock populates up to the limit, then gives up with EAGAIN,
  leaving the whole VMA VM_LOCKED and part of it present: the "mlock gave up part-way" state. The child
  would then sleep in the memcg OOM wait at its next fault, so the parent lifts the limit on seeing
  `under_oom 1` or the child's report (MEASURING.md). cgroup v2 has no oom_kill_disable (an mlock over
  memory.max is OOM-killed, not failed), so there this variant is skipped with that reason.
Then munlock() of the whole VMA is timed, right after a few zero-length munlock() calls that wake the CPU
and warm the syscall path (the last one's time is kept as `munlock_null_s`, the harness floor). 2.6.31
faulted in every absent page here; 5.18+ walks only populated page tables (34b6792380ce), so the cost
should follow the populated pages (kernel-history 2, 5).

Each row also carries `probe_munlock_ns_per_page`: munlock() of a separate fully populated `probe_bytes`
VMA timed in the same child just before and just after the row's munlock() (probe.py; their geometric
mean, each kept too), the per-page price at that moment, with which the model check prices the row. Each
probe munlock()s its first quarter untimed, so the one before the row runs as warm as the row does.
The two probe VMAs are populated in turns with the target (`probe_layout` interleaved), so they hold pages
from the same free memory. Here a munlock()'s cost per page follows where its pages came from, and a
point's pages alternate between repetitions (what one row frees the next rows take: a 64 MiB point shared
61-73% of its physical pages with the repetition two before and none with the one before), so probes
populated apart from the target put alternate repetitions of one point 1.1-1.3x apart. In `cgroup-limit`
the target's first three quarters are mlock()ed in turns with the probes (the group's limit has room for
them too), then one mlock() of the rest of the VMA goes on to the limit and gives up: the VM_LOCKED pieces
merge back into one VMA, the state one mlock() leaves; against fresh probes the spread of sim/real over
a point's rows (sd of log, 33 rows per point, 3 alternating rounds) fell at 4 of the 6 points (0.079-0.120
to 0.041-0.069), stayed at one (0.074-0.075) and rose at one (0.071 to 0.089). Rows with nothing populated
probe fresh VMAs (`separate`).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from mmlab.core import params as p
from mmlab.core.units import PAGE_BYTES
from mmlab.experiments import Experiment
from mmlab.experiments.common import RealParams, counters, progress_bar, repetitions
from mmlab.experiments.cut_short import errno_name, hierarchy, map_anon, next_event, populate, resident_bytes
from mmlab.experiments.probe import (
    interleave_plan,
    limit_room_bytes,
    limit_span_bytes,
    mlock_in_turns,
    munlock_ns_per_page,
    munlock_populated,
    onfault_probes,
    probe_bytes_field,
    run_probe,
    sandwich,
    warm_munlock_path,
)
from mmlab.kernel import cgroup, libc
from mmlab.kernel.child import Child, ChildError

NAME = "munlock-partial"
CHILD = "mmlab.experiments.munlock_partial:child_main"
VARIANTS = ("onfault", "cgroup-limit")
CGROUP_SLACK_BYTES = 4 << 20  # charged to the group by the Python child itself after it joins


@dataclass(frozen=True)
class MunlockPartialParams(RealParams):
    repeats: int = p.integer(11, "measured repetitions per point (an untouched range takes microseconds: single interrupts matter; the model check needs the median of its per-row ratios within a few percent)", 1, 100)
    vma_bytes: tuple = p.sizes(["64MiB", "512MiB"], "sizes of the VM_LOCKED VMA", hi=1 << 44)
    populated_fractions: tuple = p.reals([0.0, 0.1, 0.25, 0.5, 1.0], "fractions of the VMA populated before munlock()", 0.0, 1.0)
    variants: tuple = p.choices(list(VARIANTS), VARIANTS,
                                "onfault (mlock2 MLOCK_ONFAULT then populate) | cgroup-limit (mlock stopped by a v1 memory cgroup limit)")
    probe_bytes: int = probe_bytes_field()


def child_main(ctx, vma_bytes: int, populate_bytes: int, variant: str, probe_bytes: int = 0) -> None:
    """Runs in the child: reach the partly populated VM_LOCKED state, report it, then time munlock() between
    two probes of munlock()'s per-page cost. The two probe VMAs are populated in turns with the target's
    pages, so all three hold pages from the same free memory: `onfault` by MADV_POPULATE_WRITE, `cgroup-limit`
    by mlock() of the target's first three quarters in pieces (the rest in one mlock() that meets the
    group's limit). A target with nothing populated probes fresh VMAs."""
    addr = map_anon(vma_bytes)
    resident_bytes(addr, vma_bytes)  # grows the heap for the count after munlock, so that count adds no RSS
    probes, size = [], 0
    if variant == "cgroup-limit" and populate_bytes and probe_bytes:  # RLIMIT_MEMLOCK room kept for the target
        probes, size = onfault_probes(2, probe_bytes, reserve_bytes=vma_bytes)
    # the parent moves a cgroup-limit child into its group now, its limit leaving room for the probes' pages
    ctx.sync("mapped", probe_held_bytes=len(probes) * size)
    err = None
    if variant == "onfault":
        t0 = time.monotonic_ns()
        libc.mlock2(addr, vma_bytes, libc.MLOCK_ONFAULT)
        lock_ns = time.monotonic_ns() - t0
        if populate_bytes and probe_bytes:
            probes, size = onfault_probes(2, probe_bytes)
        for t_off, t_len, p_off, p_len in interleave_plan(populate_bytes, size):
            t0 = time.monotonic_ns()
            populate(addr + t_off, t_len)
            lock_ns += time.monotonic_ns() - t0  # the target's own populate, without the probes'
            for q in probes:
                populate(q + p_off, p_len)
    else:
        span = limit_span_bytes(populate_bytes) if probes else 0
        lock_ns, err = mlock_in_turns(addr, span, probes, size) if probes else (0, None)
        if err is None:  # the rest of the VMA in one mlock(), which goes on to the limit
            ns, err = mlock_in_turns(addr + span, vma_bytes - span, [], 0, chunks=1)
            lock_ns += ns
    # the parent lifts the limit before replying; its /proc counters from here to the unlock include the probes
    ctx.sync("stopped", lock_ns=lock_ns, lock_errno=errno_name(err), probe_held_bytes=len(probes) * size)
    ctx.sync("populated")  # the parent reads /proc now

    def probe_once(i: int) -> dict:
        return munlock_populated(probes[i], size) if probes else run_probe(munlock_ns_per_page, probe_bytes)
    before = probe_once(0)
    null_ns = warm_munlock_path(addr)
    t0 = time.monotonic_ns()
    libc.munlock(addr, vma_bytes)
    t1 = time.monotonic_ns()
    after = probe_once(1)
    probe = sandwich(before, after, "probe_munlock_ns_per_page")
    # Counted after munlock (which leaves pages present), not before: a mincore over the whole range just
    # before the timed call tripled munlock() of an untouched 512 MiB range (3 us -> 8 us, cache pollution).
    present = resident_bytes(addr, vma_bytes)
    ctx.sync("unlocked", munlock_ns=t1 - t0, munlock_null_ns=null_ns, populated_bytes=present,
             resident_after_bytes=present, probe_layout="interleaved" if probes else "separate", **probe)
    libc.munmap(addr, vma_bytes)


def measure_one(vma_bytes: int, fraction: float, variant: str, params: MunlockPartialParams,
                h: cgroup.Hierarchy | None) -> dict:
    """One child in the requested state; munlock() timed; the row's measurements."""
    target = int(vma_bytes * fraction) // PAGE_BYTES * PAGE_BYTES
    row: dict = {}
    with contextlib.ExitStack() as stack:
        group = None
        if variant == "cgroup-limit":
            group = stack.enter_context(cgroup.memory_cgroup())
            group.set_oom_kill_disable(True)
        c = stack.enter_context(Child(CHILD, timeout_s=params.timeout_s, vma_bytes=vma_bytes,
                                      populate_bytes=target, variant=variant,
                                      probe_bytes=params.probe_bytes))
        held = c.expect("mapped")["probe_held_bytes"]
        if group is not None:
            # the probes' pages, populated in turns with the target's, get room of their own
            limit = target + CGROUP_SLACK_BYTES + limit_room_bytes(held, 2)
            group.set_limit(limit)
            row.update(cgroup_limit_bytes=limit, cgroup_version=group.version)
            group.add(c.pid)
        row.update(counters("before", c.pid))
        c.reply()
        msg, waited = next_event(c, params.timeout_s, group, lift_on_under_oom=True)
        if msg.get("event") != "stopped":
            raise ChildError(f"{NAME}: expected 'stopped', got {msg}")
        if group is not None:
            group.set_limit(None)  # before the child touches new memory (the v1 OOM-wait trap)
            row["cgroup_oom_events"] = group.events().get("oom", 0)
        row.update(lock_s=msg["lock_ns"] / 1e9, lock_errno=msg["lock_errno"], under_oom_seen=waited,
                   probe_held_bytes=msg["probe_held_bytes"])
        c.reply()
        c.expect("populated")
        row.update(counters("populated", c.pid))
        c.reply()
        msg = c.expect("unlocked")
        row.update(counters("after", c.pid))
        row.update(munlock_ns=msg["munlock_ns"], munlock_null_s=msg["munlock_null_ns"] / 1e9,
                   populated_bytes=msg["populated_bytes"],
                   resident_after_munlock_bytes=msg["resident_after_bytes"],
                   **{k: msg[k] for k in ("probe_munlock_ns_per_page", "probe_munlock_before_ns_per_page",
                                          "probe_munlock_after_ns_per_page", "probe_bytes", "probe_skipped",
                                          "probe_layout")})
        c.reply()
        c.expect("done")
    return row


def run(params: MunlockPartialParams, progress: bool = True):
    import pandas as pd

    from mmlab.kernel.safety import budget

    b = budget(params.lock_share)
    # mlock2(MLOCK_ONFAULT) and mlock() charge the whole VMA against RLIMIT_MEMLOCK (without CAP_IPC_LOCK)
    fitted = b.fit({"vma_bytes": params.vma_bytes})
    vmas = fitted.values["vma_bytes"]
    skipped: dict[str, str] = {}
    variants = list(params.variants)
    if "cgroup-limit" in variants:
        h, why = hierarchy()
        if h is None:
            skipped["cgroup-limit"] = f"no memory cgroup: {why}"
        elif h.version != 1:
            skipped["cgroup-limit"] = (f"{h.describe()}: cgroup v2 has no oom_kill_disable, so an mlock over "
                                       "memory.max is OOM-killed instead of giving up part-way")
        if "cgroup-limit" in skipped:
            variants.remove("cgroup-limit")
    # what gets locked is the populated part (onfault) or the group's limit (cgroup-limit): the guard checks both
    b.check("populated_fractions x vma_bytes",
            tuple(max(PAGE_BYTES, int(v * f)) for v in vmas for f in params.populated_fractions))
    points = []
    for variant in variants:
        for f in params.populated_fractions:
            if variant == "cgroup-limit" and not 0 < f < 1:
                continue  # a limit at 0 or above the VMA does not stop mlock part-way
            for v in vmas:
                points.append((variant, v, f))
    rows = []
    with progress_bar(len(points) * (params.warmup + params.repeats), NAME, progress) as bar:
        for rep, warm in repetitions(params):
            ordered = points if rep % 2 == 0 else points[::-1]
            for seq, (variant, vma, f) in enumerate(ordered):
                m = measure_one(vma, f, variant, params, h if variant == "cgroup-limit" else None)
                pages = vma // PAGE_BYTES
                pop_pages = m["populated_bytes"] // PAGE_BYTES
                ns = m.pop("munlock_ns")
                rows.append({"experiment": NAME, "method": "real", "variant": variant, "vma_bytes": vma,
                             "vma_pages": pages, "target_populated_fraction": f,
                             "repeat": rep, "warmup": warm, "order": seq, **m,
                             "populated_pages": pop_pages, "populated_fraction": pop_pages / pages,
                             "munlock_s": ns / 1e9, "munlock_ns_per_page": ns / pages,
                             "munlock_ns_per_vma_page": ns / pages,
                             "munlock_ns_per_populated_page": ns / pop_pages if pop_pages else float("nan"),
                             **fitted.columns()})
                bar.update()
    df = pd.DataFrame(rows)
    df.attrs["skipped"] = skipped
    return df


EXPERIMENT = Experiment(
    name=NAME,
    description="munlock() of a VM_LOCKED range only partly populated (MLOCK_ONFAULT, or mlock stopped by a cgroup limit)",
    Params=MunlockPartialParams,
    run=run,
    cgroup_optional=True,
)


def findings(rows) -> str:
    """Markdown sentences built from the rows: munlock() of an untouched VMA, cost per populated page
    for each variant, and skipped variants."""
    from mmlab.core.stats import measured_rows
    from mmlab.core.units import format_bytes

    lines = []
    d = measured_rows(rows)
    for variant, g in (d.groupby("variant", sort=False) if len(d) else []):
        empty = g[g["populated_bytes"] == 0]
        if len(empty):
            us = empty.groupby("vma_bytes")["munlock_s"].median() * 1e6
            lines.append(f"- {variant}: munlock() of a VM_LOCKED VMA with nothing populated took "
                         + ", ".join(f"{v:.1f} µs ({format_bytes(k)})" for k, v in us.items())
                         + ": empty page tables are skipped.")
        pop = g[g["populated_bytes"] > 0]
        if len(pop):
            per = pop.groupby("vma_bytes")["munlock_ns_per_populated_page"].median()
            lines.append(f"- {variant}: median ns per populated page "
                         + ", ".join(f"{v:.0f} ({format_bytes(k)} VMA)" for k, v in per.items())
                         + f"; populated fractions reached {pop['populated_fraction'].min():.2f} to "
                         f"{pop['populated_fraction'].max():.2f}.")
        if variant == "cgroup-limit":
            errs = sorted(set(g["lock_errno"]))
            lines.append(f"- cgroup-limit: mlock() returned {', '.join(errs)} in {len(g)} of {len(g)} runs after "
                         "populating up to the group's limit.")
    for variant, why in (rows.attrs.get("skipped") or {}).items():
        lines.append(f"- **{variant} skipped:** {why}")
    return "\n".join(lines) or "No measured rows."
