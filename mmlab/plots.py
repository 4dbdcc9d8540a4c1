"""Figures shared by notebooks: seaborn on tidy rows, spread across repeats always shown."""
from __future__ import annotations

import matplotlib

import pandas as pd


def _plt():
    import matplotlib.pyplot as plt

    return plt


def ns_per_page_vs_size(rows: pd.DataFrame, title: str = "mlock-throughput (real)"):
    """ns per 4 KiB page of mlock and munlock against region size; median line, 95% interval band and
    every repeat as a point (warm-up repetitions excluded)."""
    import seaborn as sns

    plt = _plt()
    data = rows[~rows["warmup"]] if "warmup" in rows else rows
    long = data.melt(id_vars=["size_bytes", "mapping", "repeat"],
                     value_vars=["mlock_ns_per_page", "munlock_ns_per_page"], var_name="call", value_name="ns_per_page")
    long["call"] = long["call"].str.removesuffix("_ns_per_page")
    long["size_MiB"] = long["size_bytes"] / (1 << 20)
    g = sns.relplot(data=long, x="size_MiB", y="ns_per_page", hue="mapping", col="call", kind="line",
                    estimator="median", errorbar=("pi", 100), marker="o", facet_kws={"sharey": False},
                    height=3.6, aspect=1.2)
    for ax, (call, sub) in zip(g.axes.flat, long.groupby("call", sort=True)):
        sns.stripplot(data=sub, x="size_MiB", y="ns_per_page", hue="mapping", native_scale=True, ax=ax,
                      legend=False, alpha=0.5, size=3, jitter=False)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("region size (MiB)")
        ax.set_ylabel("ns per 4 KiB page")
    g.figure.suptitle(f"{title}: median, min-max band over repeats, each repeat a point", y=1.04)
    return g


matplotlib.rcParams.setdefault("figure.dpi", 100)
