"""Estimating the summary's numbers: per point and series a median with an interval named for what it
is, and per pair of series their ratio.

An interval's kind travels with it, so no sentence can call a model's bounds a confidence interval:
- `95% CI`: percentile bootstrap of the median over measured repeats (at least `MIN_CI_N` of them);
- `range`: min-max of fewer measured repeats (a bootstrap of 2-4 values only returns their extremes);
- `one trial`: a single measurement, no interval;
- `model range`: a simulation's all-low/all-high bound on its machine profile.
A ratio's interval is a 95% CI only when both sides are measured with enough repeats; a ratio with a
simulated side carries the model range and says which sides are simulated. Pure functions.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mmlab.core import stats
from mmlab.sim import memory
from mmlab.study.series import POINT, POST, PRE, REAL, REPLAY, SERIES_ORDER, SIMULATED, Scenario, prepared

CI, RANGE, ONE, MODEL = "95% CI", "range", "one trial", "model range"
MIN_CI_N = 5


@dataclasses.dataclass(frozen=True)
class Interval:
    """A value with its interval and the interval's kind; `n` measured repeats (0 for a model)."""

    value: float
    lo: float
    hi: float
    kind: str
    n: int = 0


def interval(e: stats.Estimate, simulated: bool) -> Interval:
    """The interval an estimate supports: model range, 95% CI, range or one trial (see module doc)."""
    if simulated:
        return Interval(e.value, e.lo, e.hi, MODEL, 0)
    if e.n >= MIN_CI_N:
        return Interval(e.value, e.lo, e.hi, CI, e.n)
    if e.n >= 2:
        return Interval(e.value, min(e.samples), max(e.samples), RANGE, e.n)
    return Interval(e.value, float("nan"), float("nan"), ONE, e.n)


def estimates(rows: pd.DataFrame, scen: Scenario) -> pd.DataFrame:
    """One row per point (vma_bytes, point_bytes) and series: n, median, interval and its kind, and the
    notebook the measured rows come from (`source`)."""
    data = prepared(rows, scen)
    cols = [*POINT, "populated_fraction", "series", "n", "median_s", "lo_s", "hi_s", "kind", "source", "estimate",
            "outcome"]
    out = []
    for (vma, point, series), g in data.groupby([*POINT, "series"], sort=True):
        e = stats.estimate(g, "value_s")
        outcome = model_outcome(g)
        if not e.n and not outcome:
            continue
        iv = interval(e, series in SIMULATED)
        source = ", ".join(sorted(g["source"].dropna().astype(str).unique())) if "source" in g else ""
        out.append({"vma_bytes": int(vma), "point_bytes": int(point), "populated_fraction": point / vma,
                    "series": series, "n": iv.n, "median_s": iv.value, "lo_s": iv.lo, "hi_s": iv.hi,
                    "kind": iv.kind, "source": source, "estimate": e, "outcome": outcome})
    return pd.DataFrame(out, columns=cols)


def model_outcome(g: pd.DataFrame) -> str:
    """What a simulated point's rows say happened instead of finishing (e.g. `panic`: the machine ran out
    of memory), or "" when it finished and has a time. Measured rows never carry a model outcome."""
    if "outcome" not in g or "method" not in g:
        return ""
    sim = g[g["method"] == "simulated"]["outcome"].dropna().astype(str)
    unfinished = [o for o in sim if o not in memory.FINISHED]
    return unfinished[0] if unfinished and len(unfinished) == len(sim) else ""


def timed(est: pd.DataFrame) -> pd.DataFrame:
    """Estimates that have a time (not an outcome the model gives instead)."""
    return est[est["outcome"].fillna("").eq("")] if "outcome" in est else est


RATIOS = ((PRE, POST, "before/after the patch"),
          (REPLAY, REAL, "pre-patch work replayed / this kernel measured"),
          (REAL, POST, "this kernel measured / post-patch simulated"))


def ratio_interval(a: stats.Estimate, b: stats.Estimate, a_sim: bool, b_sim: bool) -> tuple[float, float, float, str]:
    """a/b, its interval and the interval's kind: a bootstrap 95% CI when both sides are measured
    with enough repeats, the ratio of their ranges when fewer, the model range when a side is simulated."""
    r, lo, hi = stats.ratio(a, b)
    if a_sim or b_sim:
        return r, lo, hi, MODEL
    if min(a.n, b.n) >= MIN_CI_N:
        return r, lo, hi, CI
    if min(a.n, b.n) >= 2:
        return r, min(a.samples) / max(b.samples), max(a.samples) / min(b.samples), RANGE
    return r, float("nan"), float("nan"), ONE


def simulated_sides(num: str, den: str) -> str:
    """Which sides of a ratio are simulated, in words."""
    s = (num in SIMULATED, den in SIMULATED)
    return {(True, True): "both sides simulated", (True, False): "numerator simulated",
            (False, True): "denominator simulated", (False, False): "both sides measured"}[s]


def ratios(est: pd.DataFrame, pairs: Sequence[tuple[str, str, str]] = RATIOS) -> pd.DataFrame:
    """Per point and pair of series: their ratio, its interval, the interval's kind, which sides are
    simulated, and whether the interval lies wholly on one side of 1."""
    cols = [*POINT, "populated_fraction", "num", "den", "what", "ratio", "lo", "hi", "kind", "n", "sides", "significant"]
    out = []
    for (vma, point), g in timed(est).groupby(POINT, sort=True):
        by = {s: e for s, e in zip(g["series"], g["estimate"])}
        for num, den, what in pairs:
            if num in by and den in by:
                r, lo, hi, kind = ratio_interval(by[num], by[den], num in SIMULATED, den in SIMULATED)
                n = f"{by[num].n} and {by[den].n}" if kind in (CI, RANGE) else ""
                out.append({"vma_bytes": int(vma), "point_bytes": int(point), "populated_fraction": point / vma,
                            "num": num, "den": den, "what": what, "ratio": r, "lo": lo, "hi": hi, "kind": kind,
                            "n": n, "sides": simulated_sides(num, den), "significant": stats.significant(lo, hi)})
    return pd.DataFrame(out, columns=cols)


def quoted_point(est: pd.DataFrame, fraction: float, needs: Sequence[str]) -> tuple[int, int] | None:
    """The point a sentence quotes: among points where all `needs` series exist, the one nearest
    `fraction` populated (then the one with most series, then the largest VMA)."""
    best, key = None, None
    for (vma, point), g in timed(est).groupby(POINT, sort=True):
        have = set(g["series"])
        if not set(needs) <= have:
            continue
        k = (round(abs(point / vma - fraction), 3), -len(have), -vma)
        if key is None or k < key:
            best, key = (int(vma), int(point)), k
    return best


def oom_outcomes(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per series: trials, bystanders killed of bystanders present, victims killed, the
    victim's kill-to-reap time (median, interval and its kind) and, for models, the outcome."""
    cols = ["series", "trials", "n", "bystanders", "bystanders_killed", "victims_killed", "victim_kill_to_reap_s",
            "lo_s", "hi_s", "kind", "outcome", "outcome_s", "source", "estimate"]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    out = []
    data = stats.measured_rows(rows)
    for series, g in data.groupby("series", sort=False):
        trial_cols = [c for c in ("run_id", "repeat", "kernel") if c in g and g[c].notna().any()]
        trials = g.groupby(trial_cols, dropna=False).ngroups if trial_cols else 1
        by = g[g["role"] == "bystander"]
        vic = g[g["role"] == "victim"]
        killed = ~by["survived"].astype(bool)
        e = (stats.estimate(vic.assign(v=vic["kill_to_reap_s"].astype(float)), "v") if "kill_to_reap_s" in vic
             else stats.Estimate(np.nan, np.nan, np.nan, 0))
        iv = interval(e, series in SIMULATED)
        outcome = ", ".join(sorted(set(g["outcome"].dropna().astype(str)))) if "outcome" in g else ""
        source = ", ".join(sorted(g["source"].dropna().astype(str).unique())) if "source" in g else ""
        out.append({"series": series, "trials": trials, "n": iv.n, "bystanders": len(by), "bystanders_killed": int(killed.sum()),
                    "victims_killed": int((~vic["survived"].astype(bool)).sum()),
                    "victim_kill_to_reap_s": iv.value, "lo_s": iv.lo, "hi_s": iv.hi, "kind": iv.kind,
                    "outcome": outcome, "outcome_s": float(g["outcome_s"].median()) if "outcome_s" in g else np.nan,
                    "source": source, "estimate": e})
    df = pd.DataFrame(out, columns=cols)
    df["order"] = df["series"].map({s: i for i, s in enumerate(SERIES_ORDER)})
    return df.sort_values("order").drop(columns="order").reset_index(drop=True)
