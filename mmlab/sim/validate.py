"""Simulated against real: sim/real ratio tables from a DataFrame of stored real rows, and the historical
check against Wakabayashi's published 2009 times. Pure functions of their inputs.

Each table has one row per sweep point: the real median (with bootstrap interval), the simulated value
at the same parameters (with the profile's interval), ratio = sim/real, and its interval
[sim_lo / real_hi, sim_hi / real_lo]; `within` says whether the ratio is inside the 0.75x-1.33x target.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from mmlab.core.stats import bootstrap_ci, measured_rows
from mmlab.core.units import PAGE_BYTES
from mmlab.sim import munlock_partial, sigkill
from mmlab.sim.address_space import State, Vma
from mmlab.sim.eras import LATEST, era_for, exit_mmap
from mmlab.sim.profile import Profile, desktop_2009

TARGET = (0.75, 1.33)
SWEEP_KEYS = ("vma_bytes", "target_populated_bytes", "target_populated_fraction", "mapping", "variant", "setting",
              "fault_method", "kill_after_s")

# Wakabayashi, 2009-08-23 (kernel-history 1): run.sh mlocks 2,000,000,000 bytes, sleeps 2 s, kill -9, wait.
WAKABAYASHI = {"vma_bytes": 2_000_000_000, "kill_after_s": 2.0,
               "before": {"kernel": "2.6.31", "total_s": 18.781, "system_s": 2.59},
               "after": {"kernel": "2.6.32", "total_s": 2.507, "system_s": 1.15}}


def _real(df: pd.DataFrame, experiment: str, method: str) -> pd.DataFrame:
    if df is None or df.empty or "experiment" not in df:
        return pd.DataFrame()
    d = df[(df["experiment"] == experiment) & (df["method"] == method)]
    return measured_rows(d)


def ratio_table(real: pd.DataFrame, real_col: str, simulate_row: Callable[[pd.Series], tuple[float, float, float]],
                comparison: str, keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Per sweep point: real median and interval, simulated value and interval (each real row simulated at
    its own measured parameters, then the median taken), ratio and ratio interval."""
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
        k = k if isinstance(k, tuple) else (k,)
        out.append({"comparison": comparison, **dict(zip(keys, k)), "n_real": len(x),
                    "populated_bytes": float(np.median(g["populated_bytes"])) if "populated_bytes" in g else math.nan,
                    "real": med, "real_lo": lo, "real_hi": hi, "sim": s, "sim_lo": s_lo, "sim_hi": s_hi,
                    "ratio": ratio, "ratio_lo": s_lo / hi if hi > 0 else math.nan,
                    "ratio_hi": s_hi / lo if lo > 0 else math.nan,
                    "within": bool(TARGET[0] <= ratio <= TARGET[1])})
    return pd.DataFrame(out)


def _pages(b: float) -> int:
    return math.ceil(float(b) / PAGE_BYTES)


def latest_sigkill(df: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Real `sigkill-during-mlock` kill_to_reap_s against the simulated latest era at the same VMA and RSS."""
    def sim(r: pd.Series):
        row = sigkill.run(LATEST, profile, _pages(r["vma_bytes"]), _pages(r["populated_bytes"]),
                          mapping=r.get("mapping", "anon-private") if isinstance(r.get("mapping"), str) else "anon-private")
        return row["kill_to_reap_s"], row["kill_to_reap_s_lo"], row["kill_to_reap_s_hi"]
    return ratio_table(_real(df, "sigkill-during-mlock", "real"), "kill_to_reap_s", sim,
                       f"sigkill-during-mlock.kill_to_reap_s: sim {LATEST.name} / real")


def latest_munlock_partial(df: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Real `munlock-partial` munlock_s against the simulated latest era's munlock() of the same state."""
    def sim(r: pd.Series):
        pages = _pages(r["vma_bytes"])
        row = munlock_partial.run(LATEST, profile, pages, min(1.0, _pages(r["populated_bytes"]) / pages), "prefix")
        return row["munlock_s"], row["munlock_s_lo"], row["munlock_s_hi"]
    return ratio_table(_real(df, "munlock-partial", "real"), "munlock_s", sim,
                       f"munlock-partial.munlock_s: sim {LATEST.name} / real")


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


def prepatch_vs_replay(df: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """`prepatch-replay` replay_s (munlock, fault the unreached pages, unmap: in-process, no exit) against the
    simulated 2.6.31 exit_mmap work (exit_mm_s: munlock pass + unmap, without the process-exit base cost).
    In the cgroup settings the simulated pass stops where the group's limit stopped the replay
    (`replay_room_pages`); an OOM-killed replay's time runs to its reap, so there the simulated exit
    includes the group's OOM kill (oom_kill_s) and the process-exit base cost (exit_s)."""
    era = era_for("2.6.31")

    def sim(r: pd.Series):
        killed = r.get("outcome") == "oom-killed"
        row = sigkill.run(era, profile, _pages(r["vma_bytes"]), _pages(r["populated_bytes"]),
                          room_pages=replay_room_pages(r), oom_kill=killed)
        key = "exit_s" if killed else "exit_mm_s"
        return row[key], row[f"{key}_lo"], row[f"{key}_hi"]
    return ratio_table(_real(df, "prepatch-replay", "replay"), "replay_s", sim,
                       "prepatch-replay.replay_s: sim 2.6.31 exit_mm / replay")


REPLAY_PARTS = ("munlock_s", "fault_s", "munmap_s")  # the replay's timed parts, in the order it runs them


def replay_parts_simulated(r: pd.Series, profile: Profile) -> dict[str, float]:
    """The simulated 2.6.31 exit of one replay row split like the replay times it: the munlock of the
    present pages, the fault-in of the unreached ones (up to the group's limit), and the unmap."""
    vma = Vma.prefix(_pages(r["vma_bytes"]), _pages(r["populated_bytes"]), State.LOCKED)
    munlock, unmap = exit_mmap(era_for("2.6.31"), vma, replay_room_pages(r))
    unlock = {k: n for k, n in munlock.counts.items() if k == "munlock_present_ns"}
    fault = {k: n for k, n in munlock.counts.items() if k != "munlock_present_ns"}
    return {"munlock_s": profile.price(unlock)[0], "fault_s": profile.price(fault)[0],
            "munmap_s": profile.price(unmap.counts)[0]}


def replay_components(df: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Where a sim/replay gap comes from: for every replay that ran to its end (not OOM-killed), each timed
    part (munlock(), the fault-in, munmap()) beside the same part of the simulated 2.6.31 exit. One row per
    sweep point and part: real median, simulated median, ratio sim/real."""
    real = _real(df, "prepatch-replay", "replay")
    if real.empty or "fault_s" not in real:
        return pd.DataFrame()
    real = real[real["fault_s"].notna() & real["munmap_s"].notna()]
    if real.empty:
        return pd.DataFrame()
    sims = pd.DataFrame([replay_parts_simulated(r, profile) for _, r in real.iterrows()], index=real.index)
    out = []
    for (vma, setting), g in real.groupby(["vma_bytes", "setting"], sort=True):
        for part in REPLAY_PARTS:
            med, sim = float(g[part].median()), float(sims.loc[g.index, part].median())
            out.append({"comparison": "prepatch-replay parts: sim 2.6.31 / replay", "vma_bytes": vma, "setting": setting,
                        "part": part, "n_real": len(g), "real": med, "sim": sim,
                        "ratio": sim / med if med > 0 else math.nan})
    return pd.DataFrame(out)


def all_ratios(df: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Every comparison this module knows, stacked (empty when there are no real rows)."""
    parts = [f(df, profile) for f in (latest_sigkill, latest_munlock_partial, prepatch_vs_replay)]
    parts = [p for p in parts if not p.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def wakabayashi(profile: Profile | None = None, free_bytes: int | None = None) -> pd.DataFrame:
    """Wakabayashi's test simulated before (2.6.31) and after (2.6.32) the patch, beside his published times.
    Total = the 2 s before the kill + kill-to-reap (his `time` covered the whole run.sh)."""
    profile = profile or desktop_2009()
    free = (profile.free_bytes if free_bytes is None else free_bytes) // PAGE_BYTES
    rows = []
    for when in ("before", "after"):
        pub = WAKABAYASHI[when]
        r = sigkill.run(era_for(pub["kernel"]), profile, _pages(WAKABAYASHI["vma_bytes"]), None,
                        WAKABAYASHI["kill_after_s"], free_pages=free)
        t = WAKABAYASHI["kill_after_s"]
        rows.append({"patch": when, "kernel": pub["kernel"], "profile": profile.name, "free_bytes": free * PAGE_BYTES,
                     "populated_bytes": r["populated_bytes"], "unreached_pages": r["unreached_pages"],
                     "exit_pages_faulted": r["exit_pages_faulted"],
                     "published_total_s": pub["total_s"], "published_post_kill_s": pub["total_s"] - t,
                     "sim_post_kill_s": r["exit_s"], "sim_post_kill_s_lo": r["exit_s_lo"], "sim_post_kill_s_hi": r["exit_s_hi"],
                     "sim_total_s": t + r["exit_s"], "sim_total_s_lo": t + r["exit_s_lo"], "sim_total_s_hi": t + r["exit_s_hi"],
                     "ratio_total": (t + r["exit_s"]) / pub["total_s"],
                     "ratio_post_kill": r["exit_s"] / (pub["total_s"] - t)})
    return pd.DataFrame(rows)
