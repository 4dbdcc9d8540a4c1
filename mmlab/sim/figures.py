"""Figures for notebooks 06 and 07: seaborn on the tidy simulation and validation tables."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mmlab.core.figure import pyplot
from mmlab.sim.eras import ERA_NAMES

ERA_ORDER = list(ERA_NAMES)


def exit_cost(df: pd.DataFrame, x: str, title: str, log_x: bool = True):
    """Simulated kill-to-reap seconds against `x`, one line per era, the profile's interval as a band."""
    import seaborn as sns

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    d = df.copy()
    xs = d[x] / (1 << 30) if x.endswith("_bytes") else d[x]
    d["_x"] = xs
    hue_order = [e for e in ERA_ORDER if e in set(d.era)]
    sns.lineplot(data=d, x="_x", y="exit_s", hue="era", hue_order=hue_order, marker="o", ax=ax)
    palette = dict(zip(hue_order, sns.color_palette(n_colors=len(hue_order))))
    for era, g in d.groupby("era"):
        g = g.sort_values("_x")
        ax.fill_between(g["_x"], g["exit_s_lo"], g["exit_s_hi"], alpha=0.2, color=palette[era])
    _mark_outcomes(ax, d, "_x", palette)
    if log_x:
        ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    words = {"vma_bytes": "VMA size", "populated_fraction": "populated fraction of the VMA"}.get(x, x.replace("_", " "))
    ax.set_xlabel(f"{words.removesuffix(' bytes')} (GiB{', log scale' if log_x else ''})" if x.endswith("_bytes") else words)
    ax.set_ylabel("simulated SIGKILL to reap (s, log scale)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    return fig


def _mark_outcomes(ax, d: pd.DataFrame, x: str, palette: dict) -> None:
    """Points with no time (the machine ran out of memory) as crosses along the top, with what happened."""
    from mmlab.sim.memory import FINISHED, label

    if "outcome" not in d:
        return
    gone = d[~d["outcome"].isin(FINISHED)]
    for i, (era, g) in enumerate(gone.groupby("era", sort=False)):
        y = 0.97 - 0.07 * i
        ax.scatter(g[x], [y] * len(g), marker="X", s=45, color=palette.get(era, "k"), transform=ax.get_xaxis_transform(),
                   clip_on=False, zorder=4)
        first = g.sort_values(x).iloc[0]
        ax.annotate(f"{era}: {label(first['outcome'])}", (first[x], y - 0.035), xycoords=ax.get_xaxis_transform(),
                    fontsize=7, color=palette.get(era, "k"), ha="right", va="top")


def oom_timelines(tl: pd.DataFrame, outcome_table: pd.DataFrame | None = None):
    """Free memory and the victim's RSS over time, one panel per kernel, OOM kills marked and labelled."""
    import textwrap

    plt = pyplot()
    kernels = list(dict.fromkeys(tl["kernel"]))
    ncol = min(2, len(kernels))
    nrow = -(-len(kernels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 3.9 * nrow), sharey=True, squeeze=False)
    for ax in axes.flat[len(kernels):]:
        ax.set_visible(False)
    for ax, k in zip(axes.flat, kernels):
        g = tl[tl.kernel == k]
        ax.step(g.time_s, g.free_bytes / (1 << 30), where="post", label="free memory")
        ax.step(g.time_s, g.victim_rss_bytes / (1 << 30), where="post", label="victim RSS", alpha=0.7)
        top = max(g.free_bytes.max(), g.victim_rss_bytes.max()) / (1 << 30)
        kills = []
        for i, (_, e) in enumerate(g[g.event == "oom_kill"].iterrows(), 1):
            # numbered marks at the top, named in a line under the panel: labels never overlap
            ax.axvline(e.time_s, color="red", alpha=0.5, lw=1)
            ax.annotate(str(i), (e.time_s, top), xytext=(0, 2 + 8 * ((i - 1) % 2)), textcoords="offset points",
                        fontsize=7, color="red", ha="center", va="bottom")
            kills.append(f"{i}: {e.role} at {e.time_s:.2g} s")
        if kills:
            ax.text(0, -0.2, textwrap.fill("OOM kills: " + "; ".join(kills), 70), transform=ax.transAxes, fontsize=7,
                    color="red", va="top")
        outcome = g[g.event == "outcome"].detail.iloc[-1] if (g.event == "outcome").any() else "?"
        ax.set_title(f"kernel {k} (era {g.era.iloc[0]}): {outcome}", fontsize=10)
        ax.set_xlabel("time since mlock() (s)")
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel("memory (GiB)")
    axes[0][0].legend(fontsize=8, loc="upper right")
    fig.suptitle("oom-kill, simulated: memory over time; red lines = OOM kills", y=1.02)
    fig.tight_layout()
    return fig


def exit_by_era(df: pd.DataFrame, title: str):
    """Bar per era of simulated kill-to-reap seconds with the profile's interval (the explorer's figure)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    from mmlab.sim.memory import label

    d = df.set_index("era").reindex([e for e in ERA_ORDER if e in set(df.era)])
    err = np.vstack([d.exit_s - d.exit_s_lo, d.exit_s_hi - d.exit_s])
    ax.bar(d.index, d.exit_s.fillna(0), yerr=np.nan_to_num(err), capsize=4,
           color=["#c44e52", "#4c72b0", "#55a868", "#8172b2"][: len(d)])
    for i, (_era, r) in enumerate(d.iterrows()):
        if np.isfinite(r.exit_s):
            ax.annotate(f"{r.exit_s:.3g} s\n{int(r.exit_pages_faulted)} pages faulted", (i, r.exit_s), ha="center",
                        va="bottom", fontsize=8)
        else:  # no bar: the exit never finished on this machine's memory
            ax.annotate(f"no time:\n{label(r.outcome)}\n{r.exit_bytes_short / (1 << 30):.1f} GiB short", (i, 0.5),
                        xycoords=ax.get_xaxis_transform(), ha="center", va="center", fontsize=8, color="#b42318")
    ax.set_yscale("log")
    ax.set_ylabel("simulated SIGKILL to reap (s, log scale)")
    ax.set_title(title, fontsize=10)
    return fig


def ratios(table: pd.DataFrame, target: tuple[float, float] = (0.9, 1.1)):
    """sim/real ratio per sweep point with its interval; the target band shaded."""
    plt = pyplot()
    comps = list(dict.fromkeys(table.comparison))
    fig, axes = plt.subplots(len(comps), 1, figsize=(8, 2.8 * len(comps)), squeeze=False)
    for ax, c in zip(axes[:, 0], comps):
        g = table[table.comparison == c].reset_index(drop=True)
        extra = next((k for k in ("variant", "setting", "fault_method") if k in g and g[k].notna().any()), None)
        labels = [f"{v / (1 << 20):.0f}MiB VMA\n{p / (1 << 20):.0f}MiB pop." + (f"\n{e}" if extra else "")
                  for v, p, e in zip(g.vma_bytes, g.populated_bytes, g[extra] if extra else [""] * len(g))]
        ax.axhspan(*target, color="green", alpha=0.12, label=f"target {target[0]}x-{target[1]}x")
        ax.errorbar(range(len(g)), g.ratio, yerr=[(g.ratio - g.ratio_lo).clip(lower=0), (g.ratio_hi - g.ratio).clip(lower=0)],
                    fmt="o", capsize=4)
        ax.axhline(1, color="grey", lw=1)
        ax.set_xticks(range(len(g)), labels, fontsize=7, rotation=40, ha="right")
        ax.set_ylabel("simulated / measured")
        ax.set_title(c, fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def ratios_by_run(by_run: pd.DataFrame, target: tuple[float, float] = (0.9, 1.1)):
    """Each resolved point's sim/real ratio in every stored run (one dot per run), the target band shaded:
    whether a point is reliably within or only in some collections."""
    plt = pyplot()
    r = by_run[by_run["resolved"]]
    points = list(dict.fromkeys(r["point"]))
    runs = sorted(r["run_id"].unique())
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(points) + 1.4))
    ax.axvspan(*target, color="green", alpha=0.12, label=f"target {target[0]}x-{target[1]}x")
    ax.axvline(1, color="grey", lw=1)
    y = {p: i for i, p in enumerate(points)}
    offsets = np.linspace(-0.25, 0.25, len(runs)) if len(runs) > 1 else [0.0]
    for off, (k, run) in zip(offsets, enumerate(runs)):
        g = r[r["run_id"] == run]
        ax.plot(g["ratio"], [y[p] + off for p in g["point"]], "o", ms=4, alpha=0.8,
                label="one run" if k == 0 else None, color="C0")
    ax.set_yticks(range(len(points)), points, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("simulated / measured (paired), one dot per stored run")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def wakabayashi_bars(w: pd.DataFrame):
    """Published and simulated total times of Wakabayashi's test, before and after his patch (and 2.6.32,
    which he never timed); a simulated run that would have run out of memory is marked, not drawn."""
    from mmlab.sim.memory import label

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    x = np.arange(len(w))
    ax.bar(x - 0.2, w.published_total_s.fillna(0), 0.4, label="published (2009)")
    ok = w.sim_total_s.notna()
    ax.bar(x[ok] + 0.2, w.sim_total_s[ok], 0.4, capsize=4, label="simulated, desktop-2009 profile",
           yerr=[(w.sim_total_s - w.sim_total_s_lo)[ok], (w.sim_total_s_hi - w.sim_total_s)[ok]])
    import textwrap

    ax.set_xticks(x, [f"{p}\n" + textwrap.fill(k, 24) for p, k in zip(w.patch, w.kernel)], fontsize=7)
    top = np.nanmax([w.published_total_s.max(), w.sim_total_s_hi.max(), 1.0])
    for i, r in w.reset_index(drop=True).iterrows():
        if not np.isfinite(r.sim_total_s):
            ax.annotate(label(r.outcome), (i + 0.2, top * 0.05), ha="center", va="bottom", rotation=90, fontsize=8,
                        color="#b42318")
        elif np.isfinite(r.published_total_s):
            ax.annotate(f"sim/pub {r.ratio_total:.2f}x", (i + 0.2, r.sim_total_s), ha="center", va="bottom", fontsize=8)
        else:
            ax.annotate("not timed in 2009", (i - 0.2, 0), ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_ylabel("total time of run.sh (s)")
    ax.set_title("Wakabayashi's test: 2,000,000,000 bytes, SIGKILL after 2 s", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
