"""Sweeps for notebooks 06 and 07: their validated parameters and the tidy tables they plot."""
from __future__ import annotations

import dataclasses

import pandas as pd

from mmlab.core.params import ParamError, Params, choice, integer, real, reals, size, sizes, text
from mmlab.core.units import PAGE_BYTES
from mmlab.sim import SCENARIOS
from mmlab.sim.eras import era_for
from mmlab.sim.oom import OomParams, timeline
from mmlab.sim.profile import NAMED


def _kernels(value: str) -> tuple[str, ...]:
    ks = tuple(k.strip() for k in value.split(",") if k.strip())
    if not ks:
        raise ParamError("kernels", value, "comma-separated kernel versions, e.g. 2.6.31,6.18", "is empty")
    for k in ks:
        era_for(k)
    return ks


def _check_profile(name: str) -> None:
    """A ParamError unless the profile can be loaded here (`host` needs `mmlab calibrate` first)."""
    if name not in NAMED and not name.endswith(".json"):
        raise ParamError("profile", name, "reference | desktop-2009 | host | a profile .json path", "is not a known profile")
    from .profile import by_name

    by_name(name)


@dataclasses.dataclass(frozen=True)
class BeforeAfterParams(Params):
    """Parameters of notebook 06."""

    kernels: str = text("2.6.31,2.6.32,3.12,4.6,4.9,4.19,6.18",
                        "kernel versions or era names, comma-separated; each picks the newest era at or below it")
    profile: str = text("reference", "machine profile")
    vma_sizes: tuple = sizes(["256MiB", "1GiB", "4GiB", "16GiB", "64GiB", "256GiB"], "VMA sizes of the size sweep")
    populated_bytes: int = size("256MiB", "populated at SIGKILL in the size sweep")
    fraction_vma_bytes: int = size("4GiB", "VMA size of the populated-fraction sweep")
    populated_fractions: tuple = reals([0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0], "populated fractions", lo=0, hi=1)
    oom_ram_bytes: int = size("8GiB", "OOM scenario: RAM")
    oom_free_bytes: int = size("6GiB", "OOM scenario: free memory at start")
    oom_vma_bytes: int = size("8GiB", "OOM scenario: the victim's mlock")
    oom_bystanders: int = integer(3, "OOM scenario: bystanders", lo=0, hi=64)
    oom_bystander_bytes: int = size("512MiB", "OOM scenario: each bystander's memory")
    memdie_alloc: str = choice("era", ("era", "retry", "fail"), "a failed TIF_MEMDIE allocation at exit: as the era's sources say, or forced")

    def check(self) -> None:
        _kernels(self.kernels)
        _check_profile(self.profile)
        if self.populated_bytes > min(self.vma_sizes):
            raise ParamError("populated_bytes", self.populated_bytes, "at most the smallest of vma_sizes", "exceeds a VMA")
        for k in self.kernel_list:
            self.oom_params(k)

    @property
    def kernel_list(self) -> tuple[str, ...]:
        return _kernels(self.kernels)

    def oom_params(self, kernel: str) -> OomParams:
        return OomParams(kernel=kernel, profile=self.profile, ram_bytes=self.oom_ram_bytes, free_bytes=self.oom_free_bytes,
                         vma_bytes=self.oom_vma_bytes, bystanders=self.oom_bystanders,
                         bystander_bytes=self.oom_bystander_bytes, memdie_alloc=self.memdie_alloc)


def exit_vs_size(p: BeforeAfterParams) -> pd.DataFrame:
    """sigkill-during-mlock rows: every kernel x VMA size at a fixed populated size."""
    s = SCENARIOS["sigkill-during-mlock"]
    return pd.concat([s.run({"kernel": k, "profile": p.profile, "vma_bytes": v, "populated_bytes": p.populated_bytes})
                      for k in p.kernel_list for v in p.vma_sizes], ignore_index=True)


def exit_vs_fraction(p: BeforeAfterParams) -> pd.DataFrame:
    """sigkill-during-mlock rows: every kernel x populated fraction of one VMA."""
    s = SCENARIOS["sigkill-during-mlock"]
    rows = []
    for k in p.kernel_list:
        for f in p.populated_fractions:
            df = s.run({"kernel": k, "profile": p.profile, "vma_bytes": p.fraction_vma_bytes,
                        "populated_bytes": int(p.fraction_vma_bytes * f) // PAGE_BYTES * PAGE_BYTES})
            rows.append(df.assign(populated_fraction=f))
    return pd.concat(rows, ignore_index=True)


def oom_side_by_side(p: BeforeAfterParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per process per kernel, timelines of every kernel) for the OOM scenario."""
    sim = SCENARIOS["oom-kill"]
    rows = pd.concat([sim.simulate(p.oom_params(k)) for k in p.kernel_list], ignore_index=True)
    tls = pd.concat([timeline(p.oom_params(k)) for k in p.kernel_list], ignore_index=True)
    return rows, tls


def exit_table(rows: pd.DataFrame, index: str) -> pd.DataFrame:
    """Exit per era at each `index` value: the time, or what the kernel did where there is none (the
    machine ran out of memory), with the pages the exit faulted in."""
    from mmlab.sim.memory import label

    cell = [f"{s:.4g} s, {int(n)} pages faulted" if o == "exited" else f"no time: {label(o)}"
            for s, n, o in zip(rows["exit_s"], rows["exit_pages_faulted"], rows["outcome"])]
    return rows.assign(exit=cell).pivot_table(index=index, columns="era", values="exit", aggfunc="first", sort=False)


def outcomes(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per kernel: outcome, when, which bystanders were killed."""
    def one(g: pd.DataFrame) -> pd.Series:
        killed = g[(g.role == "bystander") & ~g.survived]
        return pd.Series({"era": g.era.iloc[0], "outcome": g.outcome.iloc[0], "outcome_s": g.outcome_s.iloc[0],
                          "bystanders_killed": ",".join(str(x) for x in killed.pid) or "none",
                          "victim_exit_pages_faulted": int(g[g.role == "victim"].exit_pages_faulted.iloc[0])})
    return pd.DataFrame([one(g).rename(k) for k, g in rows.groupby("kernel", sort=False)]).rename_axis("kernel").reset_index()


@dataclasses.dataclass(frozen=True)
class ValidationParams(Params):
    """Parameters of notebook 07."""

    profile: str = text("reference", "profile the simulations are priced with (host = this machine's, after mmlab calibrate)")
    desktop_free_bytes: tuple = sizes(["256MiB", "512MiB", "768MiB", "1GiB", "1280MiB", "1536MiB"],
                                      "2009 desktop: free memory + clean page cache values for the sensitivity table")
    desktop_swap_mb_s: tuple = reals([20, 35, 50, 75, 100], "2009 desktop: effective swap-out MB/s values for the sensitivity table",
                                     lo=1, hi=10000)
    target_lo: float = real(0.9, "lower end of the sim/real target", lo=0, hi=1)
    target_hi: float = real(1.1, "upper end of the sim/real target", lo=1, hi=100)

    def check(self) -> None:
        _check_profile(self.profile)


def wakabayashi_sensitivity(p: ValidationParams) -> pd.DataFrame:
    """Wakabayashi's test across the plausible range of each unknown 2009 fact, one at a time (not a fit: a
    spread); free memory and swap speed take the notebook's values, the other knobs validate.KNOBS's."""
    from mmlab.sim.validate import wakabayashi_sensitivity as sensitivity

    return sensitivity(ranges={"free_and_cache_MiB": [b / (1 << 20) for b in p.desktop_free_bytes],
                               "swap_MB_s": list(p.desktop_swap_mb_s)})


def wakabayashi_grid(p: ValidationParams) -> pd.DataFrame:
    """The pre-patch total of Wakabayashi's test for every pair of free memory (+ clean cache) and swap
    speed values together (the two knobs that decide it), the other facts at their stated values."""
    from mmlab.sim.profile import desktop_2009
    from mmlab.sim.validate import KNOBS, wakabayashi

    rows = []
    for mb_s in p.desktop_swap_mb_s:
        for free in p.desktop_free_bytes:
            prof = KNOBS["swap_MB_s"][2](KNOBS["free_and_cache_MiB"][2](desktop_2009(), free / (1 << 20)), mb_s)
            b = wakabayashi(prof).set_index("patch").loc["before"]
            rows.append({"swap_MB_s": mb_s, "free_and_cache_MiB": free >> 20,
                         "sim_total_s": b["sim_total_s"] if b["outcome"] == "exited" else float("nan")})
    return pd.DataFrame(rows).pivot(index="swap_MB_s", columns="free_and_cache_MiB", values="sim_total_s")
