"""File mappings in the kernel eras: what mlock, munlock and exit did to the pages of a private or shared
file mapping, priced per page from the `file-mapping` experiment on this machine.

Which era a kernel version belongs to, and its behaviours `file_gup` and `exit_munlock` with their
sources, come from eras.py (`behaviour_for` reads them). What those behaviours do to file pages, with
the sources of that (file:function@version as read in the trees named, or the commit):
- mlock populates a VM_WRITE VMA with write-GUP until 2.6.38: mm/mlock.c:__mlock_vma_pages_range@2.6.31.3
  (`if (vma->vm_flags & VM_WRITE) gup_flags = GUP_FLAGS_WRITE`) and @2.6.32.9 (`gup_flags |= FOLL_WRITE`).
  The write fault on an absent file page, mm/memory.c:__do_fault@2.6.31.3: private (!VM_SHARED) allocates
  an anonymous page and copy_user_highpage()s the page-cache page into it (COW); shared calls
  ->page_mkwrite, maps the pte dirty, set_page_dirty() and balance_dirty_pages_ratelimited() (the dirtier
  is throttled once dirty pages pass vm_dirty_ratio = 20, mm/page-writeback.c@2.6.31.3).
- Since 5ecfda041e4b "mlock: avoid dirtying pages and triggering writeback" (Michel Lespinasse, January
  2011, first in 2.6.38) mlock write-faults only when (vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE: a
  private writable mapping is still COWed page by page, a shared one is read-faulted and stays clean;
  today mm/gup.c:populate_vma_page_range (the running 6.18 does this: the experiment's rows show it).
- munlock before 408e82b78bcc ("mm: munlock use follow_page", 2.6.32) ran the same loop,
  __mlock_vma_pages_range(vma, start, end, 0), with GUP_FLAGS_IGNORE_VMA_PERMISSIONS | IGNORE_SIGKILL and,
  on VM_WRITE, GUP_FLAGS_WRITE (the lines 408e82b78bcc removes). follow_page(FOLL_WRITE) fails on a pte
  without write permission (mm/memory.c:follow_page@2.6.31.3), so every absent page is write-faulted
  (COWed or dirtied) and every shared page whose pte writeback write-protected since mlock is write-faulted
  again and re-dirtied (writeback cleans through mm/page-writeback.c:clear_page_dirty_for_io -> page_mkclean,
  which pte_wrprotect()s every mapping, @2.6.31.3); munlock_vma_pages_all() at exit does the same. tmpfs
  has no dirty accounting or writeback (shmem_backing_dev_info: BDI_CAP_NO_ACCT_AND_WRITEBACK, mm/shmem.c
  @2.6.31.3): nothing is throttled or written back there.
- From 408e82b78bcc munlock is follow_page(FOLL_GET[|FOLL_DUMP]) per address: no fault, nothing dirtied
  (mm/mlock.c:munlock_vma_pages_range@2.6.32.9; 2.6.31.3 carries it as a stable backport, eras.py).
- From 5.18 munlock() walks ptes (34b6792380ce) and exit_mmap has no munlock pass: pages are munlocked as
  their ptes are zapped (a213e5cf71cb).

Costs are this machine's, measured on 6.18 (`FileCosts`: medians of the experiment's rows, 95% bootstrap
intervals): what an old kernel's path did per page is priced as the same path costs today. Stated priors, not
measured here: the munlock of a present page is 6.18's munlock of it times the era's `munlock_factor` (eras.py:
Babka's 3.11 -> 3.12 gain, a prior for older kernels); an absent address
walked by follow_page at `walk_absent_ns` and a pte_none step at `pte_none_ns` (machine profile); the dirty
threshold is 20% of the profile's free memory.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from mmlab.core import paths
from mmlab.core.params import ParamError, choice, flag, size
from mmlab.core.units import PAGE_BYTES
from mmlab.sim import memory
from mmlab.sim.eras import era_for
from mmlab.sim.profile import Cost
from mmlab.sim.scenario import Scenario, SimParams

NAME = "file-mapping"
FILESYSTEMS = ("disk", "tmpfs")
MAPPINGS = ("private", "shared")
CACHES = ("cold", "warm")
COSTS_PATH = paths.REFERENCE_DIR / "file-costs-reference.json"


@dataclasses.dataclass(frozen=True)
class FileBehaviour:
    """What one era did to file pages at mlock, munlock and exit: read from the era's sourced facts
    (eras.py `file_gup`, `exit_munlock`), so a version maps to the same era everywhere."""

    name: str
    versions: str
    mlock_write: str  # "VM_WRITE": write-GUP whenever VM_WRITE | "private": only private writable
    munlock: str  # "write-gup" | "follow-page" | "pte-walk"
    exit_munlock_pass: bool  # munlock_vma_pages_all in exit_mmap before the unmap
    exit_fault_completes: bool  # False: an exit-time fault never completes (2.6.31-mmotm with KSM)
    munlock_factor: float  # the era's cost of munlocking a present page relative to this kernel (eras.py)
    source_mlock: str
    source_munlock: str


_MUNLOCK = {"gup-write-fault": "write-gup", "follow-page": "follow-page", "follow-page-pagevec": "follow-page",
            "none": "pte-walk"}
# kernels whose file-mapping behaviours differ, for era comparisons (each the first of its kind)
COMPARE_KERNELS = ("2.6.31", "2.6.32", "2.6.38", "6.18")


def behaviour_for(version: str) -> FileBehaviour:
    """The file-mapping behaviour of a kernel version or era name (eras.era_for: ParamError naming `kernel`
    for a version no era covers)."""
    era = era_for(version)
    gup, munlock = era.facts["file_gup"], era.facts["exit_munlock"]
    return FileBehaviour(era.name, era.versions, "VM_WRITE" if gup.value == "VM_WRITE" else "private",
                         _MUNLOCK[munlock.value], era.exit_munlock is not None, era.exit_fault_completes,
                         era.munlock_factor, gup.source, munlock.source)


# ------------------------------------------------------------------------------------------ costs
@dataclasses.dataclass(frozen=True)
class FileCosts:
    """Per-page costs (ns) of the file-mapping experiment's operations, keyed by
    (operation, filesystem, mapping, page_cache)."""

    costs: Mapping[tuple[str, str, str, str], Cost]
    source: str = ""

    def get(self, op: str, fs: str, mapping: str, cache: str) -> Cost:
        try:
            return self.costs[(op, fs, mapping, cache)]
        except KeyError:
            raise ParamError("page_cache", cache, "warm on tmpfs; cold or warm on disk",
                             f"has no measured {op} cost for a {mapping} mapping on {fs}") from None

    @classmethod
    def from_rows(cls, rows: pd.DataFrame, source: str = "") -> FileCosts:
        """Median of ns_per_page per point and operation with its 95% bootstrap interval (the median itself
        where there is one row), warm-ups left out."""
        from mmlab.core.stats import bootstrap_ci, measured_rows

        d = measured_rows(rows[(rows["experiment"] == NAME) & (rows["method"] == "real")])
        out = {}
        for key, g in d.groupby(["operation", "filesystem", "mapping", "page_cache"]):
            x = g["ns_per_page"].astype(float).to_numpy()
            med = float(pd.Series(x).median())
            lo, hi = bootstrap_ci(x) if len(x) > 1 else (med, med)
            out[tuple(key)] = Cost(med, min(lo, med), max(hi, med),
                                   f"file-mapping {'/'.join(key)}: median of {len(x)} rows, 95% bootstrap interval")
        return cls(out, source)

    def over(self, fallback: FileCosts) -> FileCosts:
        """These costs, with `fallback`'s where these have none (say, points a run did not measure)."""
        return FileCosts({**fallback.costs, **self.costs}, f"{self.source}; the rest from: {fallback.source}")

    def to_dict(self) -> dict:
        return {"source": self.source, "costs": [{"operation": k[0], "filesystem": k[1], "mapping": k[2],
                                                  "page_cache": k[3], **dataclasses.asdict(c)} for k, c in self.costs.items()]}

    @classmethod
    def from_dict(cls, d: Mapping) -> FileCosts:
        costs = {(c["operation"], c["filesystem"], c["mapping"], c["page_cache"]):
                 Cost(c["value"], c["lo"], c["hi"], c.get("source", "")) for c in d["costs"]}
        return cls(costs, d.get("source", ""))

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: Path | str = COSTS_PATH) -> FileCosts:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def table(self) -> pd.DataFrame:
        """One row per measured cost (tidy), for notebooks."""
        return pd.DataFrame([{"operation": k[0], "filesystem": k[1], "mapping": k[2], "page_cache": k[3],
                              "ns_per_page": c.value, "lo": c.lo, "hi": c.hi, "source": c.source}
                             for k, c in sorted(self.costs.items())])


# ------------------------------------------------------------------------------------------ the model
class _Bill:
    """Seconds (value, lo, hi) summed from per-page costs."""

    def __init__(self) -> None:
        self.v = self.lo = self.hi = 0.0

    def add(self, pages: float, c: Cost | float) -> None:
        if not pages:
            return
        if not isinstance(c, Cost):
            c = Cost(c, c, c)
        self.v += pages * c.value * 1e-9
        self.lo += pages * c.lo * 1e-9
        self.hi += pages * c.hi * 1e-9

    def __iadd__(self, other: _Bill) -> _Bill:
        self.v, self.lo, self.hi = self.v + other.v, self.lo + other.lo, self.hi + other.hi
        return self


def _less(a: Cost, b: Cost) -> Cost:
    v = max(0.0, a.value - b.value)
    return Cost(v, min(v, max(0.0, a.lo - b.hi)), max(v, a.hi - b.lo))


def run(b: FileBehaviour, costs: FileCosts, *, mapping: str, fs: str, cache: str, writable: bool, vma_pages: int,
        populated_pages: int, writeback_before_munlock: bool, free_bytes: int, walk_absent_ns: float,
        pte_none_ns: float, anon_room_bytes: int | None = None) -> dict:
    """The physics of one point as a flat dict: mlock of `populated_pages` (all of the VMA, or as far as a
    SIGKILL let it get), then either munlock() of the whole VMA or exit with it still VM_LOCKED.

    `anon_room_bytes`: anonymous memory the machine can still give (free, clean page cache dropped, swap);
    COW copies beyond it cannot be made, and the row's `outcome` says `out-of-memory` with no time for
    the step that needed them (what each era's OOM killer did next: sigkill-during-mlock). None = unbounded."""
    c = lambda op: costs.get(op, fs, mapping, cache)  # noqa: E731
    shared = mapping == "shared"
    P, U = populated_pages, vma_pages - populated_pages
    write_gup_mlock = writable and (b.mlock_write == "VM_WRITE" or not shared)
    # the mlock bookkeeping on top of a read fault, measured as mlock less MADV_POPULATE_READ of a shared mapping
    mlock_extra = _less(costs.get("mlock", fs, "shared", cache), costs.get("populate_read", fs, "shared", cache))
    dirty_limit = memory.dirty_limit(free_bytes) if fs == "disk" else None  # tmpfs: no dirty accounting
    writeback = c("writeback") if shared and fs == "disk" else Cost(0, 0, 0)

    mlock, dirtied_mlock, cowed_mlock = _Bill(), 0, 0
    if write_gup_mlock and not shared:
        mlock.add(P, c("mlock"))  # the measured mlock: this kernel COWs a private writable mapping too
        cowed_mlock = P
    elif write_gup_mlock:
        mlock.add(P, c("populate_write"))
        mlock.add(P, mlock_extra)
        dirtied_mlock = P
    elif shared:
        mlock.add(P, c("mlock"))
    else:
        mlock.add(P, c("populate_read"))
        mlock.add(P, mlock_extra)
    throttled_mlock = memory.throttled(dirty_limit, 0, dirtied_mlock) if dirty_limit is not None else 0
    mlock.add(throttled_mlock, writeback)

    # the munlock pass: munlock() of the VMA, or munlock_vma_pages_all at exit
    munlock, faulted, cowed, dirtied = _Bill(), 0, 0, 0
    m = c("munlock")
    munlock.add(P, Cost(m.value * b.munlock_factor, m.lo * b.munlock_factor, m.hi * b.munlock_factor))
    if b.munlock == "write-gup":
        if writable and shared and fs == "disk" and writeback_before_munlock:
            munlock.add(P, c("redirty_after_writeback"))
            dirtied += P
        if writable and not shared:
            munlock.add(U, c("populate_write"))
            cowed += U
        elif writable:
            munlock.add(U, c("populate_write"))
            dirtied += U
        else:
            munlock.add(U, c("populate_read"))
        faulted = U
    elif b.munlock == "follow-page":
        munlock.add(U, walk_absent_ns)
    else:
        munlock.add(U, pte_none_ns)
    # dirty pages when the pass starts: none if writeback ran since mlock, else those mlock dirtied
    base = 0 if writeback_before_munlock else dirtied_mlock
    throttled = memory.throttled(dirty_limit, base, dirtied) if dirty_limit is not None else 0
    munlock.add(throttled, writeback)

    exit_ = _Bill()
    if b.exit_munlock_pass:
        exit_ += munlock
        exit_.add(P + faulted, c("munmap"))
    else:
        exit_.add(P, c("munmap_locked"))
    hung = faulted > 0 and not b.exit_fault_completes  # GUP retries an exit-time fault forever: no exit time
    room = math.inf if anon_room_bytes is None else anon_room_bytes / PAGE_BYTES
    oom_mlock, oom_exit = cowed_mlock > room, cowed_mlock + cowed > room
    outcome = "out-of-memory at mlock" if oom_mlock else "out-of-memory at exit" if oom_exit else \
        "hung" if hung else "exited"
    nan = (math.nan,) * 3
    if oom_mlock:
        mlock.v, mlock.lo, mlock.hi = nan
    if oom_mlock or oom_exit:
        munlock.v, munlock.lo, munlock.hi = nan
    if outcome != "exited":
        exit_.v, exit_.lo, exit_.hi = nan
    all_dirtied = dirtied_mlock + dirtied
    wb = _Bill()
    wb.add(all_dirtied, writeback)
    return {
        "mlock_write_faults": write_gup_mlock, "munlock_pass": b.munlock,
        "mlock_s": mlock.v, "mlock_s_lo": mlock.lo, "mlock_s_hi": mlock.hi,
        "munlock_s": munlock.v, "munlock_s_lo": munlock.lo, "munlock_s_hi": munlock.hi,
        "outcome": outcome, "exit_s": exit_.v, "exit_s_lo": exit_.lo, "exit_s_hi": exit_.hi,
        "mlock_pages_cowed": cowed_mlock, "mlock_pages_dirtied": dirtied_mlock,
        "munlock_pages_faulted": faulted, "munlock_pages_cowed": cowed, "munlock_pages_dirtied": dirtied,
        "anon_bytes_needed": (cowed_mlock + cowed) * PAGE_BYTES,
        "written_back_bytes": all_dirtied * PAGE_BYTES if fs == "disk" else 0,
        "writeback_s": wb.v, "writeback_s_lo": wb.lo, "writeback_s_hi": wb.hi,
        "throttled_pages": throttled_mlock + max(0, throttled),
        "source_mlock": b.source_mlock, "source_munlock": b.source_munlock,
    }


@dataclasses.dataclass(frozen=True)
class FileMappingParams(SimParams):
    mapping: str = choice("shared", MAPPINGS, "MAP_PRIVATE | MAP_SHARED file mapping")
    filesystem: str = choice("disk", FILESYSTEMS, "the file on a disk filesystem or on tmpfs")
    page_cache: str = choice("warm", CACHES, "the file's pages before mlock: cold (on disk only) | warm")
    writable: bool = flag(True, "VM_WRITE: PROT_READ|PROT_WRITE (else PROT_READ)")
    vma_bytes: int = size("1GiB", "size of the mapping (and of the file)", hi=1 << 44)
    populated_bytes: int = size("1GiB", "bytes mlock populated before it returned or a SIGKILL stopped it", lo=0, hi=1 << 44)
    writeback_before_munlock: bool = flag(True, "shared on disk: writeback cleaned and write-protected the pages "
                                          "between mlock and munlock (dirty pages are written within ~30 s)")
    costs: str = choice("reference", ("reference", "host"), "per-page file costs: reference (measured on the reference "
                        "machine) | host (fitted here from stored file-mapping runs)")

    def check(self) -> None:
        super().check()
        if self.populated_bytes > self.vma_bytes:
            raise ParamError("populated_bytes", self.populated_bytes, f"at most vma_bytes ({self.vma_bytes})", "exceeds the VMA")
        if self.filesystem == "tmpfs" and self.page_cache == "cold":
            raise ParamError("page_cache", "cold", "warm on tmpfs", "cannot exist: tmpfs pages live only in the page cache")


def anon_room(prof) -> int:
    """Anonymous memory the profile's machine can give a task: free memory, plus clean page cache reclaim
    can drop and free swap where the profile states them (an older profile states free memory only)."""
    return int(prof.free_bytes + getattr(prof, "page_cache_bytes", 0) + getattr(prof, "swap_bytes", 0))


def simulate(p: FileMappingParams) -> pd.DataFrame:
    """One tidy row for the kernel `p.kernel`."""
    return pd.DataFrame([_row(p, behaviour_for(p.kernel))])


def _row(p: FileMappingParams, b: FileBehaviour, costs: FileCosts | None = None) -> dict:
    prof = p.machine()
    row = run(b, costs or costs_by_name(p.costs), mapping=p.mapping, fs=p.filesystem, cache=p.page_cache, writable=p.writable,
              vma_pages=math.ceil(p.vma_bytes / PAGE_BYTES), populated_pages=math.ceil(p.populated_bytes / PAGE_BYTES),
              writeback_before_munlock=p.writeback_before_munlock, free_bytes=prof.free_bytes,
              walk_absent_ns=prof["walk_absent_ns"], pte_none_ns=prof["pte_none_ns"], anon_room_bytes=anon_room(prof))
    return {"experiment": NAME, "method": "simulated", "kernel": p.kernel, "era": b.name, "versions": b.versions,
            "profile": p.profile, "mapping": p.mapping, "filesystem": p.filesystem, "page_cache": p.page_cache,
            "writable": p.writable, "vma_bytes": p.vma_bytes, "populated_bytes": p.populated_bytes,
            "writeback_before_munlock": p.writeback_before_munlock, **row}


def compare_eras(values: Mapping[str, object] | None = None, costs: FileCosts | None = None,
                 kernels: tuple[str, ...] = COMPARE_KERNELS) -> pd.DataFrame:
    """One row per kernel (default: one of each file-mapping behaviour) at the same parameters, priced with
    `costs` (default: the shipped reference costs)."""
    p = FileMappingParams.from_mapping({k: v for k, v in (values or {}).items() if k != "kernel"})
    return pd.DataFrame([_row(dataclasses.replace(p, kernel=k), behaviour_for(k), costs) for k in kernels])


def behaviours_table(kernels: tuple[str, ...] = COMPARE_KERNELS) -> pd.DataFrame:
    """Each kernel's era, its version ranges and what it did to file pages, with the sources (eras.py)."""
    rows = []
    for k in kernels:
        b = behaviour_for(k)
        rows.append({"kernel": k, "era": b.name, "versions": b.versions,
                     "mlock write-faults": "every VM_WRITE VMA" if b.mlock_write == "VM_WRITE" else
                     "private writable VMAs only", "munlock pass": b.munlock, "exit munlock pass": b.exit_munlock_pass,
                     "source (mlock)": b.source_mlock, "source (munlock)": b.source_munlock})
    return pd.DataFrame(rows)


def host_costs_path() -> Path:
    """Where `calibrate` saves this machine's file costs: beside the stored runs (git-ignored), as the host
    profile is; only the reference costs are tracked."""
    from mmlab.core.store import host_tag

    return paths.runs_dir() / f"file-costs-{host_tag()}.json"


def costs_by_name(name: str) -> FileCosts:
    """`reference` (shipped, measured on the reference machine) or `host` (fitted here by `calibrate`)."""
    if name == "host":
        path = host_costs_path()
        if not path.exists():
            raise ParamError("costs", name, "reference | host", f"has no fitted file yet ({path.name}): run the "
                             "file-mapping experiment, then mmlab.sim.file_mapping.calibrate()")
        return FileCosts.load(path)
    return FileCosts.load()


def calibrate(rows: pd.DataFrame | None = None, out_path: Path | str | None = None) -> tuple[FileCosts, Path]:
    """Fit FileCosts from stored file-mapping runs (default: every stored run) and save them (default:
    `host_costs_path()`)."""
    if rows is None:
        from mmlab.core.store import load

        rows = load(experiment=NAME)
    costs = FileCosts.from_rows(rows, source="fitted from stored file-mapping runs on this machine")
    return costs, costs.save(out_path or host_costs_path())


SCENARIO = Scenario(NAME, "mlock of a private or shared file mapping, then munlock() or exit, per kernel era: "
                          "pages COWed, dirtied, written back, and seconds", FileMappingParams, simulate)
