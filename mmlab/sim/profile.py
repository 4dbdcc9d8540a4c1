"""Machine profile: what each kernel operation costs on one machine, with an interval for each.

A simulation counts operations (pages faulted, munlocked, walked, unmapped...); the profile prices
them. Costs are those of a *current* kernel on the machine (that is what can be measured here); the
eras scale the few that changed between kernels (see eras.py). Intervals propagate by pricing the
counts at every cost's low end and at every cost's high end (costs move together: conservative).
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

from mmlab.core import paths
from mmlab.core.params import ParamError

# name -> (unit, meaning). Per-page costs in ns, fixed costs in s.
OPS: dict[str, tuple[str, str]] = {
    "populate_mlock_ns": ("ns/page", "mlock() populating an anonymous page: fault, allocate, zero, mlock_vma_page"),
    "fault_zero_ns": ("ns/page", "write fault through get_user_pages: allocate and zero an anonymous page (MADV_POPULATE_WRITE)"),
    "zero_page_ns": ("ns/page", "read fault mapping the shared ZERO_PAGE (MADV_POPULATE_READ on fresh anon)"),
    "file_fault_ns": ("ns/page", "fault mapping a page-cache page already in memory"),
    "cow_ns": ("ns/page", "copy on write of a private file page at a write fault: the page-cache page copied into a new anonymous page"),
    "file_write_fault_ns": ("ns/page", "write fault of an absent page of a shared file mapping on a disk filesystem, the page "
                                       "in the page cache: page_mkwrite, pte made dirty, set_page_dirty (MADV_POPULATE_WRITE)"),
    "file_read_ns": ("ns/page", "reading an absent file page from disk into the page cache at a fault (page cache cold), "
                                "on top of the fault itself"),
    "writeback_ns": ("ns/page", "writing one dirty page of a file on a disk filesystem back (fdatasync), by the flusher "
                                "or by a dirtier that balance_dirty_pages throttles"),
    "munlock_present_ns": ("ns/page", "munlock of a present mlocked page (munlock() of a populated range)"),
    "walk_absent_ns": ("ns/page", "follow_page of one absent address: a page-table walk finding nothing"),
    "pte_none_ns": ("ns/page", "stepping over one pte_none entry in a pte walk"),
    "empty_table_ns": ("ns/table", "stepping over one pmd_none entry (2 MiB with no page table) in walk_page_range; a pud_none entry skips 1 GiB for nothing"),
    "zap_present_ns": ("ns/page", "unmap and free one present page that is not mlocked, at exit or munmap"),
    "zap_munlock_ns": ("ns/page", "5.18+: munlock of an mlocked page as its pte is zapped (mlock_count, LRU move; "
                                  "no walk of its own), on top of zap_present_ns"),
    "reclaim_ns": ("ns/page", "reclaim dropping one clean page-cache page to make a page free"),
    "swap_out_ns": ("ns/page", "reclaim writing one anonymous page to swap to make a page free (no swap: never used)"),
    "munlock_call_s": ("s", "fixed cost of one munlock() call as timed by the experiment (syscall, mlock_fixup, lru_add_drain, ctypes)"),
    "exit_base_s": ("s", "fixed cost from SIGKILL to reap of a small process"),
    "oom_kill_s": ("s", "a memory cgroup's OOM kill: from the first charge failing at the limit to the victim's SIGKILL "
                        "(reclaim retries, victim selection, the OOM report)"),
    "memcg_limit_s": ("s", "a charge failing at a memory cgroup's limit: from the first reclaim there to the charge "
                           "given up (reclaim retries; tracepoints: first memcg reclaim -> OOM invoked)"),
    "oom_kill_to_exit_s": ("s", "an OOM victim killed in its memory cgroup's charge path: from SIGKILL generated to its "
                                "do_exit (tracepoints signal_generate -> sched_process_exit); mostly the victim writing "
                                "the OOM killer's KERN_ERR 'Killed process' line to the console, where console_loglevel "
                                "lets it through (mm/oom_kill.c __oom_kill_process), so it depends on the console"),
}


@dataclasses.dataclass(frozen=True)
class Cost:
    """One cost: central value and interval, and where it came from."""

    value: float
    lo: float
    hi: float
    source: str = ""

    def __post_init__(self) -> None:
        if not (0 <= self.lo <= self.value <= self.hi):
            raise ValueError(f"cost interval must satisfy 0 <= lo <= value <= hi, got {self.lo}, {self.value}, {self.hi}")


@dataclasses.dataclass(frozen=True)
class Profile:
    """Per-operation costs of one machine plus its memory as a test starts (for reclaim, swap and OOM:
    see memory.py). Anonymous memory can only be reclaimed to swap; with `swap_bytes` 0 it never is."""

    name: str
    costs: Mapping[str, Cost]
    ram_bytes: int
    free_bytes: int  # MemFree before a test starts
    source: str = ""
    page_cache_bytes: int = 0  # clean page cache reclaim can drop (reclaim_ns per page)
    other_anon_bytes: int = 0  # other tasks' anonymous memory: swappable with swap; freed only by killing them without
    swap_bytes: int = 0  # free swap (swap_out_ns per page written)
    min_free_bytes: int = 0  # min watermark (vm.min_free_kbytes): only TIF_MEMDIE allocations go below it
    memory_source: str = ""  # where the memory figures come from

    def __post_init__(self) -> None:
        missing = set(OPS) - set(self.costs)
        if missing:
            raise ValueError(f"profile {self.name} lacks costs: {', '.join(sorted(missing))}")

    def __getitem__(self, op: str) -> float:
        return self.costs[op].value

    def price(self, counts: Mapping[str, float]) -> tuple[float, float, float]:
        """Seconds for operation counts: (value, lo, hi). ns-priced ops are scaled to seconds."""
        v = lo = hi = 0.0
        for op, n in counts.items():
            if not n:
                continue
            c = self.costs[op]
            scale = 1e-9 if op.endswith("_ns") else 1.0
            v += n * c.value * scale
            lo += n * c.lo * scale
            hi += n * c.hi * scale
        return v, lo, hi

    def replace(self, **values: float) -> Profile:
        """A copy with some costs set to exact values (interval collapsed): for sweeps and tests."""
        costs = dict(self.costs)
        for k, v in values.items():
            if k not in OPS:
                raise KeyError(k)
            costs[k] = Cost(v, v, v, "set by caller")
        return dataclasses.replace(self, costs=costs)

    def table(self):
        """One row per cost (tidy), for notebooks and `mmlab calibrate`."""
        import pandas as pd

        return pd.DataFrame([{"profile": self.name, "cost": k, "unit": OPS[k][0], "value": c.value, "lo": c.lo,
                              "hi": c.hi, "source": c.source, "meaning": OPS[k][1]} for k, c in self.costs.items()])

    def to_dict(self) -> dict:
        return {"name": self.name, "ram_bytes": self.ram_bytes, "free_bytes": self.free_bytes, "source": self.source,
                **{k: getattr(self, k) for k in MEMORY_FIELDS},
                "costs": {k: dataclasses.asdict(c) for k, c in self.costs.items()}}

    @classmethod
    def from_dict(cls, d: Mapping) -> Profile:
        """A profile from its JSON form. A file saved before a cost existed (a host profile from an older
        mmlab) takes that cost from the shipped reference, saying so in its source; except zap_munlock_ns,
        which such a file priced as its own munlock_present_ns (its zap_present_ns was fitted on that basis)."""
        costs = {k: Cost(**c) for k, c in d["costs"].items()}
        if "zap_munlock_ns" not in costs and "munlock_present_ns" in costs:
            mun = costs["munlock_present_ns"]
            costs["zap_munlock_ns"] = dataclasses.replace(mun, source=f"as munlock_present_ns (older file): {mun.source}")
        missing = set(OPS) - set(costs)
        if missing and d.get("name") != "reference":
            ref = reference().costs
            costs.update({k: dataclasses.replace(ref[k], source=f"prior (reference, not in this file): {ref[k].source}")
                          for k in missing})
        memory = {k: d[k] for k in MEMORY_FIELDS if k in d}
        if "memory_source" not in d:  # a file from before these fields: no page cache, swap or others counted
            memory["memory_source"] = "RAM and free memory from this file; page cache, other tasks' memory and swap not recorded (0)"
        return cls(name=d["name"], ram_bytes=int(d["ram_bytes"]), free_bytes=int(d["free_bytes"]),
                   source=d.get("source", ""), costs=costs, **memory)

    def memory_table(self):
        """The memory the profile states, one row per figure, for notebooks."""
        import pandas as pd

        return pd.DataFrame([{"profile": self.name, "memory": k, "bytes": getattr(self, k),
                              "GiB": round(getattr(self, k) / _GIB, 3)} for k in ("ram_bytes", "free_bytes", *MEMORY_FIELDS[:-1])]
                            ).assign(source=self.memory_source)

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: Path | str) -> Profile:
        return cls.from_dict(json.loads(Path(path).read_text()))


def memory_from_meminfo(mem: Mapping[str, int], min_free_bytes: int = 0) -> dict:
    """A machine's memory as the profile states it, from /proc/meminfo values in bytes (procfs.meminfo):
    free = MemFree, clean page cache = Active(file) + Inactive(file) less Dirty, other tasks' anonymous
    memory = AnonPages, swap = SwapFree."""
    cache = mem.get("Active(file)", 0) + mem.get("Inactive(file)", 0) - mem.get("Dirty", 0)
    return {"ram_bytes": int(mem.get("MemTotal", 0)), "free_bytes": int(mem.get("MemFree", 0)),
            "page_cache_bytes": max(0, int(cache)), "other_anon_bytes": int(mem.get("AnonPages", 0)),
            "swap_bytes": int(mem.get("SwapFree", 0)), "min_free_bytes": int(min_free_bytes),
            "memory_source": "/proc/meminfo when the profile was made: MemFree, Active+Inactive(file) less Dirty, "
                             "AnonPages, SwapFree; min watermark from vm.min_free_kbytes"}


MEMORY_FIELDS = ("page_cache_bytes", "other_anon_bytes", "swap_bytes", "min_free_bytes", "memory_source")
REFERENCE_PATH = paths.REFERENCE_DIR / "profile-reference.json"

_GIB = 1 << 30
_MIB = 1 << 20


def desktop_2009() -> Profile:
    """A 2009 desktop like the one Wakabayashi may have used; his mail gives no machine, so every value
    is stated from period hardware, not fitted to his times (notebook 07 shows how the answer moves
    across each value's plausible range).

    Costs are for a kernel of that time's per-page work on a Core 2 Duo (~3 GHz, DDR2-800, ~5 GB/s
    write bandwidth) with a 7200 rpm SATA disk for swap. Memory: 2 GiB RAM with a GNOME desktop
    running: 256 MiB free, 768 MiB clean page cache, 640 MiB of other tasks' anonymous memory, the rest
    kernel; 2 GiB of swap (distribution installers of the time made swap about the size of RAM).
    """
    c = {
        "fault_zero_ns": Cost(1300, 900, 2000, "clear_page 4 KiB at ~5 GB/s = 0.8 us + ~0.5 us trap/alloc/pte/LRU on a 2009 core"),
        "populate_mlock_ns": Cost(1500, 1000, 2500, "fault_zero + mlock_vma_page and GUP bookkeeping (~0.2 us)"),
        "zero_page_ns": Cost(500, 300, 900, "a fault without zeroing: trap + pte, ~0.4-0.6 us on a 2009 core"),
        "file_fault_ns": Cost(600, 300, 1000, "a fault mapping a cached page: like zero_page plus page-cache lookup"),
        "cow_ns": Cost(1800, 1200, 2800, "copy 4 KiB (read+write at ~3 GB/s = 1.3 us) + fault"),
        "file_write_fault_ns": Cost(800, 500, 1500, "a fault mapping a cached page, plus set_page_dirty and dirty accounting"),
        "file_read_ns": Cost(60_000, 40_000, 10_000_000, "a 7200 rpm disk: ~70 MB/s sequential with readahead (60 us per "
                                                         "4 KiB); a random read costs a seek, ~10 ms"),
        "writeback_ns": Cost(60_000, 40_000, 200_000, "a 7200 rpm disk writing back 4 KiB at ~70 MB/s sequential, 20 MB/s "
                                                      "seeky"),
        "munlock_present_ns": Cost(200, 130, 350, "Babka 2013: 3.12 munlock 1.92 s / 14.7 M pages = 131 ns; x1.5 for a 2009 CPU"),
        "walk_absent_ns": Cost(100, 56, 300, "Broz 2021: >=56 ns per follow_page on a debug 5.10 kernel; 2009 CPU slower"),
        "pte_none_ns": Cost(3, 1, 10, "a load and a test per pte; not important for the 2009 figures"),
        "empty_table_ns": Cost(1, 0, 10, "walk_page_range skips a pmd_none entry; not used for the 2009 figures"),
        "zap_present_ns": Cost(400, 250, 700, "zap_pte_range + free to the buddy allocator: 240 ns measured here on 6.18, x1.5 for 2009"),
        "zap_munlock_ns": Cost(200, 130, 350, "not used for 2009 (no 5.18 era then); as munlock_present_ns"),
        "reclaim_ns": Cost(1500, 700, 5000, "shrink_page_list dropping a clean page-cache page: a microsecond or two on a 2009 core"),
        "swap_out_ns": Cost(82_000, 40_000, 200_000, "swap-out of 4 KiB at ~50 MB/s effective (7200 rpm disk, clustered writes "
                                                     "interleaved with seeks); 100 MB/s sequential best case, 20 MB/s seeky worst"),
        "munlock_call_s": Cost(2e-6, 1e-6, 5e-6, "system call entry/exit on a 2009 CPU"),
        "exit_base_s": Cost(1e-3, 0.5e-3, 3e-3, "fork/exit/wait of a small process on a 2009 desktop, about a millisecond"),
        "oom_kill_s": Cost(5e-3, 1e-3, 50e-3, "a memcg OOM kill (reclaim retries, selection, report): a few ms as measured "
                                              "here on 6.18, wide; not used for Wakabayashi's test (no memory cgroup)"),
        "memcg_limit_s": Cost(1e-3, 0.1e-3, 10e-3, "reclaim retries before a memcg charge fails: under a millisecond as "
                                                   "traced here on 6.18, wide; not used for Wakabayashi's test (no memory cgroup)"),
        "oom_kill_to_exit_s": Cost(5e-3, 1e-3, 50e-3, "a memcg OOM victim's SIGKILL to do_exit: a few ms as traced here on "
                                                      "6.18, wide; not used for Wakabayashi's test (no memory cgroup)"),
    }
    return Profile("desktop-2009", c, ram_bytes=2 * _GIB, free_bytes=256 * _MIB, page_cache_bytes=768 * _MIB,
                   other_anon_bytes=640 * _MIB, swap_bytes=2 * _GIB, min_free_bytes=5792 << 10,
                   memory_source="stated for a 2 GiB GNOME desktop of 2009, not measured: free + clean cache 1 GiB, "
                                 "other tasks 640 MiB, swap 2 GiB; min watermark from min_free_kbytes = sqrt(16 x lowmem KiB)",
                   source="stated from 2009 hardware; not fitted (mmlab.sim.profile.desktop_2009)")


def reference() -> Profile:
    """The default profile shipped in data/reference (fitted on the reference machine)."""
    return Profile.load(REFERENCE_PATH)


def host_path(tag: str | None = None) -> Path:
    """Where `mmlab calibrate` saves this machine's profile (host tag, not hostname): beside the stored runs
    it is fitted from, in the git-ignored runs folder; only the reference profile is tracked."""
    from mmlab.core.store import host_tag

    return paths.runs_dir() / f"profile-{tag or host_tag()}.json"


NAMED = ("reference", "desktop-2009", "host")


def by_name(name: str) -> Profile:
    """A profile by name (`reference`, `desktop-2009`, `host`) or by path to a JSON file."""
    if name == "reference":
        return reference()
    if name == "desktop-2009":
        return desktop_2009()
    if name == "host":
        p = host_path()
        if not p.exists():
            raise ParamError("profile", name, "reference | desktop-2009 | host | a profile .json path",
                             f"has no calibrated file yet ({p.name}); run `mmlab calibrate`")
        return Profile.load(p)
    p = Path(name)
    if p.suffix == ".json" and p.exists():
        # a profile path is confined to the project's folders (mmlab often runs as root),
        # and a file that is not a profile is one line naming the parameter, not a traceback
        from mmlab.kernel.confine import inside

        p = inside("profile", name)
        try:
            return Profile.load(p)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ParamError("profile", name, "reference | desktop-2009 | host | a profile .json path",
                             f"is not a readable profile ({type(e).__name__}: {' '.join(str(e).split())})") from None
    raise ParamError("profile", name, "reference | desktop-2009 | host | a profile .json path", "is not a known profile")
