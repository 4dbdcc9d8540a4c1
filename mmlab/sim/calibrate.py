"""Fit a machine profile from stored real runs: medians of ns-per-page and non-negative least squares,
with bootstrap intervals. Pure functions of a tidy DataFrame, except `main_calibrate` (the CLI edge).

What comes from where (column names of the real experiments):
- mlock-throughput (anon-private): populate_mlock_ns = mlock_ns_per_page, munlock_present_ns = munlock_ns_per_page,
  zap_present_ns = munmap_ns_per_page (munmap of the pages just munlocked), and fault_zero_ns = mlock_ns_per_page
  too: mlock populates through __get_user_pages -> faultin_page, the write fault the pre-patch munlock took
  (mlock_folio on top is small: MADV_POPULATE_WRITE measured 1206 ns/page against mlock's 1137 on the reference
  machine);
- oom-kill: oom_kill_s = the victim's first memcg reclaim at the limit to mark_victim when traced (else limit_to_kill_s,
  user space's view: first failed charge to the oom_kill count rising), oom_kill_to_exit_s = its traced SIGKILL to
  do_exit, memcg_limit_s = its traced first reclaim at the limit to the OOM killer invoked;
- sigkill-during-mlock: kill_to_reap_s = exit_base_s + populated pages x (zap + munlock while zapping) -> exit_base_s,
  and zap_munlock_ns = that per-page cost less zap_present_ns (runs without munmap timings: zap_present_ns = per-page
  less munlock_present_ns, and zap_munlock_ns = munlock_present_ns);
- file-mapping (disk unless said): file_fault_ns = populate_read, page cache warm (disk and tmpfs); cow_ns =
  populate_write of a private mapping, warm (disk and tmpfs); file_write_fault_ns = populate_write of a shared
  mapping, warm; writeback_ns = writeback (fdatasync of the pages just dirtied); file_read_ns = populate_read
  cold less warm (what reading the page from disk adds to a fault);
- munlock-partial, rows populated at most SMALL_FRACTION: munlock_s = munlock_call_s + empty PMD entries
  walked x empty_table_ns + present x munlock (eras.empty_pmds_walked).
prepatch-replay rows are never fitted: they are what the simulated 2.6.31 exit is validated against.
Costs no stored experiment measures keep the prior profile's value and say so in their source.
"""
from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mmlab.core.stats import bootstrap_ci, measured_rows
from mmlab.core.units import PAGE_BYTES
from mmlab.kernel import procfs
from mmlab.sim.address_space import State, Vma
from mmlab.sim.eras import empty_pmds_walked
from mmlab.sim.profile import MEMORY_FIELDS, Cost, Profile, host_path, memory_from_meminfo, reference

N_BOOT = 200
SMALL_FRACTION = 0.1  # munlock-partial rows used for the per-call and per-PMD fit: nothing or little populated


def nnls(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with every coefficient >= 0, by trying each subset of columns (few columns here)."""
    n = X.shape[1]
    best, best_rss = np.zeros(n), float(np.sum(y**2))
    for k in range(1, n + 1):
        for cols in itertools.combinations(range(n), k):
            coef, *_ = np.linalg.lstsq(X[:, cols], y, rcond=None)
            if np.any(coef < 0):
                continue
            rss = float(np.sum((X[:, cols] @ coef - y) ** 2))
            if rss < best_rss - 1e-30:
                best, best_rss = np.zeros(n), rss
                best[list(cols)] = coef
    return best


def _cost(values: Sequence[float], source: str) -> Cost | None:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        return None
    med = float(np.median(x))
    lo, hi = bootstrap_ci(x) if len(x) > 1 else (med, med)
    return Cost(med, min(lo, med), max(hi, med), f"{source}; median of {len(x)} rows, 95% bootstrap interval")


def _less(a: Cost, b: Cost, b_name: str) -> Cost:
    """a - b with the interval [a.lo - b.hi, a.hi - b.lo], clamped at zero."""
    v = max(0.0, a.value - b.value)
    return Cost(v, min(v, max(0.0, a.lo - b.hi)), max(v, a.hi - b.lo), f"{a.source} less {b_name}")


def _fit_costs(df: pd.DataFrame, fit: Callable[[pd.DataFrame], np.ndarray], names: Sequence[str],
               source: str, seed: int = 0) -> dict[str, Cost]:
    """Fit on all rows, interval from refits on resampled rows (percentile bootstrap)."""
    point = fit(df)
    rng = np.random.default_rng(seed)
    boots = np.array([fit(df.iloc[rng.integers(0, len(df), len(df))]) for _ in range(N_BOOT)])
    out = {}
    for i, name in enumerate(names):
        lo, hi = np.quantile(boots[:, i], [0.025, 0.975])
        v = float(point[i])
        out[name] = Cost(v, float(min(lo, v)), float(max(hi, v)), f"{source}; NNLS on {len(df)} rows, 95% bootstrap interval")
    return out


def _rows(df: pd.DataFrame, experiment: str, method: str = "real") -> pd.DataFrame:
    if df is None or df.empty or "experiment" not in df:
        return pd.DataFrame()
    d = df[(df["experiment"] == experiment) & (df.get("method", method) == method)]
    return measured_rows(d)


def munlock_design(vma_bytes: Sequence[float], populated_bytes: Sequence[float]) -> np.ndarray:
    """Columns of the munlock() fit: 1 (seconds), empty PMD entries walked and present pages (x 1e-9, so
    their coefficients come out in ns), for prefix-populated VMAs as the experiment leaves them."""
    rows = []
    for v, pb in zip(vma_bytes, populated_bytes):
        pages, present = int(-(-float(v) // PAGE_BYTES)), int(float(pb) // PAGE_BYTES)
        rows.append((1.0, empty_pmds_walked(Vma.prefix(pages, present, State.LOCKED)) * 1e-9, present * 1e-9))
    return np.array(rows)


def fit_munlock_call(d: pd.DataFrame) -> np.ndarray:
    """NNLS of munlock_s on `munlock_design`: (munlock_call_s, empty_table_ns, munlock ns per present page).
    Rows weighted by 1/munlock_s (relative error): timing noise is proportional, and a 2 ms row's noise
    would otherwise swamp the microseconds of the per-call base."""
    y = d["munlock_s"].to_numpy(float)
    w = 1.0 / np.maximum(y, 1e-9)
    return nnls(munlock_design(d["vma_bytes"], d["populated_bytes"]) * w[:, None], y * w)


def calibrate_from_runs(df: pd.DataFrame, prior: Profile | None = None, name: str = "host") -> Profile:
    """A profile fitted from real rows; costs the rows cannot tell keep `prior`'s (default: reference)."""
    prior = prior or reference()
    costs = {k: c if c.source.startswith("prior (") else dataclasses.replace(c, source=f"prior ({prior.name}): {c.source}")
             for k, c in prior.costs.items()}  # a cost already from a prior says so once, not once per refit
    fitted: list[str] = []

    def put(key: str, cost: Cost | None) -> None:
        if cost is not None:
            costs[key] = cost
            fitted.append(key)

    mt = _rows(df, "mlock-throughput")
    if not mt.empty:
        anon = mt[mt["mapping"] == "anon-private"] if "mapping" in mt else mt
        put("populate_mlock_ns", _cost(anon["mlock_ns_per_page"], "mlock-throughput anon-private mlock_ns_per_page"))
        put("munlock_present_ns", _cost(anon["munlock_ns_per_page"], "mlock-throughput anon-private munlock_ns_per_page"))
        put("fault_zero_ns", _cost(anon["mlock_ns_per_page"], "mlock-throughput anon-private mlock_ns_per_page "
                                   "(GUP write fault, as MADV_POPULATE_WRITE)"))
        if "munmap_ns_per_page" in anon:
            put("zap_present_ns", _cost(anon["munmap_ns_per_page"], "mlock-throughput anon-private munmap_ns_per_page "
                                        "(munmap of the pages just munlocked)"))

    sk = _rows(df, "sigkill-during-mlock")
    if len(sk) >= 3 and sk["populated_bytes"].nunique() >= 2:
        def fit_exit(d: pd.DataFrame) -> np.ndarray:
            X = np.c_[np.ones(len(d)), d["populated_bytes"].to_numpy(float) / PAGE_BYTES * 1e-9]
            return nnls(X, d["kill_to_reap_s"].to_numpy(float))
        got = _fit_costs(sk, fit_exit, ["exit_base_s", "_exit_per_page_ns"], "sigkill-during-mlock kill_to_reap_s = base + pages x per-page")
        put("exit_base_s", got["exit_base_s"])
        per = got["_exit_per_page_ns"]
        if "zap_present_ns" in fitted:  # munlock while zapping = per-page exit cost less the zap measured by munmap
            put("zap_munlock_ns", _less(per, costs["zap_present_ns"], "zap_present_ns"))
        else:  # no munmap timings: the zap is what the per-page exit cost leaves after a munlock() of the page
            mun = costs["munlock_present_ns"]
            put("zap_present_ns", _less(per, mun, "munlock_present_ns"))
            put("zap_munlock_ns", dataclasses.replace(mun, source=mun.source + " (no munmap timings: munlock while "
                                                      "zapping taken as munlock())"))

    ok = _rows(df, "oom-kill")
    traced = ok[ok["k_mark_victim_s"].notna() & ok["k_limit_s"].notna()] if {"k_mark_victim_s", "k_limit_s"} <= set(ok) else ok.iloc[0:0]
    if len(traced):  # the kernel's own times, from its tracepoints
        put("oom_kill_s", _cost(traced["k_mark_victim_s"] - traced["k_limit_s"], "oom-kill victim, traced: first memcg "
                                "reclaim at the group's limit to mark_victim (tracepoints)"))
    elif "limit_to_kill_s" in ok:
        put("oom_kill_s", _cost(ok["limit_to_kill_s"], "oom-kill victim limit_to_kill_s (first failed charge at the "
                                "group's limit to the oom_kill count rising)"))
    if len(traced) and "k_oom_invoked_s" in traced:
        put("memcg_limit_s", _cost(traced["k_oom_invoked_s"] - traced["k_limit_s"], "oom-kill victim, traced: first memcg "
                                   "reclaim at the group's limit to the OOM killer invoked (the charge given up)"))
    if "k_kill_to_exit_s" in ok:
        put("oom_kill_to_exit_s", _cost(ok["k_kill_to_exit_s"], "oom-kill victim, traced: SIGKILL generated to do_exit "
                                        "(signal_generate -> sched_process_exit)"))

    fr = _rows(df, "file-mapping")
    if "operation" in fr:  # file pages already in the page cache (page cache warm), faulted as the old kernels did
        warm = fr[fr["page_cache"] == "warm"]
        put("file_fault_ns", _cost(warm[warm["operation"] == "populate_read"]["ns_per_page"],
                                   "file-mapping populate_read, page cache warm, disk and tmpfs (MADV_POPULATE_READ: read "
                                   "fault mapping a cached file page)"))
        put("cow_ns", _cost(warm[(warm["operation"] == "populate_write") & (warm["mapping"] == "private")]["ns_per_page"],
                            "file-mapping populate_write of a private mapping, page cache warm, disk and tmpfs "
                            "(MADV_POPULATE_WRITE: COW of an absent file page into a new anonymous page)"))
        disk = fr[fr["filesystem"] == "disk"]
        dwarm = disk[disk["page_cache"] == "warm"]
        put("file_write_fault_ns", _cost(dwarm[(dwarm["operation"] == "populate_write") & (dwarm["mapping"] == "shared")]
                                         ["ns_per_page"], "file-mapping populate_write of a shared mapping on disk, page "
                                         "cache warm (MADV_POPULATE_WRITE: write fault of a cached page, page_mkwrite, "
                                         "set_page_dirty)"))
        put("writeback_ns", _cost(disk[disk["operation"] == "writeback"]["ns_per_page"],
                                  "file-mapping writeback on disk, page cache cold and warm (fdatasync of the pages "
                                  "populate_write just dirtied)"))
        reads = disk[disk["operation"] == "populate_read"]
        cold_read = _cost(reads[reads["page_cache"] == "cold"]["ns_per_page"], "file-mapping populate_read on disk, page "
                          "cache cold (MADV_POPULATE_READ: read faults that read the file in)")
        warm_read = _cost(reads[reads["page_cache"] == "warm"]["ns_per_page"], "")
        if cold_read is not None and warm_read is not None:
            put("file_read_ns", _less(cold_read, warm_read, "populate_read on disk, page cache warm (the same read "
                                      "faults of cached pages)"))

    mp = _rows(df, "munlock-partial")
    if len(mp):
        mp = mp[mp["populated_bytes"] <= SMALL_FRACTION * mp["vma_bytes"]]
    if len(mp) >= 3 and mp["vma_bytes"].nunique() >= 2:
        got = _fit_costs(mp, fit_munlock_call, ["munlock_call_s", "empty_table_ns", "_munlock_ns"],
                         f"munlock-partial rows populated <= {SMALL_FRACTION:.0%}: munlock_s = call + empty PMD "
                         "entries walked x per-entry + present x per-page")
        put("munlock_call_s", got["munlock_call_s"])
        put("empty_table_ns", got["empty_table_ns"])

    source = (f"fitted by mmlab calibrate from stored runs: {', '.join(fitted) or 'nothing (no usable real rows)'}; "
              f"other costs from prior profile {prior.name}")
    return Profile(name, costs, ram_bytes=prior.ram_bytes, free_bytes=prior.free_bytes, source=source,
                   **{k: getattr(prior, k) for k in MEMORY_FIELDS})


def _min_free_bytes() -> int:
    try:
        return int(Path("/proc/sys/vm/min_free_kbytes").read_text()) << 10
    except (OSError, ValueError):
        return 0


def main_calibrate(out_path: Path | str | None = None) -> tuple[Profile, Path]:
    """The CLI edge: read every stored run, fit, save to <runs folder>/profile-<host>.json (or out_path), print."""
    from mmlab.core.store import host_tag, load

    df = load()
    real = df[df["method"].isin(["real", "replay"])] if "method" in df else df
    tag = host_tag()
    prof = calibrate_from_runs(real, name=f"host-{tag}")
    prof = dataclasses.replace(prof, **memory_from_meminfo(procfs.meminfo(), _min_free_bytes()))
    path = prof.save(Path(out_path) if out_path else host_path(tag))
    table = prof.table()[["cost", "unit", "value", "lo", "hi", "source"]]
    with pd.option_context("display.max_colwidth", 70, "display.width", 200):
        print(table.to_string(index=False))
    print(f"{len(real)} real/replay rows read; profile saved to {path}")
    if "experiment" in real and (real["experiment"] == "file-mapping").any():
        from mmlab.sim import file_mapping

        _, fpath = file_mapping.calibrate(real)
        print(f"file-mapping per-page costs saved to {fpath} (simulate file-mapping -p costs host)")
    return prof, path
