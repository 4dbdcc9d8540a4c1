"""Figures shared by notebooks: seaborn on tidy rows, spread across repeats always shown."""
from __future__ import annotations

import pandas as pd

from mmlab.core.figure import pyplot
from mmlab.core.stats import measured_rows


def ns_per_page_vs_size(rows: pd.DataFrame, title: str = "mlock-throughput (real)"):
    """ns per 4 KiB page of mlock and munlock against region size; median line, 95% interval band and
    every repeat as a point (warm-up repetitions excluded)."""
    import seaborn as sns

    pyplot()  # seaborn draws through pyplot; this sets the house defaults
    data = measured_rows(rows)
    long = data.melt(id_vars=["size_bytes", "mapping", "repeat"],
                     value_vars=["mlock_ns_per_page", "munlock_ns_per_page"], var_name="call", value_name="ns_per_page")
    long["call"] = long["call"].str.removesuffix("_ns_per_page")
    long["size_MiB"] = long["size_bytes"] / (1 << 20)
    g = sns.relplot(data=long, x="size_MiB", y="ns_per_page", hue="mapping", col="call", kind="line",
                    estimator="median", errorbar=("pi", 100), marker="o", facet_kws={"sharey": False},
                    height=3.6, aspect=1.2)
    for ax, (_call, sub) in zip(g.axes.flat, long.groupby("call", sort=True)):
        sns.stripplot(data=sub, x="size_MiB", y="ns_per_page", hue="mapping", native_scale=True, ax=ax,
                      legend=False, alpha=0.5, size=3, jitter=False)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")  # an MLOCK_ONFAULT range costs ~1 ns a page, a populated one microseconds
        ax.set_xlabel("region size (MiB, log scale)")
        ax.set_ylabel("time per 4 KiB page (ns, log scale)")
    g.figure.suptitle(f"{title}: median, min-max band over repeats, each repeat a point", y=1.04)
    return g


# --- the 2009-scenario experiments -------------------------------------------------------------------
def _size_label(n: float) -> str:
    from mmlab.core.units import format_bytes

    return format_bytes(n)


def kill_to_reap_vs_populated(rows: pd.DataFrame, title: str = "sigkill-during-mlock (real)"):
    """Seconds from SIGKILL to exit against the bytes mlock had populated, one line per VMA size:
    median line, min-max band over repeats, every repeat a point. Overlapping lines mean the exit
    follows the populated pages, not the VMA."""
    import seaborn as sns

    plt = pyplot()
    d = measured_rows(rows).copy()
    d["populated_MiB"] = d["populated_bytes"] / (1 << 20)
    d["target_MiB"] = d["target_populated_bytes"] / (1 << 20)
    d["VMA"] = d["vma_bytes"].map(_size_label)
    order = [_size_label(v) for v in sorted(d["vma_bytes"].unique())]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    sns.lineplot(data=d, x="target_MiB", y="kill_to_reap_s", hue="VMA", hue_order=order, estimator="median",
                 errorbar=("pi", 100), marker="o", ax=ax)
    sns.scatterplot(data=d, x="populated_MiB", y="kill_to_reap_s", hue="VMA", hue_order=order, ax=ax,
                    legend=False, alpha=0.5, s=18)
    ax.set_xlabel("populated when killed (MiB)")
    ax.set_ylabel("SIGKILL to reap (s)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{title}: median, min-max band, each repeat a point", fontsize=10)
    return fig


def munlock_vs_fraction(rows: pd.DataFrame, title: str = "munlock-partial (real)"):
    """munlock() seconds against the populated fraction, per VMA size and variant; median line,
    min-max band over repeats, each repeat a point."""
    import seaborn as sns

    d = measured_rows(rows).copy()
    d["VMA"] = d["vma_bytes"].map(_size_label)
    d["munlock_ms"] = d["munlock_s"] * 1e3
    order = [_size_label(v) for v in sorted(d["vma_bytes"].unique())]
    g = sns.relplot(data=d, x="populated_fraction", y="munlock_ms", hue="VMA", hue_order=order, col="variant",
                    kind="line", estimator="median", errorbar=("pi", 100), marker="o", height=3.6, aspect=1.1)
    for ax, (_variant, sub) in zip(g.axes.flat, d.groupby("variant", sort=False)):
        sns.scatterplot(data=sub, x="populated_fraction", y="munlock_ms", hue="VMA", hue_order=order, ax=ax,
                        legend=False, alpha=0.5, s=16)
        ax.set_xlabel("populated fraction of the VMA")
        ax.set_yscale("log")  # an untouched range takes microseconds, a populated one milliseconds
        ax.set_ylabel("time in munlock() (ms, log scale)")
    g.figure.suptitle(f"{title}: median, min-max band over repeats, each repeat a point", y=1.04)
    return g


def oom_outcome(rows: pd.DataFrame, title: str = "oom-kill (real)"):
    """Left: processes alive after the OOM kill, by role, over all repeats. Right: the victim's seconds
    from the start of mlock() to the kill and from the kill to its exit, each repeat a point."""
    import seaborn as sns

    plt = pyplot()
    d = measured_rows(rows).copy()
    d["fate"] = d["survived"].map({True: "survived", False: "killed"})
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    sns.countplot(data=d, x="role", hue="fate", hue_order=["survived", "killed"], order=["victim", "bystander"], ax=a)
    a.set_ylabel("processes (all repeats)")
    v = d[d["role"] == "victim"].melt(id_vars=["repeat"], value_vars=["start_to_kill_s", "kill_to_reap_s"],
                                       var_name="interval", value_name="seconds")
    v["interval"] = v["interval"].map({"start_to_kill_s": "mlock() start to kill", "kill_to_reap_s": "kill to reap"})
    sns.boxplot(data=v, x="interval", y="seconds", ax=b, color="0.9", showfliers=False)
    sns.stripplot(data=v, x="interval", y="seconds", ax=b, size=5, jitter=0.1)
    b.set_yscale("log")  # the mlock runs for seconds, the exit takes milliseconds
    b.set_xlabel("")
    b.set_ylabel("time (s, log scale)")
    a.set_xlabel("process role")
    b.set_title("victim", fontsize=10)
    fig.suptitle(f"{title}: each repeat a point", y=1.02)
    fig.tight_layout()
    return fig


def replay_vs_modern(rows: pd.DataFrame, title: str = "prepatch-replay (replay) beside the modern exit (real)"):
    """Seconds per VMA size: the replayed pre-patch exit (fault in the unreached pages, munlock, munmap)
    in each setting, beside the modern SIGKILL exit of a twin in the same state; bars are medians,
    points the repeats."""
    import seaborn as sns

    plt = pyplot()
    d = measured_rows(rows).copy()
    d["VMA"] = d["vma_bytes"].map(_size_label)
    order = [_size_label(v) for v in sorted(d["vma_bytes"].unique())]
    rep = d[["VMA", "repeat", "setting", "replay_s"]].rename(columns={"replay_s": "seconds"})
    rep["what"] = "replay (" + rep["setting"] + ")"
    parts = [rep[["VMA", "repeat", "what", "seconds"]]]
    if "modern_kill_to_reap_s" in d:
        mod = d[["VMA", "repeat", "modern_kill_to_reap_s"]]  # every row's twin: same state, SIGKILLed
        mod = mod.rename(columns={"modern_kill_to_reap_s": "seconds"}).assign(what="modern exit (real)")
        parts.append(mod)
    long = pd.concat(parts, ignore_index=True)
    long["ms"] = long["seconds"] * 1e3
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    sns.barplot(data=long, x="VMA", y="ms", hue="what", order=order, estimator="median", errorbar=("pi", 100), ax=ax, alpha=0.6)
    sns.stripplot(data=long, x="VMA", y="ms", hue="what", order=order, dodge=True, ax=ax, legend=False, size=4, jitter=0.05)
    ax.set_yscale("log")  # the replayed pre-patch exit takes tens of ms, today's a few
    ax.set_ylabel("time (ms, log scale)")
    ax.set_xlabel("VMA size (mlock cut short at the populated fraction)")
    ax.legend(fontsize=8, title=None)
    ax.set_title(f"{title}\nbars: median, whiskers: min-max, points: repeats", fontsize=10)
    return fig
