"""Simulated against real: sim/real ratio tables from a DataFrame of stored real rows, and the historical
check against Wakabayashi's published 2009 times. Pure functions of their inputs.

Each table has one row per sweep point: the real median (with bootstrap interval), the simulated value
at the same parameters (with the profile's interval), ratio = sim/real, and its interval
[sim_lo / real_hi, sim_hi / real_lo]; `within` says whether the ratio is inside the 0.9x-1.1x target.
A point the harness cannot resolve (its real time under RESOLVE x the harness's own floor, measured in
the same rows: a zero-length munlock() for munlock-partial) stays in the table with that floor and
`resolved` False, never dropped: `status` says within, outside or below resolution.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from mmlab.core.probe_price import bracketed
from mmlab.core.stats import bootstrap_ci, measured_rows
from mmlab.core.units import PAGE_BYTES, format_bytes
from mmlab.sim import munlock_partial, sigkill
from mmlab.sim.address_space import State, Vma
from mmlab.sim.eras import LATEST, Era, Work, era_for, exit_mmap
from mmlab.sim.profile import Profile, desktop_2009

TARGET = (0.9, 1.1)
RESOLVE = 10.0  # a point is resolved when its real median is at least this many times the harness floor
FLOOR_COLS = {"munlock-partial": "munlock_null_s"}  # per-row harness floor, where the experiment measures one
SWEEP_KEYS = ("vma_bytes", "target_populated_bytes", "target_populated_fraction", "mapping", "variant", "setting",
              "fault_method", "kill_after_s")

# Wakabayashi, 2009-08-23 (kernel-history 1): run.sh mlocks 2,000,000,000 bytes, sleeps 2 s, kill -9, wait.
WAKABAYASHI = {"vma_bytes": 2_000_000_000, "kill_after_s": 2.0,
               "before": {"kernel": "2.6.31", "total_s": 18.781, "system_s": 2.59},
               "after": {"kernel": "2.6.31-rc + GUP_FLAGS_ALLOW_NULL", "total_s": 2.507, "system_s": 1.15}}


def _real(df: pd.DataFrame, experiment: str, method: str) -> pd.DataFrame:
    if df is None or df.empty or "experiment" not in df:
        return pd.DataFrame()
    d = df[(df["experiment"] == experiment) & (df["method"] == method)]
    return measured_rows(d)


def ratio_table(real: pd.DataFrame, real_col: str, simulate_row: Callable[[pd.Series], tuple[float, float, float]],
                comparison: str, keys: Sequence[str] | None = None, floor_col: str | None = None,
                target: tuple[float, float] = TARGET, paired: bool = False) -> pd.DataFrame:
    """Per sweep point: real median and interval, simulated value and interval (each real row simulated at
    its own measured parameters, then the median taken), ratio and ratio interval; with `floor_col`, the
    median harness floor of the point's rows and whether the point is resolved (>= RESOLVE x floor).
    `paired` (each row simulated at its own probed costs): ratio = median of the per-row ratios sim/real,
    its interval a 95% percentile bootstrap of that median over the rows; `pricing` says which."""
    if real.empty:
        return pd.DataFrame()
    keys = [k for k in (keys or SWEEP_KEYS) if k in real and real[k].notna().any()]
    sims = np.array([simulate_row(r) for _, r in real.iterrows()])
    real = real.copy().assign(_sim=sims[:, 0], _sim_lo=sims[:, 1], _sim_hi=sims[:, 2])
    out = []
    for k, g in real.groupby(keys, sort=True, dropna=False) if keys else [((), real)]:
        x = g[real_col].astype(float).to_numpy()
        med = float(np.median(x))
        lo, hi = bootstrap_ci(x) if len(x) > 1 else (med, med)
        s, s_lo, s_hi = float(np.median(g["_sim"])), float(np.median(g["_sim_lo"])), float(np.median(g["_sim_hi"]))
        ratio = s / med if med > 0 else math.nan
        per_row = g["_sim"].to_numpy(float) / x
        if paired and np.all(np.isfinite(per_row)):
            ratio = float(np.median(per_row))
            r_lo, r_hi = bootstrap_ci(per_row) if len(x) > 1 else (ratio, ratio)
        else:
            r_lo, r_hi = (s_lo / hi if hi > 0 else math.nan), (s_hi / lo if lo > 0 else math.nan)
        floor = float(np.nanmedian(g[floor_col].astype(float))) if floor_col in g and g[floor_col].notna().any() else math.nan
        resolved = not (med < RESOLVE * floor)  # no floor measured: resolved
        within = bool(target[0] <= ratio <= target[1])
        k = k if isinstance(k, tuple) else (k,)
        out.append({"comparison": comparison, **dict(zip(keys, k)), "n_real": len(x),
                    "populated_bytes": float(np.median(g["populated_bytes"])) if "populated_bytes" in g else math.nan,
                    "real": med, "real_lo": lo, "real_hi": hi, "sim": s, "sim_lo": s_lo, "sim_hi": s_hi,
                    "ratio": ratio, "ratio_lo": r_lo, "ratio_hi": r_hi, "pricing": "paired" if paired else "profile",
                    "n_probed": _n_probed(g),
                    "floor_s": floor, "resolved": resolved,
                    "within": within and resolved,
                    "status": ("within" if within else "outside") if resolved else "below resolution"})
    return pd.DataFrame(out)


# A row's in-row probe (mmlab/experiments/probe.py: the same operation on a small separate VMA, in the same
# child, moments before the row's timed work) and the profile cost it measures.
PROBE_COSTS = {"probe_munlock_ns_per_page": "munlock_present_ns", "probe_fault_ns_per_page": "fault_zero_ns",
               "probe_munmap_ns_per_page": "zap_present_ns", "probe_munmap_locked_ns_per_page": "zap_locked_ns"}


def row_costs(r: pd.Series) -> dict[str, float]:
    """The profile costs a row's probes measured (ns per page), keyed by cost name; `zap_locked_ns` is
    munmap() of locked pages, i.e. zap_present_ns + zap_munlock_ns together. A probe taken before and
    after the row's work is priced at their geometric mean (`probe_price.bracketed`), also in runs
    stored when the row kept another rule. Missing probes are left out."""
    out = {}
    for col, cost in PROBE_COSTS.items():
        stem = col.removesuffix("_ns_per_page")
        v = bracketed(r.get(f"{stem}_before_ns_per_page"), r.get(f"{stem}_after_ns_per_page"))
        v = r.get(col) if v is None else v
        if v is not None and pd.notna(v) and float(v) > 0:
            out[cost] = float(v)
    return out


def priced_at_row(profile: Profile, r: pd.Series) -> Profile:
    """`profile` with the costs the row's probes measured, as exact values; `zap_locked_ns` is split into
    zap_present_ns and zap_munlock_ns in the profile's own proportion. A row without probes: `profile`."""
    costs = row_costs(r)
    locked = costs.pop("zap_locked_ns", None)
    if locked is not None:
        zp, zm = profile["zap_present_ns"], profile["zap_munlock_ns"]
        share = zp / (zp + zm) if zp + zm > 0 else 1.0
        costs.update(zap_present_ns=locked * share, zap_munlock_ns=locked * (1 - share))
    return profile.replace(**costs) if costs else profile


def _n_probed(g: pd.DataFrame) -> int:
    cols = [c for c in PROBE_COSTS if c in g]
    return int(g[cols].notna().any(axis=1).sum()) if cols else 0


def _pages(b: float) -> int:
    return math.ceil(float(b) / PAGE_BYTES)


def _pricing(profile: Profile, paired: bool) -> Callable[[pd.Series], Profile]:
    return (lambda r: priced_at_row(profile, r)) if paired else (lambda r: profile)


def latest_sigkill(df: pd.DataFrame, profile: Profile, paired: bool = False) -> pd.DataFrame:
    """Real `sigkill-during-mlock` kill_to_reap_s against the simulated latest era at the same VMA and RSS.
    `paired`: each row priced at its own probes (`priced_at_row`)."""
    at = _pricing(profile, paired)

    def sim(r: pd.Series):
        row = sigkill.run(LATEST, at(r), _pages(r["vma_bytes"]), _pages(r["populated_bytes"]),
                          mapping=r.get("mapping", "anon-private") if isinstance(r.get("mapping"), str) else "anon-private")
        return row["kill_to_reap_s"], row["kill_to_reap_s_lo"], row["kill_to_reap_s_hi"]
    return ratio_table(_real(df, "sigkill-during-mlock", "real"), "kill_to_reap_s", sim,
                       f"sigkill-during-mlock.kill_to_reap_s: sim {LATEST.name} / real", paired=paired)


def latest_munlock_partial(df: pd.DataFrame, profile: Profile, paired: bool = False) -> pd.DataFrame:
    """Real `munlock-partial` munlock_s against the simulated latest era's munlock() of the same state."""
    at = _pricing(profile, paired)

    def sim(r: pd.Series):
        pages = _pages(r["vma_bytes"])
        row = munlock_partial.run(LATEST, at(r), pages, min(1.0, _pages(r["populated_bytes"]) / pages), "prefix")
        return row["munlock_s"], row["munlock_s_lo"], row["munlock_s_hi"]
    return ratio_table(_real(df, "munlock-partial", "real"), "munlock_s", sim,
                       f"munlock-partial.munlock_s: sim {LATEST.name} / real", floor_col=FLOOR_COLS["munlock-partial"],
                       paired=paired)


def probe_pages(r: pd.Series) -> int:
    """Pages a replay row's probe had present when the replay's fault-in began (its present share plus
    what its fault-in added), 0 without a probe."""
    n = 0
    for col in ("probe_munlock_pages", "probe_fault_pages"):
        v = r.get(col)
        if v is not None and pd.notna(v):
            n += int(v)
    return n


def replay_room_pages(r: pd.Series) -> int | None:
    """Pages a cgroup setting's limit let the replay allocate: `pages_faulted` where the replay reported
    it (ENOMEM), else headroom_fraction x unreached (the limit the experiment set; an OOM-killed replay
    reports nothing); None for `free` (no group)."""
    if not isinstance(r.get("setting"), str) or r["setting"] == "free":
        return None
    if pd.notna(r.get("pages_faulted")):
        return int(r["pages_faulted"])
    frac = r.get("headroom_fraction")
    frac = 0.5 if frac is None or pd.isna(frac) else float(frac)  # ReplayParams default, for rows older than the column
    return int(frac * float(r["unreached_pages"]))


def replay_era() -> Era:
    """What a replay is compared with: the 2.6.31 exit's operations (its era's passes) priced at this
    kernel's per-page costs, since the replay does that work on this kernel: no era factor on munlock,
    whose munlock() of the present pages is this kernel's."""
    return dataclasses.replace(era_for("2.6.31"), munlock_factor=1.0)


def killed_exit_priced(row_profile: Profile, profile: Profile, r: pd.Series) -> Profile:
    """An OOM-killed replay's prices with its exit's per-page zap inferred from its own mode: it reaches no
    munmap(), so no probe prices that zap, and the session's zap_present_ns comes from other processes,
    while this guest's per-page costs switch mode from one process to the next. So zap_present_ns is the
    session's scaled by the row's fault probe over the session's fault_zero_ns (the probe ran in turns with
    the replay's fault-in, just before the exit: across 288 killed replays of 16 collections the exit's time
    tracked it, r = 0.69-0.75 per size, against 0.58-0.64 for the munlock probe). A row without a fault
    probe, or unpaired pricing: unchanged."""
    f = r.get("probe_fault_ns_per_page")
    if f is None or pd.isna(f) or float(f) <= 0 or profile["fault_zero_ns"] <= 0:
        return row_profile
    return row_profile.replace(zap_present_ns=profile["zap_present_ns"] * float(f) / profile["fault_zero_ns"])


def prepatch_vs_replay(df: pd.DataFrame, profile: Profile, paired: bool = False) -> pd.DataFrame:
    """`prepatch-replay` replay_s (munlock, fault the unreached pages, unmap: in-process, no exit) against the
    simulated 2.6.31 exit_mmap work (exit_mm_s: munlock pass + unmap, without the process-exit base cost).
    In the cgroup settings the simulated pass stops where the group's limit stopped the replay
    (`replay_room_pages`); an OOM-killed replay's time runs to its reap, so there the simulated exit
    includes the group's OOM kill (oom_kill_s, oom_kill_to_exit_s), the process-exit base cost (exit_s)
    and the unmapping of the probe's pages, which the killed replayer still had mapped; `paired`, that exit's
    zap priced at the row's mode (`killed_exit_priced`)."""
    era = replay_era()
    at = _pricing(profile, paired)

    def sim(r: pd.Series):
        killed = r.get("outcome") == "oom-killed"
        prof = at(r)
        if killed and paired:
            prof = killed_exit_priced(prof, profile, r)
        row = sigkill.run(era, prof, _pages(r["vma_bytes"]), _pages(r["populated_bytes"]),
                          room_pages=replay_room_pages(r), oom_kill=killed)
        key = "exit_s" if killed else "exit_mm_s"
        # a killed replayer's exit also unmaps its probe's pages, which a completed replay unmaps before timing
        extra = probe_pages(r) * prof["zap_present_ns"] * 1e-9 if killed else 0.0
        return row[key] + extra, row[f"{key}_lo"] + extra, row[f"{key}_hi"] + extra
    return ratio_table(_real(df, "prepatch-replay", "replay"), "replay_s", sim,
                       "prepatch-replay.replay_s: sim 2.6.31 exit_mm / replay", paired=paired)


REPLAY_PARTS = ("munlock_s", "fault_s", "munmap_s")  # the replay's timed parts, in the order it runs them


def replay_parts_simulated(r: pd.Series, profile: Profile) -> dict[str, float]:
    """The simulated 2.6.31 exit of one replay row split like the replay times it: the munlock of the
    present pages, the fault-in of the unreached ones (up to the group's limit), and the unmap."""
    vma = Vma.prefix(_pages(r["vma_bytes"]), _pages(r["populated_bytes"]), State.LOCKED)
    munlock, unmap = exit_mmap(replay_era(), vma, replay_room_pages(r))
    unlock = {k: n for k, n in munlock.counts.items() if k == "munlock_present_ns"}
    fault = {k: n for k, n in munlock.counts.items() if k != "munlock_present_ns"}
    if munlock.limit_hit:  # its last charge failed at the group's limit, after the reclaim retries
        fault["memcg_limit_s"] = 1
    return {"munlock_s": profile.price(unlock)[0], "fault_s": profile.price(fault)[0],
            "munmap_s": profile.price(unmap.counts)[0]}


def replay_components(df: pd.DataFrame, profile: Profile, paired: bool = False) -> pd.DataFrame:
    """Where a sim/replay gap comes from: for every replay that ran to its end (not OOM-killed), each timed
    part (munlock(), the fault-in, munmap()) beside the same part of the simulated 2.6.31 exit. One row per
    sweep point and part: real median, simulated median, ratio sim/real."""
    real = _real(df, "prepatch-replay", "replay")
    if real.empty or "fault_s" not in real:
        return pd.DataFrame()
    real = real[real["fault_s"].notna() & real["munmap_s"].notna()]
    if real.empty:
        return pd.DataFrame()
    at = _pricing(profile, paired)
    sims = pd.DataFrame([replay_parts_simulated(r, at(r)) for _, r in real.iterrows()], index=real.index)
    out = []
    for (vma, setting), g in real.groupby(["vma_bytes", "setting"], sort=True):
        for part in REPLAY_PARTS:
            med, sim = float(g[part].median()), float(sims.loc[g.index, part].median())
            out.append({"comparison": "prepatch-replay parts: sim 2.6.31 / replay", "vma_bytes": vma, "setting": setting,
                        "part": part, "n_real": len(g), "real": med, "sim": sim,
                        "ratio": sim / med if med > 0 else math.nan})
    return pd.DataFrame(out)


CALIBRATION_ONLY = ("mlock-throughput", "oom-kill")  # experiments no comparison here validates


def session_profile(df: pd.DataFrame, prior: Profile) -> Profile:
    """A profile priced under the same host conditions as the stored rows: `prior` with the costs the
    stored calibration-only experiments measure (mlock-throughput: populate, fault, munlock, unmap;
    oom-kill) refitted from them. It never reads a validated experiment's rows."""
    from mmlab.sim.calibrate import calibrate_from_runs

    rows = df[df["experiment"].isin(CALIBRATION_ONLY) & (df["method"] == "real")] if "experiment" in df else df.iloc[0:0]
    return calibrate_from_runs(rows, prior=prior, name=f"{prior.name}+session")


def all_ratios(df: pd.DataFrame, profile: Profile, paired: bool = False) -> pd.DataFrame:
    """Every comparison this module knows, stacked (empty when there are no real rows). `paired`: each
    real row priced at the costs its own probes measured (`priced_at_row`), the rest from `profile`."""
    parts = [f(df, profile, paired) for f in (latest_sigkill, latest_munlock_partial, prepatch_vs_replay)]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _case(r: pd.Series) -> str:
    """A point's variant (munlock-partial) or setting (prepatch-replay), or "" when it has neither."""
    return next((str(r[k]) for k in ("variant", "setting") if k in r and isinstance(r[k], str)), "")


def point_label(r: pd.Series) -> str:
    """A sweep point as a reader names it: experiment, VMA, the populated part asked for (the measured one
    differs a little from run to run) and variant or setting."""
    case = _case(r)
    fraction, target = r.get("target_populated_fraction"), r.get("target_populated_bytes")
    populated = (f"{fraction:.0%}" if fraction is not None and pd.notna(fraction) else
                 format_bytes(target if target is not None and pd.notna(target) else r["populated_bytes"]))
    text = f"{str(r['comparison']).split('.')[0]}, {format_bytes(r['vma_bytes'])} VMA, {populated} populated"
    return f"{text}, {case}" if case else text


def ratios_by_run(df: pd.DataFrame, profile: Profile, paired: bool = True, prior: Profile | None = None) -> pd.DataFrame:
    """`all_ratios` of each stored run on its own, with its `run_id` and `point` label: how a point's ratio
    moves from one collection to the next (each experiment of a collection is its own run). With `prior`,
    the costs no probe measures come from the calibration runs of the run's own collection (`collection`,
    the report that made it: `session_profile` of its rows), measured under that collection's host
    conditions; a run outside any collection, or in one without calibration runs, is priced at `profile`."""
    if df is None or df.empty or "run_id" not in df:
        return pd.DataFrame()
    own: dict[str, Profile] = {}
    if prior is not None and "collection" in df:
        for c, g in df[df["collection"].notna()].groupby("collection", sort=False):
            if g["experiment"].isin(CALIBRATION_ONLY).any():
                own[c] = session_profile(g, prior)
    parts = []
    for rid, g in df.groupby("run_id", sort=True):
        c = g["collection"].iloc[0] if "collection" in g else None
        parts.append(all_ratios(g, own.get(c, profile), paired).assign(run_id=rid, collection=c))
    parts = [t for t in parts if not t.empty]
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, ignore_index=True)
    return out.assign(point=[point_label(r) for _, r in out.iterrows()])


def reproducibility(by_run: pd.DataFrame, target: tuple[float, float] = TARGET) -> pd.DataFrame:
    """Per point, over the stored runs that resolved it: how many runs, how many put the ratio within
    `target`, and the range (min-max, not a CI) of their ratios; points below resolution in every run
    are left to the per-run table, which shows their floor."""
    if by_run.empty:
        return pd.DataFrame()
    r = by_run[by_run["resolved"]]
    within = r["ratio"].between(*target)
    g = r.assign(_within=within).groupby("point", sort=False)
    return pd.DataFrame({"runs": g.size(), "runs_within": g["_within"].sum().astype(int),
                         "ratio_min": g["ratio"].min().round(2), "ratio_max": g["ratio"].max().round(2)}).reset_index()


@dataclasses.dataclass(frozen=True)
class GupAllowNullMunlock:
    """Wakabayashi's patch as he ran it (kernel-history 1, W1), on a 2.6.31-rc tree: munlock calls
    __get_user_pages with the new GUP_FLAGS_ALLOW_NULL and no longer with GUP_FLAGS_WRITE, so an address
    follow_page finds empty is left NULL (a page-table walk, no fault) and __mlock_vma_pages_range skips
    it; present pages are munlocked as before, in batches of 16. Not what was merged: 2.6.32 has Hugh
    Dickins' follow_page loop (408e82b78bcc), which does the same work per address."""

    def __call__(self, vma: Vma, munlock_factor: float, room_pages: int | None = None) -> Work:
        w = Work()
        locked = vma.count(State.LOCKED)
        w.counts["munlock_present_ns"] += (locked + vma.count(State.PRESENT)) * munlock_factor
        w.munlocked += locked
        w.counts["walk_absent_ns"] += vma.absent
        return w


def wakabayashi_patched_era() -> Era:
    """The kernel of Wakabayashi's "after" time: 2.6.31-rc with his GUP_FLAGS_ALLOW_NULL munlock."""
    base = era_for("2.6.31")
    return dataclasses.replace(base, name="2.6.31-rc+ALLOW_NULL",
                               title="2.6.31-rc with Wakabayashi's GUP_FLAGS_ALLOW_NULL munlock (his 'after' run)",
                               munlock=GupAllowNullMunlock(), exit_munlock=GupAllowNullMunlock())


def _wakabayashi_row(era: Era, profile: Profile, free_bytes: int | None) -> dict:
    r = sigkill.run(era, profile, _pages(WAKABAYASHI["vma_bytes"]), None, WAKABAYASHI["kill_after_s"],
                    free_pages=None if free_bytes is None else free_bytes // PAGE_BYTES)
    t = WAKABAYASHI["kill_after_s"]
    return {"outcome": r["outcome"], "populated_bytes": r["populated_bytes"], "unreached_pages": r["unreached_pages"],
            "exit_pages_faulted": r["exit_pages_faulted"], "exit_pages_swapped_out": r["exit_pages_swapped_out"],
            "sim_post_kill_s": r["exit_s"], "sim_post_kill_s_lo": r["exit_s_lo"], "sim_post_kill_s_hi": r["exit_s_hi"],
            "sim_total_s": t + r["exit_s"], "sim_total_s_lo": t + r["exit_s_lo"], "sim_total_s_hi": t + r["exit_s_hi"]}


def wakabayashi(profile: Profile | None = None, free_bytes: int | None = None) -> pd.DataFrame:
    """Wakabayashi's test simulated beside his published times: before his patch (2.6.31-rc: the 2.6.31
    write-GUP munlock), after it (his GUP_FLAGS_ALLOW_NULL munlock on the same tree: what his "after" time
    measured), and 2.6.32's follow_page munlock (what was merged, never timed by him). Total = the 2 s
    before the kill + kill-to-reap (his `time` covered the whole run.sh). A run that would have run out
    of memory has an `outcome` other than `exited` and no time."""
    profile = profile or desktop_2009()
    t = WAKABAYASHI["kill_after_s"]
    runs = (("before", "2.6.31-rc (write-GUP munlock)", era_for(WAKABAYASHI["before"]["kernel"]), WAKABAYASHI["before"]),
            ("after", "2.6.31-rc + his GUP_FLAGS_ALLOW_NULL patch", wakabayashi_patched_era(), WAKABAYASHI["after"]),
            ("merged", "2.6.32 (follow_page, 408e82b78bcc)", era_for("2.6.32"), None))
    rows = []
    for when, kernel, era, pub in runs:
        r = _wakabayashi_row(era, profile, free_bytes)
        published = pub["total_s"] if pub else math.nan
        rows.append({"patch": when, "kernel": kernel, "era": era.name, "profile": profile.name,
                     "free_bytes": profile.free_bytes if free_bytes is None else free_bytes, **r,
                     "published_total_s": published, "published_post_kill_s": published - t,
                     "ratio_total": r["sim_total_s"] / published,
                     "ratio_post_kill": r["sim_post_kill_s"] / (published - t)})
    return pd.DataFrame(rows)


def _mb_s_to_ns(mb_s: float) -> float:
    return PAGE_BYTES / (mb_s * 1e6) * 1e9


_MIB = 1 << 20
# The 2009 facts his mail does not give, each with the range a 2 GiB desktop of the time plausibly had
# (the desktop_2009 value is the default). Each knob maps a value to a profile.
KNOBS: dict[str, tuple[str, tuple[float, ...], Callable[[Profile, float], Profile]]] = {
    "free_and_cache_MiB": ("free memory + clean page cache when run.sh starts (MiB; a quarter free)",
                           (256, 512, 768, 1024, 1280, 1536),
                           lambda p, v: dataclasses.replace(p, free_bytes=int(v * _MIB) // 4,
                                                            page_cache_bytes=int(v * _MIB) - int(v * _MIB) // 4)),
    "swap_MB_s": ("effective swap-out speed (MB/s; 7200 rpm disk, seeky to sequential)",
                  (20, 35, 50, 75, 100), lambda p, v: p.replace(swap_out_ns=_mb_s_to_ns(v))),
    "swap_MiB": ("swap size (MiB)", (512, 768, 1024, 2048, 4096),
                 lambda p, v: dataclasses.replace(p, swap_bytes=int(v * _MIB))),
    "other_anon_MiB": ("other tasks' anonymous memory (MiB; swappable, killable)", (256, 640, 1024),
                       lambda p, v: dataclasses.replace(p, other_anon_bytes=int(v * _MIB))),
    "fault_zero_us": ("allocate + zero one page at exit (us)", (0.9, 1.3, 2.0),
                      lambda p, v: p.replace(fault_zero_ns=v * 1e3)),
    "populate_mlock_us": ("mlock populating one page (us)", (1.0, 1.5, 2.5),
                          lambda p, v: p.replace(populate_mlock_ns=v * 1e3)),
    "reclaim_us": ("dropping one clean page-cache page (us)", (0.7, 1.5, 5.0),
                   lambda p, v: p.replace(reclaim_ns=v * 1e3)),
}


def wakabayashi_sensitivity(base: Profile | None = None, knobs: dict | None = None,
                            ranges: dict[str, Sequence[float]] | None = None) -> pd.DataFrame:
    """The re-derived 18.8 s across the plausible range of each unknown 2009 fact, one knob at a time with
    the others at their desktop_2009 value: one row per knob and value, before and after the patch, with
    the outcome (a run out of memory has no time). `ranges` replaces a knob's values."""
    base = base or desktop_2009()
    knobs = knobs or KNOBS
    rows = []
    for knob, (meaning, values, apply) in knobs.items():
        for v in (ranges or {}).get(knob, values):
            prof = apply(base, v)
            w = wakabayashi(prof).set_index("patch")
            b, a = w.loc["before"], w.loc["after"]
            rows.append({"knob": knob, "meaning": meaning, "value": v, "stated": _is_stated(base, knob, v),
                         "outcome": b["outcome"], "sim_total_s": b["sim_total_s"],
                         "ratio_to_published": b["ratio_total"], "after_outcome": a["outcome"],
                         "sim_after_total_s": a["sim_total_s"], "after_ratio_to_published": a["ratio_total"]})
    return pd.DataFrame(rows)


def _is_stated(base: Profile, knob: str, v: float) -> bool:
    """Whether `v` is desktop_2009's own value of the knob."""
    stated = {"free_and_cache_MiB": (base.free_bytes + base.page_cache_bytes) / _MIB,
              "swap_MB_s": PAGE_BYTES / (base["swap_out_ns"] * 1e-9) / 1e6, "swap_MiB": base.swap_bytes / _MIB,
              "other_anon_MiB": base.other_anon_bytes / _MIB, "fault_zero_us": base["fault_zero_ns"] / 1e3,
              "populate_mlock_us": base["populate_mlock_ns"] / 1e3, "reclaim_us": base["reclaim_ns"] / 1e3}
    return knob in stated and math.isclose(stated[knob], v, rel_tol=0.02)


DECIDES = 0.25  # a knob decides the answer when its range moves the total by a quarter of the published time


def deciding_knobs(sens: pd.DataFrame) -> pd.DataFrame:
    """Per knob: the range of the simulated total over the knob's range, the outcomes seen, and whether
    the knob decides the answer (moves it by >= DECIDES x the published 18.8 s, or changes the outcome)."""
    pub = WAKABAYASHI["before"]["total_s"]
    out = []
    for knob, g in sens.groupby("knob", sort=False):
        t = g["sim_total_s"].dropna()
        outcomes = sorted(set(g["outcome"]))
        spread = (t.max() - t.min()) / pub if len(t) else math.nan
        out.append({"knob": knob, "meaning": g["meaning"].iloc[0],
                    "values": f"{g['value'].min():g}-{g['value'].max():g}",
                    "sim_total_min_s": t.min() if len(t) else math.nan, "sim_total_max_s": t.max() if len(t) else math.nan,
                    "spread_of_published": spread, "outcomes": ", ".join(outcomes),
                    "decides": bool(len(outcomes) > 1 or (spread >= DECIDES))})
    return pd.DataFrame(out)


def for_readers(table: pd.DataFrame) -> pd.DataFrame:
    """A ratio table as a reader wants it: the experiment, the point (VMA, populated, variant or setting),
    rows (and rows probed), real and simulated seconds, the ratio with its 95% interval in one column,
    the harness floor where measured, and the status."""
    if table.empty:
        return table
    case = [_case(r) for _, r in table.iterrows()]
    out = pd.DataFrame({"experiment": table["comparison"].str.split(".").str[0], "vma_bytes": table["vma_bytes"],
                        "populated_bytes": table["populated_bytes"], "case": case, "rows": table["n_real"]})
    if "n_probed" in table:
        out["rows_probed"] = table["n_probed"]
    # paired: a 95% bootstrap CI of the median of per-row ratios over measured rows; else the span of the
    # model's range over the measured interval, which is no CI
    paired = "pricing" in table and (table["pricing"] == "paired").all()
    interval = "ratio 95% CI (bootstrap)" if paired else "ratio range (model, measured)"
    out = out.assign(real_s=table["real"], sim_s=table["sim"], ratio=table["ratio"].round(2),
                     **{interval: [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(table["ratio_lo"], table["ratio_hi"])]},
                     floor_s=table["floor_s"], status=table["status"])
    return out
