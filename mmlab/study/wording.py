"""Formatting numbers for readers: times and sizes with units, intervals named for their kind, and the
summary's tables; `readable()` turns any tidy statistics table into one a reader can scan. Pure.
"""
from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from mmlab.core.units import format_bytes
from mmlab.sim import memory
from mmlab.study.estimates import CI, MIN_CI_N, MODEL, ONE, RANGE
from mmlab.study.series import POINT, SERIES_ORDER, evidence_kind


def fmt_s(v: float) -> str:
    """Seconds with a unit people read: 41 ms, 2.3 s, 180 µs, 950 ns."""
    if not np.isfinite(v):
        return "n/a"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1:
        return f"{v:.3g} s"
    if a >= 1e-3:
        return f"{v * 1e3:.3g} ms"
    if a >= 1e-6:
        return f"{v * 1e6:.3g} µs"
    return f"{v * 1e9:.3g} ns"


def fmt_x(v: float) -> str:
    """A ratio as people say it: 41x, 1.3x, 0.52x."""
    if not np.isfinite(v):
        return "n/a"
    return f"{v:.0f}x" if v >= 10 else f"{v:.2g}x"


def fmt_pct(f: float) -> str:
    return f"{f:.0%}" if f >= 0.01 or f == 0 else f"{f:.2%}"


def fmt_size(n: float) -> str:
    """Bytes as `256 MiB`."""
    return re.sub(r"(\d)([KMGT]?i?B)$", r"\1 \2", format_bytes(n)) if np.isfinite(n) else "n/a"


def fmt_interval(lo: float, hi: float, f: Callable[[float], str]) -> str:
    return f"{f(lo)}–{f(hi)}" if np.isfinite(lo) and np.isfinite(hi) else "no interval"


def interval_text(kind: str, lo: float, hi: float, n: int | str, f: Callable[[float], str] = fmt_s,
                  profile: str = "") -> str:
    """An interval in words, named for what it is: `95% CI 22–27 ms, n = 7`, `range 20–31 ms, n = 3`,
    `one trial`, `model range 60–240 ms (reference profile low–high)`."""
    if kind == MODEL:
        who = f"{profile} profile " if profile else "profile "
        return f"model range {fmt_interval(lo, hi, f)} ({who}low–high)"
    if kind == CI:
        return f"95% CI {fmt_interval(lo, hi, f)}, bootstrap, n = {n}"
    if kind == RANGE:
        return f"range {fmt_interval(lo, hi, f)}, n = {n}"
    return "one trial"


def where(vma: int, point: int) -> str:
    """`a 256 MiB VMA 25% populated`."""
    return f"a {fmt_size(vma)} VMA {fmt_pct(point / vma)} populated"


def table(est: pd.DataFrame, labels: dict[str, str], profile: str) -> pd.DataFrame:
    """The scenario's table, long: a row per point and series with its time, the interval named for
    its kind, and where the measured rows are shown (their notebook)."""
    rows = []
    order = {s: i for i, s in enumerate(SERIES_ORDER)}
    for _, e in est.sort_values(by=[*POINT, "series"], key=lambda c: c.map(order) if c.name == "series" else c).iterrows():
        rows.append({"VMA": fmt_size(e["vma_bytes"]),
                     "populated": f"{fmt_size(e['point_bytes'])} ({fmt_pct(e['populated_fraction'])})",
                     "series": labels[e["series"]], "evidence": evidence_kind(e["series"], profile),
                     "time (median)": f"no time: {memory.label(e['outcome'])}" if e.get("outcome") else fmt_s(e["median_s"]),
                     "interval": "" if e.get("outcome") else interval_text(e["kind"], e["lo_s"], e["hi_s"], e["n"], profile=profile),
                     "shown in": e["source"] or "this page (simulated)"})
    return pd.DataFrame(rows, columns=["VMA", "populated", "series", "evidence", "time (median)", "interval", "shown in"])


def ratio_table(rat: pd.DataFrame, profile: str) -> pd.DataFrame:
    """The scenario's ratios: a row per point and pair, the interval named for its kind and which
    sides are simulated."""
    rows = [{"VMA": fmt_size(r["vma_bytes"]), "populated": f"{fmt_size(r['point_bytes'])} ({fmt_pct(r['populated_fraction'])})",
             "ratio": r["what"], "value": fmt_x(r["ratio"]),
             "interval": interval_text(r["kind"], r["lo"], r["hi"], r["n"], fmt_x, profile),
             "sides": r["sides"]} for _, r in rat.iterrows()]
    return pd.DataFrame(rows, columns=["VMA", "populated", "ratio", "value", "interval", "sides"])


def oom_table(outcomes: pd.DataFrame, labels: dict[str, str], profile: str) -> pd.DataFrame:
    """The OOM table: per series, trials, bystanders killed, the victim's reap and the model's outcome."""
    rows = []
    for _, r in outcomes.iterrows():
        if not np.isfinite(r["victim_kill_to_reap_s"]):
            reap = "never reaped"
        else:
            reap = f"{fmt_s(r['victim_kill_to_reap_s'])} ({interval_text(r['kind'], r['lo_s'], r['hi_s'], r['n'], profile=profile)})"
        rows.append({"series": labels[r["series"]], "evidence": evidence_kind(r["series"], profile),
                     "trials": r["trials"], "bystanders killed": f"{r['bystanders_killed']} of {r['bystanders']}",
                     "victim kill to reap": reap, "outcome": r["outcome"] or "see bystanders killed",
                     "shown in": r["source"] or "this page (simulated)"})
    return pd.DataFrame(rows)


# --- any statistics table, for readers ---------------------------------------------------------------

_STAT_COLS = {"median", "mean", "sd", "min", "max", "ci_lo", "ci_hi"}


def _unit_of(name: str) -> str:
    name = name.split(" · ")[0]
    if name.endswith("_bytes"):
        return "bytes"
    if name.endswith("_ns_per_page") or name.endswith("_ns"):
        return "ns"
    if name.endswith("_s"):
        return "s"
    if name.endswith("fraction"):
        return "fraction"
    return ""


def fmt_value(v: object, unit: str) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    if unit == "bytes":
        return fmt_size(float(v))
    if unit == "s":
        return fmt_s(float(v))
    if unit == "ns":
        return fmt_s(float(v) * 1e-9)
    if unit == "fraction":
        return fmt_pct(float(v))
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    return str(v)


def words(name: str) -> str:
    """A column name in words with its unit: `kill_to_reap_s` -> `kill to reap`, `vma_bytes` -> `VMA`."""
    name, _, key = name.partition(" · ")
    if key:
        return f"{words(name)} · {key}"
    base = re.sub(r"_(bytes|s|ns_per_page|ns)$", "", name)
    base = {"vma": "VMA", "target_populated": "populated (target)", "target_populated_fraction": "populated (target)"}.get(base, base)
    return base.replace("env.", "").replace("_", " ")


def readable(df: pd.DataFrame, drop_constant: bool = True) -> pd.DataFrame:
    """A statistics or rows table as a reader wants it: sizes in MiB/GiB, times in ms/µs, fractions in
    %, column names in words; no pids, no rows without a value, no column that never changes. A
    `stats.summary` table (metric, n, median, ..., ci_lo, ci_hi) keeps its median and gets one interval
    column named for its kind: a bootstrap 95% CI from 5 repeats up, else the min-max range."""
    d = df.reset_index() if not isinstance(df.index, pd.RangeIndex) else df.copy()
    if isinstance(d.columns, pd.MultiIndex):  # a pivot: (metric, key) -> `metric · key`, unit kept from the metric
        d.columns = [" · ".join(str(x) for x in c if str(x)) if isinstance(c, tuple) else str(c) for c in d.columns]
    d = d[[c for c in d.columns if not re.search(r"(^|_)pid$", str(c))]]
    if "n" in d:
        d = d[d["n"].fillna(0) > 0]
    if "metric" in d and "median" in d:
        units = d["metric"].map(lambda m: _unit_of(str(m)))
        interval = []
        for (_, r), u in zip(d.iterrows(), units):
            if r.get("n", 0) >= MIN_CI_N and np.isfinite(r.get("ci_lo", np.nan)):
                interval.append(f"95% CI {fmt_value(r['ci_lo'], u)}–{fmt_value(r['ci_hi'], u)}")
            elif r.get("n", 0) >= 2:
                interval.append(f"range {fmt_value(r['min'], u)}–{fmt_value(r['max'], u)}")
            else:
                interval.append(ONE)
        med = [fmt_value(v, u) for v, u in zip(d["median"], units)]
        d = d.drop(columns=[c for c in _STAT_COLS if c in d]).assign(median=med, interval=interval)
        d["metric"] = d["metric"].map(lambda m: words(str(m).split(".")[-1]))
    value_cols = [c for c in d.columns if _unit_of(str(c)) and c not in ("median", "interval")]
    if value_cols:
        d = d.dropna(subset=value_cols, how="all")
    for c in value_cols:
        unit = _unit_of(str(c))
        d[c] = [fmt_value(v, unit) for v in d[c]]
    for c in d.columns:
        if d[c].dtype == float:
            d[c] = d[c].map(lambda v: fmt_value(v, ""))
    if drop_constant and len(d) > 1:
        # a column that never changes says nothing per row, unless it is the configuration (a size)
        keep = [c for i, c in enumerate(d.columns) if i == 0 or d[c].astype(str).nunique() > 1
                or c in ("metric", "n", "median", "interval") or _unit_of(str(c)) in ("bytes", "fraction")]
        d = d[keep]
    return d.rename(columns={c: words(str(c)) for c in d.columns}).reset_index(drop=True)
