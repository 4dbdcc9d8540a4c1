"""Tables, figures and findings of notebook 08 (file mappings): measured per-page costs on this kernel and
the simulated era comparison built on them, each labelled with its method."""
from __future__ import annotations

import dataclasses

import pandas as pd

from mmlab.core import params as p
from mmlab.core.figure import pyplot
from mmlab.core.stats import measured_rows
from mmlab.core.units import format_bytes
from mmlab.experiments import file_mapping as real
from mmlab.sim import file_mapping as fm

OP_ORDER = ["populate_read", "populate_write", "write_after_read", "redirty_after_writeback", "writeback", "mlock",
            "munlock", "munmap", "munmap_locked"]


@dataclasses.dataclass(frozen=True)
class FileMappingsParams(p.Params):
    """Parameters of notebook 08: the real experiment's points and the simulated mapping beside them."""

    run_real: bool = p.flag(True, "run the file-mapping experiment here; False: the reference machine's stored costs only")
    size_bytes: int = p.size("32MiB", "size of the file and of each mapping in the experiment", lo=1 << 20, hi=1 << 40)
    filesystems: tuple = p.choices(list(real.FILESYSTEMS), real.FILESYSTEMS, "where the experiment's file lives")
    mappings: tuple = p.choices(list(real.MAPPINGS), real.MAPPINGS, "MAP_PRIVATE | MAP_SHARED")
    page_cache: tuple = p.choices(list(real.CACHES), real.CACHES, "the file's pages before each timed step")
    repeats: int = p.integer(3, "measured repetitions per point", 1, 100)
    warmup: int = p.integer(1, "warm-up repetitions per point (rows kept, flagged)", 0, 10)
    lock_share: float = p.real(0.25, "safety guard: largest share of MemAvailable locked", 0.01, 0.9)
    profile: str = p.text("reference", "machine profile for the simulation's non-file costs")
    sim_vma_bytes: int = p.size("1GiB", "simulated mapping size", hi=1 << 44)
    sim_populated_bytes: int = p.size("256MiB", "simulated interrupted mlock: bytes populated at SIGKILL", lo=0, hi=1 << 44)
    sim_filesystem: str = p.choice("disk", fm.FILESYSTEMS, "simulated file's filesystem")
    sim_page_cache: str = p.choice("warm", fm.CACHES, "simulated page cache before mlock (cold: disk only)")

    def check(self) -> None:
        """The experiment's and the simulation's own checks, so a bad combination fails before anything runs."""
        real.FileMappingParams.from_mapping(dict(size_bytes=self.size_bytes, filesystems=self.filesystems,
                                                 mappings=self.mappings, page_cache=self.page_cache,
                                                 repeats=self.repeats, warmup=self.warmup, lock_share=self.lock_share))
        for populated in (self.sim_vma_bytes, self.sim_populated_bytes):
            fm.FileMappingParams.from_mapping(dict(profile=self.profile, vma_bytes=self.sim_vma_bytes,
                                                   populated_bytes=populated, filesystem=self.sim_filesystem,
                                                   page_cache=self.sim_page_cache, mapping="private"))


def measured_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Median wall ns per 4 KiB page per point and operation with the min-max range and n, and the median
    CPU ns per page (method = real)."""
    d = measured_rows(rows)
    g = d.groupby(["filesystem", "mapping", "page_cache", "operation"])
    out = g["ns_per_page"].agg(n="count", median_ns_per_page="median", min_ns_per_page="min",
                               max_ns_per_page="max").reset_index()
    if "cpu_ns_per_page" in d:
        out["cpu_median_ns_per_page"] = g["cpu_ns_per_page"].median().to_numpy()
    out["operation"] = pd.Categorical(out["operation"], OP_ORDER, ordered=True)
    out.insert(0, "method", "real")
    return out.sort_values(["filesystem", "mapping", "page_cache", "operation"]).round(1).reset_index(drop=True)


def per_page_figure(rows: pd.DataFrame, title: str = "file-mapping (measured, method = real)"):
    """ns per page of each operation, one panel per filesystem and mapping, cold and warm side by side:
    median bar, min-max whisker, log scale (writeback on tmpfs is 0 and left out)."""
    import numpy as np

    plt = pyplot()

    t = measured_table(rows)
    t = t[t["median_ns_per_page"] > 0]
    panels = [(fs, m) for fs in fm.FILESYSTEMS for m in fm.MAPPINGS if len(t[(t.filesystem == fs) & (t.mapping == m)])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), sharey=True, squeeze=False)
    for ax, (fs, m) in zip(axes[0], panels):
        sub = t[(t.filesystem == fs) & (t.mapping == m)]
        ops = [o for o in OP_ORDER if o in set(sub["operation"].astype(str))]
        caches = [c for c in fm.CACHES if c in set(sub["page_cache"])]
        width = 0.8 / len(caches)
        for i, cache in enumerate(caches):
            s = sub[sub.page_cache == cache].set_index(sub[sub.page_cache == cache]["operation"].astype(str)).reindex(ops)
            x = np.arange(len(ops)) + (i - (len(caches) - 1) / 2) * width
            med, lo, hi = s["median_ns_per_page"], s["min_ns_per_page"], s["max_ns_per_page"]
            ax.bar(x, med, width, label=f"page cache {cache}")
            ax.errorbar(x, med, yerr=[med - lo, hi - med], fmt="none", ecolor="k", capsize=2, lw=0.8)
        ax.set_xticks(range(len(ops)), ops, rotation=60, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_title(f"{m} mapping, {fs}")
        ax.grid(True, axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("ns per 4 KiB page (median, min-max)")
    fig.suptitle(title, y=1.02)
    fig.tight_layout()
    return fig


def findings(rows: pd.DataFrame) -> str:
    """Sentences stating, from the rows, what mlock did to the pages on this kernel (Markdown)."""
    d = measured_rows(rows)
    out = []
    for fs in fm.FILESYSTEMS:
        for m in fm.MAPPINGS:
            r = d[(d.filesystem == fs) & (d.mapping == m) & (d.operation == "mlock")]
            if not len(r):
                continue
            size = int(r["size_bytes"].iloc[0])
            anon, dirty, locked = (int(r[c].median()) for c in ("anon_bytes", "dirty_bytes", "locked_bytes"))
            what = (f"{format_bytes(anon)} of {format_bytes(size)} became anonymous copies (COW)" if m == "private" else
                    f"{format_bytes(dirty)} of {format_bytes(size)} dirty"
                    + (" (tmpfs pages count as dirty from the start: memory is their only copy)" if fs == "tmpfs" else ""))
            out.append(f"- **{m}, {fs}** (measured): after mlock() {format_bytes(locked)} locked, {what}; "
                       f"mlock {r['ns_per_page'].median():.0f} ns per page (median of {len(r)}).")
    sh = d[(d.filesystem == "disk") & (d.mapping == "shared")]
    if len(sh):
        w = sh[sh.operation == "populate_write"]["dirty_bytes"].median()
        out.append(f"- A write fault (MADV_POPULATE_WRITE) of the same shared disk mapping dirtied {format_bytes(w)}: "
                   "what the write-GUP of a 2.6.3x mlock did to every page.")
    return "\n".join(out)


def era_figure(sim: pd.DataFrame, title: str):
    """Simulated seconds of mlock, munlock() and exit per era (bars, the cost interval as whiskers) and the
    bytes each era COWed and wrote back."""
    import numpy as np

    plt = pyplot()

    eras = [f"{k}\n(era {e})" for k, e in zip(sim["kernel"], sim["era"])]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(eras))
    for i, what in enumerate(("mlock", "munlock", "exit")):
        v, lo, hi = (sim[f"{what}_s{s}"].to_numpy() for s in ("", "_lo", "_hi"))
        ax.bar(x + (i - 1) * 0.27, v, 0.27, label=f"{what}", yerr=[v - lo, hi - v], capsize=2)
    for xi, outcome in zip(x, sim.get("outcome", ["exited"] * len(x))):
        if outcome != "exited":  # no time for an outcome that is not an exit: say what happened instead
            ax.annotate(outcome, (xi, 0), xytext=(0, 4), textcoords="offset points", rotation=90, ha="center",
                        va="bottom", fontsize=8, color="firebrick")
    ax.set_xticks(x, eras)
    ax.set_xlabel("kernel (its era in eras.py)")
    ax.set_ylabel("simulated seconds")
    ax.legend()
    ax.set_title("time (simulated, method = simulated)")
    cow = (sim["anon_bytes_needed"] / (1 << 20)).to_numpy()
    wb = (sim["written_back_bytes"] / (1 << 20)).to_numpy()
    ax2.bar(x - 0.2, cow, 0.4, label="anonymous memory the COW copies need, MiB")
    ax2.bar(x + 0.2, wb, 0.4, label="written back, MiB")
    ax2.set_xticks(x, eras)
    ax2.set_ylabel("MiB")
    ax2.legend(fontsize=8)
    ax2.set_title("memory and I/O (simulated)")
    fig.suptitle(title, y=1.02)
    fig.tight_layout()
    return fig


def era_table(sim: pd.DataFrame) -> pd.DataFrame:
    """The simulated rows reduced to what differs between eras."""
    cols = ["method", "kernel", "era", "versions", "outcome", "mlock_write_faults", "munlock_pass", "mlock_s", "munlock_s", "exit_s",
            "mlock_pages_cowed", "mlock_pages_dirtied", "munlock_pages_cowed", "munlock_pages_dirtied",
            "anon_bytes_needed", "written_back_bytes", "writeback_s", "throttled_pages"]
    return sim[cols].round(4)

