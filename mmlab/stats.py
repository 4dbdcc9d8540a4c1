"""Statistics on tidy rows, pure functions: per group and metric n, median, mean, sd, 95% bootstrap CI."""
from __future__ import annotations

from typing import Sequence

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
    data = rows if include_warmup or "warmup" not in rows else rows[~rows["warmup"].astype(bool)]
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
