"""`sigkill-during-mlock`: SIGKILL a child in the middle of mlock() and time its exit.

The child maps `vma_bytes` (MAP_NORESERVE, so the VMA may be far larger than RAM) and mlocks all of it;
the parent polls the child's RSS (not VmLck, which jumps to the whole range at once) and sends SIGKILL
when mlock has populated `populated_bytes` (or after `kill_after_s`), then times kill to exit through a
pidfd. Since 4779280d1ea4 mlock's get_user_pages stops on the fatal signal; what the exit then costs is
the question of the 2009 thread: 2.6.31 faulted in every page mlock never reached, a patched kernel
pays only for the populated pages (kernel-history 1, 5), so at the same populated size a 64 GiB VMA and
a 1 GiB one should exit in the same time. With a probe, the child first mlocks all but the last 8 MiB
of the kill target, then times munmap() of a separate locked `probe_bytes` VMA (probe.py), then mlocks
the whole VMA, which populates on until the kill: the probe is the per-page price of the exit's work
moments before it (a probe before all of the mlock tracked the exit poorly at 256 MiB), with which the
model check prices the row; the state at the kill is the same. With CAP_IPC_LOCK the probe VMA
(mlock2 MLOCK_ONFAULT) is populated in turns with the prefix's mlock() (`probe_layout` interleaved), so
its pages come from the same free memory as the ones the exit frees: a probe locked after a 248 MiB
prefix cost 443 ns a page against 503 in turns, at 64 MiB 483-502 against 475-484, while the exits cost
the same (33 rows per point), so only in turns did the model check see the same bias at both sizes.
`mlock_to_kill_s` then times the second mlock() only. VMA sizes are interleaved within each repetition because
first-touch cost depends on how recently the memory was freed (MEASURING.md).
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

from mmlab.core import params as p
from mmlab.core.units import PAGE_BYTES, format_bytes
from mmlab.experiments import Experiment
from mmlab.experiments.common import RealParams, counters, progress_bar, repetitions
from mmlab.experiments.cut_short import RssProbe, exited, hierarchy, kill_timed, leftover_events, map_anon
from mmlab.experiments.probe import (
    mlock_in_turns,
    munmap_locked_ns_per_page,
    munmap_populated,
    onfault_probes,
    probe_bytes_field,
    run_probe,
)
from mmlab.experiments.traced import trace_field, tracer
from mmlab.kernel import cgroup, libc, safety
from mmlab.kernel.child import Child

NAME = "sigkill-during-mlock"
CHILD = "mmlab.experiments.sigkill_during_mlock:child_main"
CGROUP_SLACK_BYTES = 64 << 20  # the group's limit above the kill target: room for overshoot and Python


@dataclass(frozen=True)
class SigkillParams(RealParams):
    repeats: int = p.integer(11, "measured repetitions per point (a 64 MiB kill's exit swings 6-10 ms between repeats)", 1, 100)
    vma_bytes: tuple = p.sizes(["1GiB", "64GiB"], "sizes of the mlocked VMA (MAP_NORESERVE; may exceed RAM)", hi=1 << 44)
    populated_bytes: tuple = p.sizes(["64MiB", "256MiB"], "kill when mlock has populated this much (RSS growth)", lo=PAGE_BYTES)
    kill_after_s: float = p.seconds(30.0, "kill anyway this long after mlock() starts (a backstop)", 0.0, 600.0)
    use_cgroup: bool = p.flag(True, "run the child in a memory cgroup limited a little above the kill target, if one can be made")
    trace: bool = trace_field()
    probe_bytes: int = probe_bytes_field()

    def check(self) -> None:
        if max(self.populated_bytes) > min(self.vma_bytes):
            raise p.ParamError("populated_bytes", ",".join(format_bytes(v) for v in self.populated_bytes),
                               f"at most the smallest vma_bytes ({format_bytes(min(self.vma_bytes))})", "exceeds a VMA")


PROBE_TAIL_BYTES = 8 << 20  # with a probe, what mlock() still has to populate when the kill comes


def prefix_bytes(target_bytes: int, probe_bytes: int) -> int:
    """With a probe, the part of the kill target mlocked before it: all but the last PROBE_TAIL_BYTES (at
    most half the target), so the probe runs moments before the kill on pages allocated just after the
    ones the exit will free; 0 without a probe."""
    if probe_bytes <= 0:
        return 0
    return max(0, target_bytes - min(PROBE_TAIL_BYTES, target_bytes // 2)) // PAGE_BYTES * PAGE_BYTES


def child_main(ctx, vma_bytes: int, probe_bytes: int = 0, prefix_bytes: int = 0) -> None:
    """Runs in the child: map, report, mlock the first `prefix_bytes`, probe munmap() of a locked VMA
    (the exit's per-page work), then mlock the whole VMA (the parent kills it part-way). The first
    mlock() leaves that prefix VM_LOCKED and present, the second merges the VMA back into one VM_LOCKED
    VMA and populates on from there: at the kill the state is the one a single mlock() would leave.
    With CAP_IPC_LOCK the prefix is mlocked in turns with the probe's populate, so both hold pages from
    the same free memory; else the probe is a fresh VMA locked after the prefix."""
    addr = map_anon(vma_bytes)
    ctx.sync("mapped")
    # without CAP_IPC_LOCK the prefix must be locked first, so that the probe is cut to what RLIMIT_MEMLOCK leaves
    turns = prefix_bytes and probe_bytes and safety.has_cap_ipc_lock()
    probes, size = onfault_probes(1, probe_bytes) if turns else ([], 0)
    if probes:
        _, err = mlock_in_turns(addr, prefix_bytes, probes, size)
        if err is not None:  # the group's limit is far above the prefix: this is a failure, as before
            raise OSError(err, os.strerror(err))
        probe = munmap_populated(probes[0], size)
    else:
        if prefix_bytes:
            libc.mlock(addr, prefix_bytes)
        probe = run_probe(munmap_locked_ns_per_page, probe_bytes)
    ctx.send("locking", t_ns=time.monotonic_ns(), probe_layout="interleaved" if probes else "separate", **probe)
    libc.mlock(addr, vma_bytes)
    ctx.sync("locked", t_ns=time.monotonic_ns())  # only reached if mlock finished before the kill


def measure_one(vma_bytes: int, target_bytes: int, params: SigkillParams, h: cgroup.Hierarchy | None,
                traced: bool | None = None) -> dict:
    """One child: mlock, kill at the target RSS growth, time the exit; the row's measurements, with the
    kernel's phases (k_* columns, seconds since mlock()) when traced."""
    row: dict = {"in_cgroup": h is not None}
    with contextlib.ExitStack() as stack:
        tr = stack.enter_context(tracer(params.trace if traced is None else traced))
        group = None
        if h is not None:
            group = stack.enter_context(cgroup.memory_cgroup(target_bytes + CGROUP_SLACK_BYTES))
            row["cgroup_limit_bytes"] = target_bytes + CGROUP_SLACK_BYTES
        prefix = prefix_bytes(target_bytes, params.probe_bytes)
        row["prefix_bytes"] = prefix
        c = stack.enter_context(Child(CHILD, timeout_s=params.timeout_s, vma_bytes=vma_bytes,
                                      probe_bytes=params.probe_bytes, prefix_bytes=prefix))
        c.expect("mapped")
        if group is not None:
            group.add(c.pid)
        row.update(counters("before", c.pid))
        base = row["rss_before_bytes"]
        probe = stack.enter_context(RssProbe(c.pid))
        tr.watch([c.pid])
        c.reply()
        msg = c.expect("locking")
        t_start = msg["t_ns"] / 1e9
        row.update({k: msg[k] for k in ("probe_munmap_locked_ns_per_page", "probe_bytes", "probe_skipped", "probe_layout")})
        deadline = t_start + params.kill_after_s
        target = base + target_bytes
        polls, reason, rss = 0, "time", base
        while True:
            rss = probe.read()
            polls += 1
            if rss >= target:
                reason = "populated"
                break
            if time.monotonic() >= deadline:
                break
            if polls % 256 == 0 and exited(c):  # stopped by the group (oom-kill) before the target
                reason = "died"
                break
        t_kill = time.monotonic()
        probe.close()
        row.update(kill_to_reap_s=float("nan"), kill_to_wait_s=float("nan"))
        if reason == "died":
            rc = c.reap()
            row["term_signal"] = -rc if rc < 0 else None
        else:
            row.update(kill_timed(c, params.timeout_s))
        row["mlock_returned"] = "locked" in leftover_events(c)
        tr.finish(reaped_pid=c.pid)
        row.update(tr.phases(c.pid, t_start))
        row.update(counters("after"))
        row.update(kill_reason=reason, polls=polls, mlock_to_kill_s=t_kill - t_start,
                   rss_at_kill_bytes=rss, populated_bytes=max(0, rss - base),
                   cgroup_oom_kills=group.oom_kills() if group is not None else 0)
    return row


def run(params: SigkillParams, progress: bool = True):
    import pandas as pd

    from mmlab.kernel.safety import budget

    # What actually gets locked is what is populated before the kill: that is what the guard checks.
    # A VMA beyond RAM is safe because the kill target is below the guard (and the group's limit).
    # Without CAP_IPC_LOCK mlock charges the whole VMA against RLIMIT_MEMLOCK: both sizes are divided.
    b = budget(params.lock_share)
    fitted = b.fit({"vma_bytes": params.vma_bytes, "populated_bytes": params.populated_bytes})
    targets = b.check("populated_bytes", fitted.values["populated_bytes"])
    h, why = hierarchy() if params.use_cgroup else (None, "use_cgroup is false")
    points = [(v, t) for t in targets for v in fitted.values["vma_bytes"]]
    rows = []
    with progress_bar(len(points) * (params.warmup + params.repeats), NAME, progress) as bar:
        for rep, warm in repetitions(params):
            ordered = points if rep % 2 == 0 else points[::-1]  # alternate A/B order across repetitions
            for seq, (vma, target) in enumerate(ordered):
                m = measure_one(vma, target, params, h)
                rows.append({"experiment": NAME, "method": "real", "vma_bytes": vma,
                             "target_populated_bytes": target, "repeat": rep, "warmup": warm, "order": seq,
                             "vma_pages": vma // PAGE_BYTES, **m,
                             "populated_pages": m["populated_bytes"] // PAGE_BYTES,
                             "overshoot_bytes": m["populated_bytes"] - target,
                             "cgroup_reason": why, **fitted.columns()})
                bar.update()
    df = pd.DataFrame(rows)
    if len(df):
        df["term_signal"] = df["term_signal"].astype("Int64")
    return df


def exit_ratio(rows, small_vma: int | None = None, large_vma: int | None = None):
    """Per target populated size: median kill_to_reap_s at the largest and smallest VMA and their ratio
    (warm-ups excluded). Near 1 means the exit follows the populated pages, not the VMA."""
    import pandas as pd

    from mmlab.core.stats import measured_rows

    d = measured_rows(rows)
    small = small_vma or int(d["vma_bytes"].min())
    large = large_vma or int(d["vma_bytes"].max())
    out = []
    for target, g in d.groupby("target_populated_bytes"):
        a = g.loc[g["vma_bytes"] == small, "kill_to_reap_s"].median()
        b = g.loc[g["vma_bytes"] == large, "kill_to_reap_s"].median()
        out.append({"target_populated_bytes": target, "small_vma_bytes": small, "large_vma_bytes": large,
                    "median_small_s": a, "median_large_s": b, "ratio": b / a if a else float("nan"),
                    "n": int((g["vma_bytes"] == large).sum())})
    return pd.DataFrame(out)


EXPERIMENT = Experiment(
    name=NAME,
    description="mlock a (possibly huge) VMA in a child, SIGKILL it at a populated size, time kill to reap",
    Params=SigkillParams,
    run=run,
    cgroup_optional=True,
)


def findings(rows, tolerance: float = 1.5) -> str:
    """Markdown sentences built from the rows: the exit time at each populated size for the smallest and
    largest VMA, their ratio, and whether the exit follows the populated pages (ratio within tolerance)."""
    r = exit_ratio(rows)
    if r.empty:
        return "No measured rows."
    lines = []
    for _, x in r.iterrows():
        lines.append(f"- {format_bytes(x.target_populated_bytes)} populated: median kill to reap "
                     f"{x.median_small_s * 1e3:.1f} ms with a {format_bytes(x.small_vma_bytes)} VMA, "
                     f"{x.median_large_s * 1e3:.1f} ms with a {format_bytes(x.large_vma_bytes)} VMA: "
                     f"ratio {x.ratio:.2f} ({int(x.n)} repeats).")
    ok = bool((r["ratio"].between(1 / tolerance, tolerance)).all())
    worst = float(r["ratio"].max())
    verdict = (f"Every ratio is within {tolerance}x (largest {worst:.2f}): on this kernel the exit after SIGKILL "
               "follows the populated pages, not the VMA size." if ok else
               f"Not every ratio is within {tolerance}x (largest {worst:.2f}): here the exit does not follow the "
               "populated pages alone.")
    from mmlab.core.stats import measured_rows

    d = measured_rows(rows)
    drift = (d["sys_mlocked_after_bytes"] - d["sys_mlocked_before_bytes"]).abs().max() / PAGE_BYTES
    return "\n".join(lines + ["", verdict,
                              f"System Mlocked after each exit was back within {drift:.0f} pages of before."])
