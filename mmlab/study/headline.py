"""The summary's numbers: tidy rows of every method in, per-scenario tables and generated sentences out.

Three scenarios of the 2009 thread (kernel-history 1, 4): SIGKILL during mlock (exit faulted in every
page mlock never reached), munlock() after a partial mlock (the same write-GUP loop), and an OOM kill
with bystanders (the dying victim's exit ate the reserves and innocents were killed). Each is shown
as four series: pre-patch simulated (2.6.31) and replayed on this kernel, post-patch simulated
(2.6.32), and this kernel measured. Pure functions: the notebook does the loading and simulating.
"""
from __future__ import annotations

import base64
import dataclasses
import io
import textwrap
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from mmlab.core import params as p
from mmlab.core import stats
from mmlab.core.units import PAGE_BYTES, format_bytes

PRE, REPLAY, POST, NOW_SIM, REAL = "pre-sim", "pre-replay", "post-sim", "now-sim", "real"
SERIES_ORDER = (PRE, REPLAY, POST, NOW_SIM, REAL)
COLORS = {PRE: "#b42318", REPLAY: "#f79009", POST: "#1570ef", NOW_SIM: "#7a5af8", REAL: "#12b76a"}


@dataclasses.dataclass(frozen=True)
class SummaryParams(p.Params):
    """What 00-summary compares; everything else comes from stored rows and the simulator."""

    vma_bytes: int = p.size("256MiB", "VMA size simulated when no real rows are stored", lo=1 << 20, hi=1 << 44)
    populated_fractions: tuple = p.reals([0.25, 0.5, 0.75], "populated fractions simulated when no real rows are stored", 0.0, 1.0)
    headline_fraction: float = p.real(0.25, "the populated fraction the generated sentences quote (nearest available)", 0.0, 1.0)
    pre_kernel: str = p.text("2.6.31", "pre-patch kernel to simulate (before 408e82b78bcc)")
    post_kernel: str = p.text("2.6.32", "post-patch kernel to simulate")
    profile: str = p.text("reference", "simulator machine profile: reference | desktop-2009 | host | a .json path")
    run_missing: bool = p.flag(True, "run small real experiments when none are stored for this host")
    runs: str = p.text("", "run ids or folders to read real rows from; empty: newest stored runs of this host")


def series_of(method: str, kernel: object, pre_kernel: str, post_kernel: str) -> str | None:
    """Which of the four series a row belongs to (None: a simulated kernel the summary does not show)."""
    if method == "real":
        return REAL
    if method == "replay":
        return REPLAY
    if method == "simulated":
        k = str(kernel)
        return PRE if k == pre_kernel else POST if k == post_kernel else NOW_SIM
    return None


def series_labels(pre_kernel: str, post_kernel: str, this_kernel: str = "this kernel") -> dict[str, str]:
    """Column and legend names of the series; `this_kernel` (the release) is named once, in REAL."""
    return {PRE: f"pre-patch: {pre_kernel} simulated", REPLAY: "pre-patch work replayed here",
            POST: f"post-patch: {post_kernel} simulated", NOW_SIM: "this kernel simulated",
            REAL: f"this kernel ({this_kernel}) measured"}


def label(rows: pd.DataFrame, pre_kernel: str, post_kernel: str) -> pd.DataFrame:
    """Rows with a `series` column (rows of no series dropped), the point they measure (`point_bytes`:
    the populated size aimed at, since a real mlock stops a few pages past its target) and
    `populated_fraction` = point_bytes / vma_bytes."""
    if rows.empty:
        return rows.assign(series=pd.Series(dtype=str))
    rows = rows.copy()  # consolidated: the experiments' wide frames would fragment as columns are added
    kernel = rows["kernel"] if "kernel" in rows else pd.Series([None] * len(rows), index=rows.index)
    out = rows.assign(series=[series_of(m, k, pre_kernel, post_kernel) for m, k in zip(rows["method"], kernel)])
    out = out[out["series"].notna()].copy()
    if "vma_bytes" in out:
        vma = out["vma_bytes"].astype(float)
        point = pd.Series(np.nan, index=out.index)
        if "target_populated_bytes" in out:
            point = point.fillna(out["target_populated_bytes"].astype(float))
        for col in ("target_populated_fraction", "populated_fraction"):
            if col in out:
                point = point.fillna((vma * out[col].astype(float) / PAGE_BYTES).round() * PAGE_BYTES)
        if "populated_bytes" in out:
            point = point.fillna(out["populated_bytes"].astype(float))
        out["point_bytes"] = point
        out["populated_fraction"] = point / vma
    return out


def points(rows: pd.DataFrame, vma_bytes: int, fractions: Sequence[float]) -> list[tuple[int, int]]:
    """(vma_bytes, point_bytes) to simulate: every point the measured rows cover, else the
    parameters' grid. Simulating at the measured points makes every ratio compare like with like."""
    measured = rows[rows["method"].isin(["real", "replay"])] if "method" in rows else rows
    if not measured.empty and {"vma_bytes", "point_bytes"} <= set(measured):
        pts = sorted({(int(v), int(b)) for v, b in zip(measured["vma_bytes"], measured["point_bytes"]) if np.isfinite(b)})
        if pts:
            return pts
    return [(int(vma_bytes), int(round(vma_bytes * f / PAGE_BYTES)) * PAGE_BYTES) for f in fractions]


def sim_values(scenario: str, vma_bytes: int, point_bytes: int) -> dict:
    """Simulator parameters for one point of a scenario."""
    if scenario == "sigkill-during-mlock":
        return {"vma_bytes": vma_bytes, "populated_bytes": point_bytes}
    if scenario == "munlock-partial":
        return {"vma_bytes": vma_bytes, "populated_fraction": point_bytes / vma_bytes}
    raise ValueError(f"no point parameters for {scenario}")


def measured_for(scenario: str, stored: pd.DataFrame) -> pd.DataFrame:
    """The stored real and replay rows a scenario shows. Replays are those on free memory (`setting
    free`); each replay row's twin, a child brought to the same state and SIGKILLed on this kernel
    (`modern_kill_to_reap_s`), is also a real SIGKILL-during-mlock measurement at that point."""
    if stored.empty or "experiment" not in stored:
        return stored.iloc[0:0]
    replay = stored[stored["experiment"] == "prepatch-replay"]
    if "setting" in replay:
        replay = replay[replay["setting"].fillna("free") == "free"]
    if scenario == "sigkill-during-mlock":
        real = stored[stored["experiment"] == scenario]
        parts = [real, replay]
        if "modern_kill_to_reap_s" in replay and replay["modern_kill_to_reap_s"].notna().any():
            twin = replay[replay["modern_kill_to_reap_s"].notna()].copy()
            twin["method"], twin["kill_to_reap_s"], twin["experiment"] = "real", twin["modern_kill_to_reap_s"], scenario
            parts.append(twin.drop(columns=["replay_s"], errors="ignore"))
        return pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(not p.empty for p in parts) else stored.iloc[0:0]
    if scenario == "munlock-partial":
        real = stored[stored["experiment"] == scenario]
        if "variant" in real and (real["variant"] == "onfault").any():
            real = real[real["variant"] == "onfault"]
        if not replay.empty and {"fault_s", "munlock_s"} <= set(replay):
            replay = replay.assign(replay_munlock_s=replay["fault_s"].astype(float) + replay["munlock_s"].astype(float))
            replay = replay.drop(columns=["munlock_s"])
        parts = [p for p in (real, replay) if not p.empty]
        return pd.concat(parts, ignore_index=True) if parts else stored.iloc[0:0]
    return stored[stored["experiment"] == scenario]


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A scenario of the seed as the summary shows it: which column each method's time is in."""

    name: str
    title: str
    verb: str  # "exit took", as in "exit took 41x longer before the patch"
    metric: dict  # method -> column holding the compared time
    what: str  # what the metric means, for captions

    def value_col(self, method: str) -> str:
        return self.metric.get(method, self.metric["real"])


SIGKILL = Scenario("sigkill-during-mlock", "SIGKILL during mlock()", "exit took",
                   {"real": "kill_to_reap_s", "simulated": "kill_to_reap_s", "replay": "replay_s"},
                   "seconds from SIGKILL to the parent reaping the child (replay: the pre-patch exit munlock's "
                   "faulting re-done on this kernel)")
MUNLOCK = Scenario("munlock-partial", "munlock() after a partial mlock()", "munlock() took",
                   {"real": "munlock_s", "simulated": "munlock_s", "replay": "replay_munlock_s"},
                   "seconds in munlock() of a VM_LOCKED range only partly populated (replay: faulting in the "
                   "unreached pages as the pre-patch munlock did, then munlock)")
OOM_NAME = "oom-kill"


def with_value(rows: pd.DataFrame, scen: Scenario) -> pd.DataFrame:
    """Rows with the scenario's time in one `value_s` column (and `value_s_lo/_hi` for models)."""
    out = pd.concat([rows, pd.DataFrame(np.nan, index=rows.index, columns=["value_s", "value_s_lo", "value_s_hi"])], axis=1)
    for method in out["method"].unique():
        col = scen.value_col(method)
        sel = out["method"] == method
        if col in out:
            out.loc[sel, "value_s"] = out.loc[sel, col].astype(float)
            for side in ("lo", "hi"):
                if f"{col}_{side}" in out:
                    out.loc[sel, f"value_s_{side}"] = out.loc[sel, f"{col}_{side}"].astype(float)
    return out


def prepared(rows: pd.DataFrame, scen: Scenario) -> pd.DataFrame:
    """Labelled rows with the compared time in `value_s`, warm-ups dropped."""
    return stats.measured_rows(with_value(rows, scen))


POINT = ["vma_bytes", "point_bytes"]


def estimates(rows: pd.DataFrame, scen: Scenario) -> pd.DataFrame:
    """One row per point (vma_bytes, point_bytes) and series: n, median and 95% interval of the time."""
    data = prepared(rows, scen)
    cols = [*POINT, "populated_fraction", "series", "n", "median_s", "lo_s", "hi_s", "estimate"]
    out = []
    for (vma, point, series), g in data.groupby([*POINT, "series"], sort=True):
        e = stats.estimate(g, "value_s")
        if e.n:
            out.append({"vma_bytes": int(vma), "point_bytes": int(point), "populated_fraction": point / vma,
                        "series": series, "n": e.n, "median_s": e.value, "lo_s": e.lo, "hi_s": e.hi, "estimate": e})
    return pd.DataFrame(out, columns=cols)


RATIOS = ((PRE, POST, "before/after the patch (simulated)"),
          (REPLAY, REAL, "pre-patch work replayed / this kernel"),
          (REAL, POST, "this kernel / post-patch (simulated)"))


def ratios(est: pd.DataFrame, pairs: Sequence[tuple[str, str, str]] = RATIOS) -> pd.DataFrame:
    """Per point and pair of series: the ratio of their times with its 95% interval and significance."""
    cols = [*POINT, "populated_fraction", "num", "den", "what", "ratio", "lo", "hi", "significant"]
    out = []
    for (vma, point), g in est.groupby(POINT, sort=True):
        by = {s: e for s, e in zip(g["series"], g["estimate"])}
        for num, den, what in pairs:
            if num in by and den in by:
                r, lo, hi = stats.ratio(by[num], by[den])
                out.append({"vma_bytes": int(vma), "point_bytes": int(point), "populated_fraction": point / vma,
                            "num": num, "den": den, "what": what, "ratio": r, "lo": lo, "hi": hi,
                            "significant": stats.significant(lo, hi)})
    return pd.DataFrame(out, columns=cols)


def fmt_s(v: float) -> str:
    """Seconds with a unit people read: 41 ms, 2.3 s, 180 us."""
    if not np.isfinite(v):
        return "n/a"
    a = abs(v)
    if a >= 1:
        return f"{v:.3g} s"
    if a >= 1e-3:
        return f"{v * 1e3:.3g} ms"
    return f"{v * 1e6:.3g} us"


def fmt_x(v: float) -> str:
    """A ratio as people say it: 41x, 1.3x, 0.52x."""
    if not np.isfinite(v):
        return "n/a"
    return f"{v:.0f}x" if v >= 10 else f"{v:.2g}x"


def fmt_pct(f: float) -> str:
    return f"{f:.0%}" if f >= 0.01 or f == 0 else f"{f:.2%}"


def fmt_interval(lo: float, hi: float, f: Callable[[float], str]) -> str:
    return f"{f(lo)}-{f(hi)}" if np.isfinite(lo) and np.isfinite(hi) else "no interval"


def table(est: pd.DataFrame, rat: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """The scenario's table: a row per point, a column per series (`median (95% CI), n`) and per ratio
    (`ratio (CI)`, `*` where significant), in the order pre-patch, post-patch, this kernel."""
    rows = []
    for (vma, point), g in est.groupby(POINT, sort=True):
        row = {"VMA": format_bytes(vma), "populated": f"{format_bytes(point)} ({fmt_pct(point / vma)})"}
        for s in SERIES_ORDER:
            hit = g[g["series"] == s]
            if hit.empty:
                continue
            e = hit.iloc[0]
            ci = fmt_interval(e["lo_s"], e["hi_s"], fmt_s)
            row[labels[s]] = f"{fmt_s(e['median_s'])} ({ci}, n={e['n']})" if e["n"] > 1 else f"{fmt_s(e['median_s'])} ({ci})"
        for _, r in rat[(rat["vma_bytes"] == vma) & (rat["point_bytes"] == point)].iterrows():
            row[r["what"]] = f"{fmt_x(r['ratio'])} ({fmt_interval(r['lo'], r['hi'], fmt_x)}){' *' if r['significant'] else ''}"
        rows.append(row)
    cols = ["VMA", "populated", *[labels[s] for s in SERIES_ORDER], *[w for _, _, w in RATIOS]]
    out = pd.DataFrame(rows)
    return out[[c for c in cols if c in out]].fillna("")


def quoted_point(est: pd.DataFrame, fraction: float, needs: Sequence[str]) -> tuple[int, int] | None:
    """The point a sentence quotes: among points where all `needs` series exist, the one nearest
    `fraction` populated (then the one with most series, then the largest VMA)."""
    best, key = None, None
    for (vma, point), g in est.groupby(POINT, sort=True):
        have = set(g["series"])
        if not set(needs) <= have:
            continue
        k = (round(abs(point / vma - fraction), 3), -len(have), -vma)
        if key is None or k < key:
            best, key = (int(vma), int(point)), k
    return best


def sentence(scen: Scenario, est: pd.DataFrame, rat: pd.DataFrame, labels: dict[str, str], fraction: float,
             kernels: tuple[str, str] = ("2.6.31", "2.6.32"), missing: dict[str, str] | None = None) -> str:
    """The scenario's headline in words, every number read from `est`/`rat` (nothing typed in), e.g.
    "at 25% populated, exit took 41x longer before the patch (CI 38x-44x)"."""
    missing = missing or {}
    if est.empty:
        return f"**{scen.title}:** no rows to summarise."
    r_all = rat.set_index([*POINT, "num", "den"])
    e_all = est.set_index([*POINT, "series"])

    def where(pt):
        return f"{format_bytes(pt[0])} VMA at {fmt_pct(pt[1] / pt[0])} populated"

    parts = [f"**{scen.title}:**"]
    pt = quoted_point(est, fraction, (PRE, POST, REAL)) or quoted_point(est, fraction, (PRE, POST))
    if pt is not None:
        r = r_all.loc[(*pt, PRE, POST)]
        parts.append(f"with a {where(pt)}, {scen.verb} {fmt_x(r['ratio'])} "
                     f"{'longer' if r['ratio'] >= 1 else 'as long'} before the patch "
                     f"(simulated {kernels[0]}: {fmt_s(e_all.loc[(*pt, PRE), 'median_s'])}, "
                     f"{kernels[1]}: {fmt_s(e_all.loc[(*pt, POST), 'median_s'])}; "
                     f"CI {fmt_interval(r['lo'], r['hi'], fmt_x)}).")
    real_pt = pt if pt is not None and (*pt, REAL) in e_all.index else quoted_point(est, fraction, (REAL,))
    if real_pt is not None:
        e = e_all.loc[(*real_pt, REAL)]
        parts.append(f"On this kernel (measured{', ' + where(real_pt) if real_pt != pt else ''}) it took "
                     f"{fmt_s(e['median_s'])} (CI {fmt_interval(e['lo_s'], e['hi_s'], fmt_s)}, n={e['n']}).")
    else:
        parts.append(f"No measured rows on this kernel{': ' + missing[REAL] if missing.get(REAL) else ''}.")
    rp = quoted_point(est, fraction, (REPLAY, REAL))
    if rp is not None:
        r = r_all.loc[(*rp, REPLAY, REAL)]
        parts.append(f"Re-doing the pre-patch work on this kernel ({where(rp)}) took "
                     f"{fmt_s(e_all.loc[(*rp, REPLAY), 'median_s'])}, {fmt_x(r['ratio'])} the measured time "
                     f"(CI {fmt_interval(r['lo'], r['hi'], fmt_x)}{'' if r['significant'] else ', not significant'}).")
    elif quoted_point(est, fraction, (REPLAY,)) is not None:
        rp = quoted_point(est, fraction, (REPLAY,))
        e = e_all.loc[(*rp, REPLAY)]
        parts.append(f"Re-doing the pre-patch work on this kernel ({where(rp)}) took {fmt_s(e['median_s'])} "
                     f"(CI {fmt_interval(e['lo_s'], e['hi_s'], fmt_s)}, n={e['n']}).")
    else:
        parts.append(f"No replay rows{': ' + missing[REPLAY] if missing.get(REPLAY) else ''}.")
    return " ".join(parts)


# --- OOM kill with bystanders: who died, and did the machine recover -------------------------------------

def oom_outcomes(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per series: trials, bystanders killed of bystanders present, victim killed, the
    victim's kill-to-reap time (median, 95% CI) and, for models, the outcome (recovered | bystander-killed | hung)."""
    out = []
    if rows.empty:
        return pd.DataFrame(columns=["series", "trials", "bystanders", "bystanders_killed", "victims_killed",
                                     "victim_kill_to_reap_s", "lo_s", "hi_s", "outcome", "outcome_s", "estimate"])
    data = stats.measured_rows(rows)
    for series, g in data.groupby("series", sort=False):
        trial_cols = [c for c in ("run_id", "repeat", "kernel") if c in g and g[c].notna().any()]
        trials = g.groupby(trial_cols, dropna=False).ngroups if trial_cols else 1
        by = g[g["role"] == "bystander"]
        vic = g[g["role"] == "victim"]
        killed = ~by["survived"].astype(bool)
        e = stats.estimate(vic.assign(v=vic["kill_to_reap_s"].astype(float)), "v") if "kill_to_reap_s" in vic else stats.Estimate(np.nan, np.nan, np.nan, 0)
        outcome = ", ".join(sorted(set(g["outcome"].dropna().astype(str)))) if "outcome" in g else ""
        out.append({"series": series, "trials": trials, "bystanders": len(by), "bystanders_killed": int(killed.sum()),
                    "victims_killed": int((~vic["survived"].astype(bool)).sum()),
                    "victim_kill_to_reap_s": e.value, "lo_s": e.lo, "hi_s": e.hi, "outcome": outcome,
                    "outcome_s": float(g["outcome_s"].median()) if "outcome_s" in g else np.nan, "estimate": e})
    df = pd.DataFrame(out)
    df["order"] = df["series"].map({s: i for i, s in enumerate(SERIES_ORDER)})
    return df.sort_values("order").drop(columns="order").reset_index(drop=True)


def oom_table(outcomes: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """The OOM table: per series, bystanders killed, victim reaped, and the model's outcome."""
    rows = []
    for _, r in outcomes.iterrows():
        ci = fmt_interval(r["lo_s"], r["hi_s"], fmt_s)
        reap = "never (not reaped)" if not np.isfinite(r["victim_kill_to_reap_s"]) else f"{fmt_s(r['victim_kill_to_reap_s'])} ({ci})"
        rows.append({"series": labels[r["series"]], "trials": r["trials"],
                     "bystanders killed": f"{r['bystanders_killed']} of {r['bystanders']}",
                     "victim kill to reap": reap, "outcome": r["outcome"] or "measured: see bystanders killed"})
    return pd.DataFrame(rows)


def oom_sentence(outcomes: pd.DataFrame, labels: dict[str, str], missing: dict[str, str] | None = None) -> str:
    """The OOM headline in words: bystanders killed before the patch, after it, and on this kernel."""
    missing = missing or {}
    by = outcomes.set_index("series") if not outcomes.empty else pd.DataFrame()
    parts = ["**OOM kill with bystanders:**"]

    def told(s: str, who: str) -> str:
        r = by.loc[s]
        end = f" (modelled outcome: {r['outcome']})" if r["outcome"] else ""
        reap = ("the victim was never reaped" if not np.isfinite(r["victim_kill_to_reap_s"])
                else f"the victim was reaped {fmt_s(r['victim_kill_to_reap_s'])} after its kill")
        return f"{who}, {r['bystanders_killed']} of {r['bystanders']} bystanders were killed and {reap}{end}."

    if PRE in by.index:
        parts.append(told(PRE, f"before the patch ({labels[PRE]})".capitalize()))
    if POST in by.index:
        parts.append(told(POST, f"After it ({labels[POST]})"))
    if REAL in by.index:
        r = by.loc[REAL]
        parts.append(f"On this kernel (measured, {r['trials']} trial{'s' if r['trials'] != 1 else ''}), "
                     f"{r['bystanders_killed']} of {r['bystanders']} bystanders were killed; the victim's kill-to-reap "
                     f"took {fmt_s(r['victim_kill_to_reap_s'])} (CI {fmt_interval(r['lo_s'], r['hi_s'], fmt_s)}).")
    else:
        parts.append(f"No measured rows on this kernel{': ' + missing[REAL] if REAL in missing else ''}.")
    return " ".join(parts)


def oom_sim_values(rows: pd.DataFrame, defaults: dict) -> dict:
    """Simulator parameters matching a measured OOM run: the memory cgroup's limit as the machine's
    RAM, its bystanders and their size, the victim's mlock; without measured rows, `defaults`."""
    real = rows[rows["method"] == "real"] if "method" in rows else rows
    v = dict(defaults)
    if real.empty or "limit_bytes" not in real or not real["limit_bytes"].notna().any():
        return v
    first = real[real["limit_bytes"].notna()].iloc[0]
    limit = int(first["limit_bytes"])
    n = int(first["bystanders"]) if "bystanders" in real and pd.notna(first.get("bystanders")) else int((real["role"] == "bystander").sum())
    byb = int(first["bystander_bytes"]) if "bystander_bytes" in real and pd.notna(first.get("bystander_bytes")) else 32 << 20
    free = max(limit - n * byb, 1 << 20)
    v.update(ram_bytes=limit, bystanders=n, bystander_bytes=byb, free_bytes=free,
             reserve_bytes=min(int(v.get("reserve_bytes", 16 << 20)), free // 8))
    lock = int(first["lock_bytes"]) if "lock_bytes" in real and pd.notna(first.get("lock_bytes")) else 2 * limit
    v["vma_bytes"] = max(lock, free + (1 << 20))
    return v


# The real experiments the summary reads, and the small runs it makes when one is not stored.
NEEDED = ("sigkill-during-mlock", "prepatch-replay", "munlock-partial", "oom-kill")
SMALL_RUNS: dict[str, dict] = {
    "sigkill-during-mlock": {"vma_bytes": "256MiB,1GiB", "populated_bytes": "16MiB,64MiB", "repeats": 3, "warmup": 1},
    "prepatch-replay": {"vma_bytes": "64MiB,256MiB", "settings": "free", "repeats": 3, "warmup": 1},
    "munlock-partial": {"vma_bytes": "64MiB", "populated_fractions": "0.1,0.25,0.5", "variants": "onfault",
                        "repeats": 3, "warmup": 1},
    "oom-kill": {"repeats": 2, "warmup": 0},
}


def small_run(name: str) -> dict:
    """Small parameters for an experiment the summary runs itself (those the experiment declares)."""
    from mmlab import experiments

    known = experiments.get(name).Params.specs()
    return {k: v for k, v in SMALL_RUNS.get(name, {}).items() if k in known}


def missing_experiments(stored: pd.DataFrame) -> list[str]:
    """The needed experiments with no stored rows."""
    have = set(stored["experiment"]) if "experiment" in stored and len(stored) else set()
    return [n for n in NEEDED if n not in have]


def missing_series(scen: Scenario | None, missing: dict[str, str]) -> dict[str, str]:
    """Why a scenario has no measured (REAL) or replay series: the reason its experiment is missing."""
    real = scen.name if scen is not None else OOM_NAME
    out = {}
    if real in missing:
        out[REAL] = f"{real}: {missing[real]}"
    if "prepatch-replay" in missing:
        out[REPLAY] = f"prepatch-replay: {missing['prepatch-replay']}"
    return out


def provenance(stored: pd.DataFrame, missing: dict[str, str]) -> str:
    """Markdown: which run each experiment's rows come from, and what is missing and why."""
    lines = []
    if "experiment" in stored and len(stored):
        for name, g in stored.groupby("experiment", sort=True):
            runs = ", ".join(f"`{r}`" for r in sorted(g["run_id"].dropna().astype(str).unique())) if "run_id" in g else "?"
            lines.append(f"- **{name}**: {len(g)} rows ({', '.join(sorted(g['method'].dropna().unique()))}) from {runs}")
    for name, why in missing.items():
        lines.append(f"- **{name}**: missing ({why}); the summary goes on without it")
    return "\n".join(lines) or "No measured rows: only simulated series are shown."


def newest_per_experiment(rows: pd.DataFrame, host_tag: str | None = None) -> pd.DataFrame:
    """Of stored rows, for each experiment the newest run (of this host when given): a report on this
    machine summarises the data its own notebooks just stored, not older or foreign runs."""
    if rows.empty or "run_id" not in rows:
        return rows
    data = rows
    if host_tag is not None and "env.host_tag" in data:
        data = data[data["env.host_tag"] == host_tag]
    keep = [g[g["run_id"] == g["run_id"].max()] for _, g in data.groupby("experiment", sort=True)]
    return pd.concat(keep, ignore_index=True) if keep else data.iloc[0:0]


# --- figures --------------------------------------------------------------------------------------------

def _plt():
    import matplotlib.pyplot as plt

    return plt


def focus_vmas(est: pd.DataFrame, fraction: float) -> list[int]:
    """The VMA sizes a figure shows: the one the sentence quotes and the largest (where pre-patch
    exit cost grows with the VMA and today's does not)."""
    if est.empty:
        return []
    pt = quoted_point(est, fraction, (PRE, POST, REAL)) or quoted_point(est, fraction, (PRE, POST))
    return sorted({int(pt[0]) if pt else int(est["vma_bytes"].min()), int(est["vma_bytes"].max())})


def figure(data: pd.DataFrame, est: pd.DataFrame, scen: Scenario, labels: dict[str, str], vmas: Sequence[int] | None = None):
    """Time against populated size, one panel per VMA size (`vmas`, else the largest two), log scales:
    models as a dashed line with their interval band; measured series as the median line, a 95% CI band
    and every repeat as a point."""
    plt = _plt()
    vmas = list(vmas) if vmas else (sorted(est["vma_bytes"].unique())[-2:] if not est.empty else [])
    fig, axes = plt.subplots(1, max(1, len(vmas)), figsize=(4.2 * max(1, len(vmas)) + 0.6, 4.0), squeeze=False, sharey=True)
    if est.empty:
        axes[0, 0].text(0.5, 0.5, "no rows", ha="center", va="center", transform=axes[0, 0].transAxes)
        return fig
    for ax, vma in zip(axes[0], vmas):
        for s in SERIES_ORDER:
            e = est[(est["series"] == s) & (est["vma_bytes"] == vma)].sort_values("point_bytes")
            if e.empty:
                continue
            x = e["point_bytes"] / (1 << 20)
            measured = s in (REAL, REPLAY)
            ax.plot(x, e["median_s"], color=COLORS[s], ls="-" if measured else "--", marker="o" if measured else "s",
                    ms=5, label=labels[s] + (" (median, 95% CI, repeats)" if measured else " (model interval)"))
            ok = (np.isfinite(e["lo_s"]) & np.isfinite(e["hi_s"])).to_numpy()
            if ok.any():
                ax.fill_between(x[ok], e["lo_s"][ok], e["hi_s"][ok], color=COLORS[s], alpha=0.18, lw=0)
            if measured:
                pts = data[(data["series"] == s) & (data["vma_bytes"] == vma)]
                ax.scatter(pts["point_bytes"] / (1 << 20), pts["value_s"], color=COLORS[s], s=12, alpha=0.6, zorder=3)
        ax.set_yscale("log")
        if (est["point_bytes"] == 0).any():
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlim(left=-0.5)
        else:
            ax.set_xscale("log", base=2)
        ax.set_xlabel("populated when stopped (MiB)")
        ax.set_title(f"{format_bytes(vma)} VMA", fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
    axes[0, 0].set_ylabel("seconds (log scale)")
    handles, names = [], []
    for ax in axes[0]:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                handles.append(h)
                names.append(n)
    fig.legend(handles, names, fontsize=7, loc="lower center", ncol=2, bbox_to_anchor=(0.5, -0.02 - 0.045 * ((len(names) + 1) // 2)))
    fig.suptitle(scen.title, fontsize=11)
    fig.tight_layout()
    return fig


def oom_figure(data: pd.DataFrame, outcomes: pd.DataFrame, labels: dict[str, str]):
    """Left: bystanders killed per trial (bar: total share; points: each trial). Right: the victim's
    kill-to-reap time, every trial a point, the median a bar; a model's unreaped victim is written in."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(7.4, 3.6))
    if outcomes.empty:
        a1.text(0.5, 0.5, "no rows", ha="center", va="center", transform=a1.transAxes)
        return fig
    names = list(outcomes["series"])
    ticks = [textwrap.fill(labels[s], 16) for s in names]
    for i, r in outcomes.reset_index(drop=True).iterrows():
        s = r["series"]
        share = r["bystanders_killed"] / r["bystanders"] if r["bystanders"] else 0.0
        a1.bar(i, share * 100, color=COLORS[s], alpha=0.7)
        g = data[(data["series"] == s) & (data["role"] == "bystander")]
        trial_cols = [c for c in ("run_id", "repeat", "kernel") if c in g and g[c].notna().any()]
        if trial_cols and len(g):
            per = g.groupby(trial_cols, dropna=False)["survived"].apply(lambda x: 100 * (~x.astype(bool)).mean())
            a1.scatter([i] * len(per), per, color="k", s=10, zorder=3)
        v = data[(data["series"] == s) & (data["role"] == "victim")]["kill_to_reap_s"].astype(float)
        v = v[np.isfinite(v)]
        if len(v):
            a2.bar(i, float(np.median(v)), color=COLORS[s], alpha=0.7)
            a2.scatter([i] * len(v), v, color="k", s=10, zorder=3)
        else:
            a2.text(i, 0.5, "not reaped", rotation=90, ha="center", va="center", transform=a2.get_xaxis_transform(), fontsize=8)
    for ax in (a1, a2):
        ax.set_xticks(range(len(names)), ticks, fontsize=7)
    a1.set_ylabel("bystanders killed (%)")
    a1.set_ylim(0, 105)
    a2.set_ylabel("victim kill to reap (s, log)")
    a2.set_yscale("log")
    fig.suptitle("OOM kill with bystanders", fontsize=11)
    fig.tight_layout()
    return fig


def png_base64(fig, dpi: int = 100) -> str:
    """A figure as base64 PNG (closed afterwards): embedded so the page works offline."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def side_by_side_html(tab: pd.DataFrame, fig, caption: str = "") -> str:
    """A table and a figure side by side (wrapping on narrow screens), the figure embedded as PNG."""
    img = png_base64(fig)
    cap = f'<p style="font-size:90%;color:#555">{caption}</p>' if caption else ""
    return ('<div class="mmlab-side" style="display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start">'
            f'<div style="flex:1 1 30em;overflow-x:auto;font-size:90%">{tab.to_html(index=False, escape=True)}</div>'
            f'<div style="flex:1 1 26em"><img alt="figure" style="max-width:100%" src="data:image/png;base64,{img}">{cap}</div></div>')


# --- one call per scenario, for the notebook --------------------------------------------------------------

@dataclasses.dataclass
class Summary:
    """Everything the summary shows for one scenario."""

    scenario: str
    rows: pd.DataFrame  # labelled rows of every series (measured and simulated)
    estimates: pd.DataFrame
    ratios: pd.DataFrame
    table: pd.DataFrame
    sentence: str
    focus: list = dataclasses.field(default_factory=list)  # VMA sizes the figure shows


def simulated(scenario: str, pts: Sequence[tuple[int, int]], kernels: Sequence[str], profile: str) -> pd.DataFrame:
    """The simulator's rows at each point for each kernel (deterministic, milliseconds per point)."""
    from mmlab import sim

    frames = [sim.SCENARIOS[scenario].run({**sim_values(scenario, v, b), "kernel": k, "profile": profile})
              for v, b in pts for k in kernels]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def summarise(scen: Scenario, stored: pd.DataFrame, prm: SummaryParams, this_kernel: str,
              missing: dict[str, str] | None = None) -> Summary:
    """Measured rows of the scenario, the simulator at the same points for the pre- and post-patch
    kernels, their estimates, ratios, table and sentence."""
    measured = measured_for(scen.name, stored)
    measured = label(measured, prm.pre_kernel, prm.post_kernel) if not measured.empty else measured
    pts = points(measured, prm.vma_bytes, prm.populated_fractions)
    sim_rows = label(simulated(scen.name, pts, (prm.pre_kernel, prm.post_kernel), prm.profile), prm.pre_kernel, prm.post_kernel)
    rows = pd.concat([f for f in (measured, sim_rows) if not f.empty], ignore_index=True)
    est = estimates(rows, scen)
    rat = ratios(est)
    labels = series_labels(prm.pre_kernel, prm.post_kernel, this_kernel)
    return Summary(scen.name, prepared(rows, scen), est, rat, table(est, rat, labels),
                   sentence(scen, est, rat, labels, prm.headline_fraction, (prm.pre_kernel, prm.post_kernel), missing),
                   focus_vmas(est, prm.headline_fraction))


def summarise_oom(stored: pd.DataFrame, prm: SummaryParams, this_kernel: str,
                  missing: dict[str, str] | None = None) -> Summary:
    """The OOM scenario: measured trials, and the simulator with the same memory limit and bystanders."""
    from mmlab import sim

    measured = stored[stored["experiment"] == OOM_NAME] if "experiment" in stored else stored.iloc[0:0]
    values = oom_sim_values(measured, {})
    frames = [sim.SCENARIOS[OOM_NAME].run({**values, "kernel": k, "profile": prm.profile})
              for k in (prm.pre_kernel, prm.post_kernel)]
    rows = label(pd.concat([f for f in (measured, *frames) if not f.empty], ignore_index=True), prm.pre_kernel, prm.post_kernel)
    out = oom_outcomes(rows)
    labels = series_labels(prm.pre_kernel, prm.post_kernel, this_kernel)
    return Summary(OOM_NAME, rows, out, pd.DataFrame(), oom_table(out, labels), oom_sentence(out, labels, missing))
