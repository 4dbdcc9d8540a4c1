"""The summary's figures: one per claim of the 2009 thread, and the per-scenario panels of the summary
page. Models are dashed with their model range as a band; measured series are solid with every
repeat a point. Axes are labelled in words with units; times and sizes span decades, so log scales.
"""
from __future__ import annotations

import base64
import html
import io
import re
import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mmlab.sim import memory
from mmlab.study.estimates import quoted_point
from mmlab.study.series import COLORS, POST, PRE, REAL, REPLAY, SERIES_ORDER, SIMULATED, Scenario
from mmlab.study.wording import fmt_size

MiB = 1 << 20


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _seconds_axis(ax) -> None:
    """A log time axis labelled in ms/µs/s rather than powers of ten of seconds."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from mmlab.study.wording import fmt_s

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=8))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_s(v)))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _label_short_log_axis(ax) -> None:
    """Times spanning less than a decade and a half need no log axis: linear from zero, labelled in
    ms/µs/s."""
    from matplotlib.ticker import AutoLocator, FuncFormatter

    from mmlab.study.wording import fmt_s

    lo, hi = ax.get_ylim()
    if lo > 0 and hi / lo < 30:
        ax.set_yscale("linear")
        ax.set_ylim(0, hi * 1.05)
        ax.yaxis.set_major_locator(AutoLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_s(v)))
        ax.set_ylabel(ax.get_ylabel().replace(" (log scale)", ""))


def _size_axis(ax, axis: str = "x") -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    getattr(ax, f"set_{axis}scale")("log", base=2)
    a = ax.xaxis if axis == "x" else ax.yaxis
    a.set_major_locator(LogLocator(base=4))
    a.set_major_formatter(FuncFormatter(lambda v, _: fmt_size(v * MiB)))
    a.set_minor_formatter(NullFormatter())


def _legend_below(fig, axes, ncol: int = 2) -> None:
    handles, names = [], []
    for ax in np.atleast_1d(axes):
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                handles.append(h)
                names.append(n)
    fig.legend(handles, names, fontsize=8, loc="upper center", ncol=ncol, frameon=False,
               bbox_to_anchor=(0.5, 0.0))


def exit_vs_vma(est: pd.DataFrame, labels: dict[str, str]):
    """Claim 1: exit time against VMA size, one line per series and populated size. Before the patch
    (simulated, replayed) the time grows with the VMA; after it (simulated, measured) it follows the
    populated pages, so lines of one populated size stay flat across VMA sizes."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    if est.empty:
        ax.text(0.5, 0.5, "no rows", ha="center", va="center", transform=ax.transAxes)
        return fig
    markers = dict(zip(sorted(est["point_bytes"].unique()), "osD^v<>"))
    for s in SERIES_ORDER:
        e = est[est["series"] == s]
        for point, g in e.groupby("point_bytes"):
            g = g.sort_values("vma_bytes")
            x = g["vma_bytes"] / MiB
            ax.plot(x, g["median_s"], color=COLORS[s], ls="--" if s in SIMULATED else "-", marker=markers[point], ms=5,
                    label=labels[s])
            ok = (np.isfinite(g["lo_s"]) & np.isfinite(g["hi_s"])).to_numpy()
            if ok.any() and len(g) > 1:
                ax.fill_between(x[ok], g["lo_s"][ok], g["hi_s"][ok], color=COLORS[s], alpha=0.15, lw=0)
    for point, m in markers.items():
        ax.plot([], [], ls="", marker=m, color="0.3", label=f"{fmt_size(point)} populated")
    _size_axis(ax)
    _seconds_axis(ax)
    ax.set_xlabel("VMA size (log scale)")
    ax.set_ylabel("SIGKILL to reap (log scale)")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title("Exit after SIGKILL during mlock(): dashed simulated, solid measured or replayed here", fontsize=9)
    _legend_below(fig, ax)
    fig.tight_layout()
    return fig


def figure(data: pd.DataFrame, est: pd.DataFrame, scen: Scenario, labels: dict[str, str], vmas: Sequence[int] | None = None):
    """Time against populated size, one panel per VMA size (`vmas`, else the largest two), log scales:
    models dashed with their model range as a band; measured series as the median line, their interval
    as a band and every repeat as a point."""
    plt = _plt()
    vmas = list(vmas) if vmas else (sorted(est["vma_bytes"].unique())[-2:] if not est.empty else [])
    n = max(1, len(vmas))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 0.8, 3.6), squeeze=False, sharey=True, sharex=True)
    if est.empty:
        axes[0, 0].text(0.5, 0.5, "no rows", ha="center", va="center", transform=axes[0, 0].transAxes)
        return fig
    zero = (est["point_bytes"] == 0).any()
    for ax, vma in zip(axes[0], vmas):
        for s in SERIES_ORDER:
            e = est[(est["series"] == s) & (est["vma_bytes"] == vma)].sort_values("point_bytes")
            if e.empty:
                continue
            x = e["point_bytes"] / MiB
            measured = s not in SIMULATED
            ax.plot(x, e["median_s"], color=COLORS[s], ls="-" if measured else "--", marker="o" if measured else "s",
                    ms=5, label=labels[s])
            ok = (np.isfinite(e["lo_s"]) & np.isfinite(e["hi_s"])).to_numpy()
            if ok.any():
                ax.fill_between(x[ok], e["lo_s"][ok], e["hi_s"][ok], color=COLORS[s], alpha=0.18, lw=0)
            if measured:
                pts = data[(data["series"] == s) & (data["vma_bytes"] == vma)]
                ax.scatter(pts["point_bytes"] / MiB, pts["value_s"], color=COLORS[s], s=12, alpha=0.6, zorder=3)
            gone = e[e["outcome"].fillna("").ne("")] if "outcome" in e else e.iloc[0:0]
            for _, r in gone.iterrows():  # no time to draw: mark the point at the top and say what happened
                xg = r["point_bytes"] / MiB
                ax.scatter([xg], [0.96], marker="X", s=50, color=COLORS[s], transform=ax.get_xaxis_transform(),
                           zorder=4, clip_on=False)
                ax.annotate(memory.label(r["outcome"]), (xg, 0.93), xycoords=ax.get_xaxis_transform(), fontsize=7,
                            color=COLORS[s], ha="center", va="top")
        _seconds_axis(ax)
        if zero:
            from matplotlib.ticker import FuncFormatter

            ax.set_xscale("symlog", linthresh=1)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_xlabel("populated when stopped (MiB, log above 1)")
        else:
            _size_axis(ax)
            ax.set_xlabel("populated when stopped (log scale)")
        ax.set_title(f"{fmt_size(vma)} VMA", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    shown = est[est["vma_bytes"].isin(vmas)]["point_bytes"] / MiB
    if len(shown):  # every panel spans every point shown (shared, set once all are drawn)
        top = float(shown.max()) * 1.4
        axes[0, 0].set_xlim(-0.5 if zero else float(shown[shown > 0].min()) / 1.4, top)
    axes[0, 0].set_ylabel(f"{scen.title.split('(')[0].strip()} time (log scale)" if scen.name != "sigkill-during-mlock"
                          else "SIGKILL to reap (log scale)")
    _legend_below(fig, axes[0])
    fig.suptitle(f"{scen.title}: dashed simulated (band: model range), solid measured (band: interval, dots: repeats)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def claim_vmas(est: pd.DataFrame, fraction: float) -> list[int]:
    """The VMA sizes claim 2's figure shows: the replay's (the point the claim quotes) and the one
    this kernel was measured at, so both appear beside the models at their own size."""
    pts = [quoted_point(est, fraction, need) for need in ((REPLAY, POST), (REAL, POST))]
    vmas = sorted({p[0] for p in pts if p is not None})
    return vmas or focus_vmas(est, fraction)[:1]


def focus_vmas(est: pd.DataFrame, fraction: float) -> list[int]:
    """The VMA sizes a figure shows: the one the sentence quotes and the largest (where pre-patch
    exit cost grows with the VMA and today's does not)."""
    if est.empty:
        return []
    pt = quoted_point(est, fraction, (PRE, POST, REAL)) or quoted_point(est, fraction, (PRE, POST))
    return sorted({int(pt[0]) if pt else int(est["vma_bytes"].min()), int(est["vma_bytes"].max())})


def oom_figure(data: pd.DataFrame, outcomes: pd.DataFrame, labels: dict[str, str]):
    """Left: share of bystanders killed per series (each trial a dot). Right: the victim's kill-to-reap
    time, every trial a dot, the median a bar; a model's unreaped victim is written in."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(7.6, 3.6))
    if outcomes.empty:
        a1.text(0.5, 0.5, "no rows", ha="center", va="center", transform=a1.transAxes)
        return fig
    names = list(outcomes["series"])
    ticks = [textwrap.fill(labels[s], 14) for s in names]
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
            a2.text(i, 0.5, "never reaped", rotation=90, ha="center", va="center", transform=a2.get_xaxis_transform(), fontsize=8)
    for ax in (a1, a2):
        ax.set_xticks(range(len(names)), ticks, fontsize=7)
    a1.set_ylabel("bystanders killed (%)")
    a1.set_ylim(0, 105)
    a2.set_ylabel("victim: kill to reap (log scale)")
    _seconds_axis(a2)
    _label_short_log_axis(a2)
    fig.suptitle("OOM kill with bystanders", fontsize=10)
    fig.tight_layout()
    return fig


def png_base64(fig, dpi: int = 96) -> str:
    """A figure as base64 PNG (closed afterwards): embedded so the page works offline."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def figure_html(fig, caption: str = "", alt: str = "figure") -> str:
    """A figure embedded as PNG with its caption, never wider than the text."""
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (f'<figure><img alt="{html.escape(alt)}" style="max-width:100%;height:auto" '
            f'src="data:image/png;base64,{png_base64(fig)}">{cap}</figure>')


def page_links(cell: object) -> str:
    """A "shown in" cell as HTML: each notebook name (`05-prepatch-replay`) a link to its published
    page, anything else (`this page (simulated)`) escaped text."""
    parts = [p.strip() for p in str(cell).split(",")]
    if not all(re.fullmatch(r"\d\d-[a-z0-9-]+", p) for p in parts):
        return html.escape(str(cell))
    return ", ".join(f'<a href="{p}.html">{p}</a>' for p in parts)


def table_html(tab: pd.DataFrame) -> str:
    """A table that scrolls inside its box on a narrow window instead of widening the page; its
    "shown in" column links the detailed pages."""
    cells = tab.apply(lambda col: col.map(page_links) if col.name == "shown in" else col.map(lambda v: html.escape(str(v))))
    return f'<div class="mmlab-scroll" style="max-width:100%;overflow-x:auto">{cells.to_html(index=False, escape=False, border=0)}</div>'
