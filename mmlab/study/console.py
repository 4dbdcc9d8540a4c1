"""Tables for a terminal: a short line per measured point (median, range, n), units in the header.

Rows stay tidy for machines (`--json`, `--csv`); a person reading `mmlab experiment` wants the points
the experiment measured and what came out of them, not every counter of every child.
"""
from __future__ import annotations

import pandas as pd

from mmlab.core.stats import measured_rows
from mmlab.core.units import format_bytes
from mmlab.study.compare import KEYS, METRICS, keyed, metrics_of

# How a metric column is shown: (suffix, unit in the header, factor from the stored unit)
_UNITS = (("_ns_per_page", "ns/page", 1.0), ("_ns_per_vma_page", "ns/page", 1.0),
          ("_ns_per_populated_page", "ns/page", 1.0), ("_s", "ms", 1e3))
# Besides compare's keys, what tells the points of each experiment apart.
POINT_KEYS = ("setting", "target_populated_bytes", "target_populated_fraction", "bystanders", "lock_bytes", "limit_bytes")


def _unit(metric: str, typical: float = float("nan")) -> tuple[str, str, float]:
    """Name without its unit suffix, the unit shown and the factor from the stored unit; seconds are
    shown in s, ms or µs after the typical (median) value."""
    for suffix, unit, factor in _UNITS:
        if metric.endswith(suffix):
            if unit == "ms" and typical == typical:
                unit, factor = ("s", 1.0) if typical >= 1 else ("ms", 1e3) if typical >= 1e-3 else ("µs", 1e6)
            return metric[: -len(suffix)], unit, factor
    return metric, "", 1.0


def _number(v: float) -> str:
    if pd.isna(v):
        return "-"
    a = abs(v)
    return f"{v:,.0f}" if a >= 100 else f"{v:.3g}"


def _key_text(col: str, v: object) -> str:
    if pd.isna(v):
        return "-"
    if col.endswith("_bytes"):
        return format_bytes(float(v))
    if col == "populated_pct":
        return f"{float(v):g}%"
    if col.endswith("_fraction"):
        return f"{float(v):g}"
    return str(v)


def point_table(rows: pd.DataFrame, experiment: str) -> str:
    """One line per measured point: its keys (sizes as sizes), n, and per metric `median [min-max]`."""
    d = measured_rows(keyed(rows.dropna(axis=1, how="all")))
    metrics = metrics_of(d, experiment)
    typical = {m: float(pd.to_numeric(d[m], errors="coerce").median()) for m in metrics}
    if d.empty or not metrics:
        return f"{experiment}: no measured rows"
    keys = [k for k in (*KEYS, *POINT_KEYS) if k in d and d[k].notna().any() and k != "populated_pct"
            and not (k == "method" and d[k].nunique() == 1)]
    if "populated_pct" in d and "target_populated_bytes" not in keys and "target_populated_fraction" not in keys:
        keys.append("populated_pct")
    head = [k.removesuffix("_bytes") for k in keys] + ["n"]
    for m in metrics:
        name, unit, _ = _unit(m, typical[m])
        head.append(f"{name} ({unit}) median [min-max]" if unit else f"{name} median [min-max]")
    lines = []
    for kv, g in d.groupby(keys, sort=True, dropna=False) if keys else [((), d)]:
        kv = kv if isinstance(kv, tuple) else (kv,)
        cells = [_key_text(k, v) for k, v in zip(keys, kv)] + [str(len(g))]
        for m in metrics:
            _, _, f = _unit(m, typical[m])
            x = pd.to_numeric(g[m], errors="coerce").dropna() * f
            cells.append(f"{_number(x.median())} [{_number(x.min())}-{_number(x.max())}]" if len(x) else "-")
        lines.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i < len(keys) else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    method = ", ".join(sorted(d["method"].astype(str).unique())) if "method" in d else ""
    scaled = ""
    if "size_divisor" in d and (d["size_divisor"] > 1).any():
        scaled = (f"; sizes divided by {int(d['size_divisor'].max())} to fit RLIMIT_MEMLOCK "
                  f"{format_bytes(float(d['memlock_limit_bytes'].max()))} (no CAP_IPC_LOCK)")
    title = f"{experiment} ({method}, warm-ups excluded{scaled})"
    return "\n".join([title, fmt(head), *(fmt(r) for r in lines)])


def tables(rows: pd.DataFrame) -> str:
    """point_table for each experiment in the rows."""
    if rows.empty:
        return "no rows"
    return "\n\n".join(point_table(g, str(exp)) for exp, g in rows.groupby("experiment", sort=False))


__all__ = ["point_table", "tables", "METRICS"]
