"""Statistics on tidy rows, pure functions: per group and metric n, median, mean, sd, 95% bootstrap CI;
the ratio of two groups with its own interval; mmtests compare-kernels style tables.

Medians, not means: the first touch of memory the guest just returned to the host is 2-8x slower
(MEASURING.md), so timings are skewed by occasional cold repeats. Bootstraps use a fixed seed, so a
report rebuilt from the same rows shows the same intervals."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


def bootstrap_ci(values: Sequence[float], stat=np.median, n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat`; deterministic for a given seed. NaN for fewer than 2 values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    samples = rng.choice(x, size=(n_boot, len(x)), replace=True)
    stats = stat(samples, axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def summary(rows: pd.DataFrame, by: Sequence[str], metrics: Sequence[str], include_warmup: bool = False) -> pd.DataFrame:
    """One row per group and metric: n, median, mean, sd, min, max, ci_lo, ci_hi (warm-ups excluded)."""
    data = rows if include_warmup else measured_rows(rows)
    out = []
    for keys, g in data.groupby(list(by), sort=True, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        for m in metrics:
            x = g[m].astype(float).dropna().to_numpy()
            lo, hi = bootstrap_ci(x)
            out.append({**dict(zip(by, keys)), "metric": m, "n": len(x),
                        "median": float(np.median(x)) if len(x) else np.nan,
                        "mean": float(np.mean(x)) if len(x) else np.nan,
                        "sd": float(np.std(x, ddof=1)) if len(x) > 1 else np.nan,
                        "min": float(np.min(x)) if len(x) else np.nan, "max": float(np.max(x)) if len(x) else np.nan,
                        "ci_lo": lo, "ci_hi": hi})
    return pd.DataFrame(out)


# --- comparisons between groups (mmtests compare-kernels style) -------------------------------------------

LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """One group's value of a metric with its 95% interval.

    Measured groups (n >= 2 repeats) carry their samples and a bootstrap interval of the median; a
    simulated group is one row whose model gives the interval (`<metric>_lo`/`_hi` columns)."""

    value: float
    lo: float
    hi: float
    n: int
    samples: tuple[float, ...] = ()

    @property
    def measured(self) -> bool:
        return len(self.samples) >= 2


def measured_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows that are not warm-ups (a missing `warmup`, as in simulated rows, counts as measured)."""
    return rows[~rows["warmup"].eq(True)] if "warmup" in rows else rows


def _finite(values) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


def estimate(rows: pd.DataFrame, metric: str, seed: int = 0) -> Estimate:
    """Median and interval of `metric` over rows (warm-ups excluded): bootstrap over repeats, or the
    model's own `_lo`/`_hi` interval when there is a single simulated row."""
    data = measured_rows(rows)
    x = _finite(data[metric]) if metric in data else np.array([])
    if len(x) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    if len(x) == 1:
        lo_col, hi_col = f"{metric}_lo", f"{metric}_hi"
        if lo_col in data and hi_col in data:
            sel = data[np.isfinite(data[metric].astype(float))]
            return Estimate(float(x[0]), float(sel[lo_col].iloc[0]), float(sel[hi_col].iloc[0]), 1)
        return Estimate(float(x[0]), float("nan"), float("nan"), 1)
    lo, hi = bootstrap_ci(x, seed=seed)
    return Estimate(float(np.median(x)), lo, hi, len(x), tuple(float(v) for v in x))


def bootstrap_ratio_ci(a: Sequence[float], b: Sequence[float], stat=np.median, n_boot: int = 2000,
                       level: float = LEVEL, seed: int = 0) -> tuple[float, float, float]:
    """stat(a)/stat(b) with a percentile bootstrap interval, a and b resampled independently (they
    are separate runs); deterministic for a given seed. NaN interval for fewer than 2 values a side."""
    xa, xb = _finite(a), _finite(b)
    if len(xa) == 0 or len(xb) == 0:
        return (float("nan"),) * 3
    point = float(stat(xa) / stat(xb)) if stat(xb) != 0 else float("nan")
    if len(xa) < 2 or len(xb) < 2:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    num = stat(rng.choice(xa, size=(n_boot, len(xa)), replace=True), axis=1)
    den = stat(rng.choice(xb, size=(n_boot, len(xb)), replace=True), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num / den
    r = r[np.isfinite(r)]
    if len(r) == 0:
        return point, float("nan"), float("nan")
    alpha = (1 - level) / 2
    return point, float(np.quantile(r, alpha)), float(np.quantile(r, 1 - alpha))


def ratio(a: Estimate, b: Estimate, seed: int = 0) -> tuple[float, float, float]:
    """a/b with a 95% interval: bootstrap when both sides are repeats; otherwise the widest ratio the
    two intervals allow (lo = a.lo/b.hi, hi = a.hi/b.lo), so a model interval is never narrowed."""
    if a.measured and b.measured:
        return bootstrap_ratio_ci(a.samples, b.samples, seed=seed)
    point = a.value / b.value if b.value not in (0, 0.0) and np.isfinite(b.value) else float("nan")
    if not all(np.isfinite([a.lo, a.hi, b.lo, b.hi])) or b.lo <= 0 or b.hi <= 0:
        return float(point), float("nan"), float("nan")
    return float(point), float(a.lo / b.hi), float(a.hi / b.lo)


def significant(lo: float, hi: float) -> bool:
    """The ratio differs from 1 at the 95% level: its whole interval lies on one side of 1."""
    return bool(np.isfinite(lo) and np.isfinite(hi) and (lo > 1 or hi < 1))


def marker(lo: float, hi: float) -> str:
    """mmtests-style marker: `*` where the difference is significant, blank otherwise."""
    return "*" if significant(lo, hi) else ""


def metric_name(experiment: str, metric: str) -> str:
    """Metric names in the dotted style of kernel regression reports: `sigkill-during-mlock.kill_to_reap_s`."""
    return f"{experiment}.{metric}"


def compare(rows: pd.DataFrame, group: str, metrics: Sequence[str], keys: Sequence[str] = (),
            baseline: object = None, experiment_col: str = "experiment", seed: int = 0) -> pd.DataFrame:
    """One row per (metric, keys, group): n, median, mean, sd, 95% CI, and the ratio to the baseline
    group (first in order of appearance unless given) with its interval and significance marker.

    Like mmtests' compare-kernels: the first column is the base, each other is read against it."""
    data = measured_rows(rows)
    order = list(dict.fromkeys(data[group].tolist()))
    if baseline is None and order:
        baseline = order[0]
    out = []
    exp_groups = data.groupby(experiment_col, sort=False) if experiment_col in data else [(None, data)]
    for exp, sub in exp_groups:
        present_keys = [k for k in keys if k in sub and sub[k].notna().any()]
        key_groups = sub.groupby(present_keys, sort=True, dropna=False) if present_keys else [((), sub)]
        for kv, g in key_groups:
            kv = kv if isinstance(kv, tuple) else (kv,)
            for m in metrics:
                if m not in g or not g[m].notna().any():
                    continue
                ests = {name: estimate(g[g[group] == name], m, seed=seed) for name in order}
                base = ests.get(baseline)
                for name in order:
                    e = ests[name]
                    if e.n == 0:
                        continue
                    x = _finite(g.loc[g[group] == name, m])
                    r, rlo, rhi = ratio(e, base, seed=seed) if base is not None and base.n else (np.nan,) * 3
                    out.append({"metric": metric_name(exp, m) if exp is not None else m,
                                **dict(zip(present_keys, kv)), group: name, "n": e.n, "median": e.value,
                                "mean": float(np.mean(x)), "sd": float(np.std(x, ddof=1)) if len(x) > 1 else np.nan,
                                "ci_lo": e.lo, "ci_hi": e.hi, "is_base": name == baseline,
                                "ratio": r, "ratio_lo": rlo, "ratio_hi": rhi,
                                "significant": significant(rlo, rhi) if name != baseline else False,
                                "marker": marker(rlo, rhi) if name != baseline else ""})
    return pd.DataFrame(out)


def _num(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.4g}"


def format_cell(median: float, ratio_: float, mark: str, is_base: bool) -> str:
    """`0.0456 * +270.7%*` as in mmtests: value, relative change to the base, `*` when significant."""
    if is_base:
        return f"{_num(median)} (  0.00%)"
    pct = (ratio_ - 1) * 100 if np.isfinite(ratio_) else float("nan")
    change = "    nan" if not np.isfinite(pct) else f"{pct:+7.2f}%"
    return f"{_num(median)} {mark or ' '}{change}{mark or ' '}"


def compare_wide(table: pd.DataFrame, group: str, keys: Sequence[str] = (), order: Sequence[object] | None = None) -> pd.DataFrame:
    """The compare() table as mmtests lays it out: a row per metric (and key values), a column per
    group (in `order`, the base first), cells `median (change%)` with `*` around significant changes,
    then each group's CI. A point the base lacks shows `nan` changes."""
    if table.empty:
        return pd.DataFrame()
    present = list(dict.fromkeys(table[group].tolist()))
    order = [o for o in order if o in present] if order is not None else present
    keys = [k for k in keys if k in table]
    rows = []
    for kv, g in table.groupby(["metric", *keys], sort=False, dropna=False):
        kv = kv if isinstance(kv, tuple) else (kv,)
        head = dict(zip(["metric", *keys], kv))
        med, ci = {**head, "stat": "median"}, {**head, "stat": "ci95"}
        for name in order:
            r = g[g[group] == name]
            if r.empty:
                med[name] = ci[name] = ""
                continue
            r = r.iloc[0]
            med[name] = format_cell(r["median"], r["ratio"], r["marker"], bool(r["is_base"]))
            ci[name] = f"{_num(r['ci_lo'])}-{_num(r['ci_hi'])}"
        rows += [med, ci]
    return pd.DataFrame(rows).set_index(["metric", *keys, "stat"])
