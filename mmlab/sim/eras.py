"""Kernel eras of the munlock-at-exit and OOM paths: each era a set of behaviours, each behaviour sourced.

An era covers the kernel versions (`ranges`) whose sources show the same behaviours; `era_for` picks the
era whose range holds a version and refuses a version no era covers (a release between two verified
points, or the -rc releases of a release where a behaviour changed), so a version is never priced with
behaviour it did not have. Variants (`variant_of`) are named alternatives where sources disagree or
describe a tree that was never released; they are chosen by name (`-p kernel 2.6.31-rc`).

Every behaviour carries a source: a commit id and subject, a kernel file and function at a version, or
an LKML Message-ID (lore.kernel.org/linux-mm/<id>/). Trees read: mainline history through v2.6.31 and
v2.6.32.9 (GitHub buglabs/bug20-2.6.31-omap, dandel/linux-2.6.32.y), release trees 2.6.31.3
(jz47xx/linux-2.6.31.3), 2.6.31.12 (darion76/linux-sharp-netwalker-2.6.31), 2.6.34, 2.6.35.6, 2.6.36.4,
2.6.38, 3.11, 4.6.2, 4.7.4, 4.8.15, 4.9 (urbanspr1nter/linux-2.6.34, rivsidn/linux-2.6.35.6,
galeksandrp-keenetic/linux-2.6.36, zekezang/linux-2.6.38, PKUCloud/linux-3.11-cloud, xing393939/linux-4.6.2,
calebwilliamsd/linux-4.7.4-casio, squirrel20/linux-4.8.15, pengdonglin137/linux-4.9). See also
kernel-history.md in the shared folder beside the project.
"""
from __future__ import annotations

import dataclasses
import re
from collections import Counter
from typing import Protocol

from mmlab.core.params import ParamError
from mmlab.sim import era_facts as f
from mmlab.sim.address_space import State, Vma

GUP_BATCH_PAGES = 16  # 2.6.31 __mlock_vma_pages_range: struct page *pages[16] per __get_user_pages call
PTRS_PER_PMD = 512  # x86-64: one PMD table maps 512 x 2 MiB = 1 GiB


@dataclasses.dataclass
class Work:
    """Operations counted by a pass over VMAs, and what it did to memory."""

    counts: Counter = dataclasses.field(default_factory=Counter)
    faulted: int = 0  # pages given a pte by this pass
    allocated: int = 0  # of which newly allocated (zeroed or copied) pages
    munlocked: int = 0  # mlocked pages munlocked
    zero_page: int = 0  # addresses answered with ZERO_PAGE (no fault, no allocation)
    dirtied: int = 0  # shared file pages this pass made dirty (page cache; reclaimable only after writeback)
    read_in: int = 0  # file pages read from disk into the page cache (page cache cold)
    limit_hit: bool = False  # an allocation failed at a memory cgroup's limit (room_pages ran out)
    never_ends: bool = False  # a fault of this pass never completes (2.6.31-mmotm exit): no time can be given

    def __iadd__(self, other: Work) -> Work:
        self.counts.update(other.counts)
        self.faulted += other.faulted
        self.allocated += other.allocated
        self.munlocked += other.munlocked
        self.zero_page += other.zero_page
        self.dirtied += other.dirtied
        self.read_in += other.read_in
        self.limit_hit = self.limit_hit or other.limit_hit
        self.never_ends = self.never_ends or other.never_ends
        return self

    def read(self, pages: int) -> None:
        """`pages` file pages read from disk into the page cache at their fault (filemap_fault)."""
        self.counts["file_read_ns"] += pages
        self.read_in += pages


class MunlockPass(Protocol):
    """How one kernel munlocks a VM_LOCKED VMA (munlock() or munlock_vma_pages_all at exit). `room_pages`:
    pages the pass may still allocate (a memory cgroup's limit); None = unlimited."""

    def __call__(self, vma: Vma, munlock_factor: float, room_pages: int | None = None) -> Work: ...


def _munlock_present(w: Work, vma: Vma, factor: float) -> None:
    locked, present = vma.count(State.LOCKED), vma.count(State.PRESENT)
    w.counts["munlock_present_ns"] += (locked + present) * factor
    w.munlocked += locked


@dataclasses.dataclass(frozen=True)
class GupFaultMunlock:
    """2.6.31 munlock (mm/mlock.c __mlock_vma_pages_range @ v2.6.31): __get_user_pages in batches of 16
    with GUP_FLAGS_IGNORE_SIGKILL and, on a VM_WRITE VMA, GUP_FLAGS_WRITE, then lru_add_drain and a page
    lock per returned page. Every absent page of a VM_WRITE VMA is faulted for writing (mm/memory.c
    __do_fault @ v2.6.31): an anonymous private page is allocated and zeroed, a private file page copied
    (COW), a shared file page write-faulted: page_mkwrite, pte dirty, set_page_dirty, so it is written back
    later. Without VM_WRITE a file page is read-faulted (no FOLL_ANON for a VMA with ->fault); a read-only
    anonymous VMA gets ZERO_PAGE from follow_page (FOLL_ANON): no fault, no allocation. A file page not in
    the page cache (`vma.cached` False) is read from disk first (`file_read_ns`). Present pages of a shared
    VMA were dirtied by mlock's own write-GUP: their ptes are writable, follow_page(FOLL_WRITE) returns them
    without a fault. Not modelled: pages the flusher wrote back while mlock ran (clear_page_dirty_for_io ->
    page_mkclean write-protects them) are write-faulted and dirtied again, so for a shared VMA populated past
    the background dirty threshold this pass is a lower bound."""

    batch_pages: int = GUP_BATCH_PAGES

    def __call__(self, vma: Vma, munlock_factor: float, room_pages: int | None = None) -> Work:
        """With `room_pages`, allocation stops there: handle_mm_fault returns VM_FAULT_OOM, __get_user_pages
        returns -ENOMEM and __mlock_vma_pages_range breaks out: the rest of the VMA is abandoned (v2.6.31)."""
        w = Work()
        _munlock_present(w, vma, munlock_factor)
        absent = vma.absent
        if not absent:
            return w
        if vma.anon and not vma.writable:
            w.counts["walk_absent_ns"] += absent
            w.zero_page += absent
            return w
        faulted = absent
        allocates = vma.anon or (vma.writable and not vma.shared)  # shared file pages are the page cache's
        if room_pages is not None and room_pages < absent and allocates:
            faulted = room_pages
            w.limit_hit = True
        if vma.anon:
            w.counts["fault_zero_ns"] += faulted
            w.allocated += faulted
        elif vma.writable and not vma.shared:
            w.counts["cow_ns"] += faulted  # __do_fault: the cached page copied into a new anonymous page
            w.allocated += faulted
        elif vma.writable:
            w.counts["file_write_fault_ns"] += faulted  # __do_fault: page_mkwrite, pte dirty, set_page_dirty
            w.dirtied += faulted
        else:
            w.counts["file_fault_ns"] += faulted  # read fault mapping the page-cache page
        if not vma.anon and not vma.cached:
            w.read(faulted)  # filemap_fault reads the page in first
        w.faulted += faulted
        return w


@dataclasses.dataclass(frozen=True)
class FollowPageMunlock:
    """408e82b78bcc (2.6.32-rc1, backported by 2.6.31.3): munlock_vma_pages_range drains the LRU once, then
    follow_page per address (FOLL_GET, with FOLL_DUMP from 2.6.32): present pages munlocked under the page
    lock, absent ones cost one page-table walk; nothing faulted or allocated. 3.12 (Babka) batches present
    pages in a pagevec and steps through present ptes of one table, but still calls follow_page_mask at
    each hole, so absent addresses cost the same walk; its gain is `munlock_factor`."""

    def __call__(self, vma: Vma, munlock_factor: float, room_pages: int | None = None) -> Work:
        w = Work()
        _munlock_present(w, vma, munlock_factor)
        w.counts["walk_absent_ns"] += vma.absent
        return w


@dataclasses.dataclass(frozen=True)
class PteWalkMunlock:
    """5.18+ munlock() (34b6792380ce): walk_page_range(mlock_pte_range) skips empty page
    tables and steps over pte_none entries; present pages munlocked (mlock_count). Each call also pays
    mlock_fixup (VMA flags, split/merge) and lru_add_drain: `munlock_call_s`; and the walk reads every
    pmd_none entry of a PMD table that exists (`empty_table_ns` each), while a pud_none entry skips a
    whole 1 GiB at once: see `empty_pmds_walked`."""

    def __call__(self, vma: Vma, munlock_factor: float, room_pages: int | None = None) -> Work:
        w = Work()
        _munlock_present(w, vma, munlock_factor)
        w.counts["pte_none_ns"] += vma.absent_in_populated_tables()
        w.counts["empty_table_ns"] += empty_pmds_walked(vma)
        return w


def empty_pmds_walked(vma: Vma) -> int:
    """pmd_none entries walk_pmd_range steps over: those in the 1 GiB blocks holding the populated tables
    (populated from the start, as mlock leaves them), plus at most one PMD table's worth (512) for the
    empty rest, whose PUD slots are empty except where the VMA's edges share a table with neighbouring
    mappings. Measured here (C, MAP_NORESERVE + MLOCK_ONFAULT, untouched): munlock() took 1.0 us at 64 MiB,
    1.45 us at 512 MiB, 1.85 us at 1 GiB and 16 GiB, 2.0 us at 64 GiB: linear up to 1 GiB, flat above."""
    tables, populated = vma.tables(), vma.populated_tables()
    in_blocks = min(tables, -(-populated // PTRS_PER_PMD) * PTRS_PER_PMD)
    return max(0, in_blocks - populated) + min(PTRS_PER_PMD, tables - in_blocks)


@dataclasses.dataclass(frozen=True)
class OomPolicy:
    """The OOM killer's choices that matter here, read by oom.py (values from the era's facts)."""

    badness: str  # "total_vm": badness() counts unfaulted mlock ranges (to 2.6.35); "rss": oom_badness (2.6.36+)
    sees_exiting_without_mm: bool  # an OOM victim past exit_mm() still blocks or is seen (TIF_MEMDIE, oom_mm); False to 2.6.35
    oom_reaper: str = "none"  # "none" | "skips-locked" (4.6-5.17) | "reaps-locked" (5.18+)
    holdoff_until: str = "exit-mm"  # "exit-mm" (invisible after exit_mm) | "exit-done" | "reaper" | "exit-mmap-start"
    memdie_alloc: str = "fail"  # "fail": VM_FAULT_OOM, munlock gives up the VMA | "retry": loops through out_of_memory
    reaper_delay_s: float = 0.0  # wake_oom_reaper at once (4.6-5.17); OOM_REAPER_DELAY = 2*HZ from e4a38402c36e (5.18)

    @property
    def memdie_alloc_fails(self) -> bool:
        return self.memdie_alloc == "fail"


@dataclasses.dataclass(frozen=True)
class Era:
    """One kernel era: its version ranges, its sourced behaviours, and the strategies the model runs."""

    name: str
    ranges: tuple[tuple[str, str | None], ...]  # [first, end) versions; end None = open; () = chosen by name only
    title: str
    facts: dict = dataclasses.field(hash=False, compare=False)  # behaviour key (f.BEHAVIOURS) -> f.Fact
    munlock: MunlockPass  # munlock() of a range
    exit_munlock: MunlockPass | None  # munlock_vma_pages_all in exit_mmap; None = munlocked as ptes are zapped
    munlock_factor: float  # cost of munlocking a present page relative to a current kernel
    oom: OomPolicy
    mlock_stops_on_fatal_signal: bool = True  # 4779280d1ea4 (2.6.29): GUP checks fatal_signal_pending per page
    exit_fault_completes: bool = True  # False: an exit-time fault installs no pte and GUP retries it forever
    variant_of: str | None = None  # the released era this variant is an alternative to

    @property
    def version(self) -> tuple[int, ...]:
        """The first version of the era's first range (for ordering)."""
        return _key(self.ranges[0][0])[0] if self.ranges else _key(self.variant_of or "0")[0]

    @property
    def versions(self) -> str:
        """The version ranges, for people: '2.6.36 to before 2.6.38-rc1', '6.1-rc1 and later'."""
        if not self.ranges:
            return "by name only"
        return ", ".join(f"{lo} to before {hi}" if hi else f"{lo} and later" for lo, hi in self.ranges)

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "versions": self.versions,
                "ranges": [list(r) for r in self.ranges], "variant_of": self.variant_of,
                "behaviours": {k: {"behaviour": f.BEHAVIOURS[k], **dataclasses.asdict(self.facts[k])} for k in f.BEHAVIOURS}}


_OLD_EXIT = dict(exit_munlock=f.GUP, absent_pages=f.FAULTED, munlock_drain=f.DRAIN_BATCH, oom_selection=f.SEL_OLD,
                 oom_reaper=f.NO_REAPER, oom_skip=f.HOLD_NONE, no_killable=f.PANIC_F, file_gup=f.FILE_W)
_FOLLOW_EXIT = dict(exit_munlock=f.FOLLOW_PAGE, absent_pages=f.WALKED, munlock_drain=f.DRAIN_CALL)
_POLICY_OLD = OomPolicy("total_vm", False)
_POLICY_2636 = OomPolicy("rss", True, holdoff_until="exit-done")

ERAS: tuple[Era, ...] = (
    Era("2.6.31-rc", (("2.6.31-rc1", "2.6.31-rc5"),),
        "2.6.31-rc1 to -rc4: as 2.6.31, but a failed TIF_MEMDIE allocation loops through the OOM killer",
        f.facts(**_OLD_EXIT, memdie_alloc=f.RETRY),
        GupFaultMunlock(), GupFaultMunlock(), f.OLD_MUNLOCK, dataclasses.replace(_POLICY_OLD, memdie_alloc="retry"),
        variant_of="2.6.31"),
    Era("2.6.31", (("2.6.30", "2.6.31-rc1"), ("2.6.31-rc5", "2.6.31.1")),
        "2.6.30, 2.6.31-rc5 to 2.6.31: exit munlock faults in what mlock never reached (before 408e82b78bcc)",
        f.facts(**_OLD_EXIT, memdie_alloc=f.FAIL_2631),
        GupFaultMunlock(), GupFaultMunlock(), f.OLD_MUNLOCK, _POLICY_OLD),
    Era("2.6.31-mmotm", (),
        "mmotm of August 2009 with KSM (the tree Hugh Dickins tested): exit-time faults never complete",
        f.facts(**{**_OLD_EXIT, "absent_pages": f.Fact("faulted-forever", "each fault installs no pte (ksm_test_exit) "
                                                  "and GUP retries it forever", f.KSM_LOOP)},
               memdie_alloc=f.FAIL_2631),
        GupFaultMunlock(), GupFaultMunlock(), f.OLD_MUNLOCK, _POLICY_OLD, exit_fault_completes=False,
        variant_of="2.6.31"),
    Era("2.6.32", (("2.6.31.3", "2.6.36-rc1"),),
        "2.6.31.3 (stable backport) and 2.6.32 to 2.6.35: munlock uses follow_page; absent pages walked, not faulted",
        f.facts(**{**_OLD_EXIT, **_FOLLOW_EXIT}, memdie_alloc=f.FAIL_LATER),
        FollowPageMunlock(), FollowPageMunlock(), f.OLD_MUNLOCK, _POLICY_OLD),
    Era("2.6.36", (("2.6.36", "2.6.38-rc1"),),
        "2.6.36 to 2.6.37: rss badness; a dying TIF_MEMDIE victim holds off further kills until its exit is done",
        f.facts(**_FOLLOW_EXIT, oom_selection=f.SEL_2636, memdie_alloc=f.FAIL_LATER, oom_reaper=f.NO_REAPER,
               oom_skip=f.HOLD_EXIT, no_killable=f.PANIC_LATER_F, file_gup=f.FILE_W),
        FollowPageMunlock(), FollowPageMunlock(), f.OLD_MUNLOCK, _POLICY_2636),
    Era("2.6.38", (("2.6.38-rc1", "3.12-rc1"),),
        "2.6.38 to 3.11: as 2.6.36; mlock write-faults only private writable file mappings",
        f.facts(**_FOLLOW_EXIT, oom_selection=f.SEL_2636, memdie_alloc=f.FAIL_LATER, oom_reaper=f.NO_REAPER,
               oom_skip=f.HOLD_EXIT, no_killable=f.PANIC_LATER_F, file_gup=f.FILE_P),
        FollowPageMunlock(), FollowPageMunlock(), f.OLD_MUNLOCK, _POLICY_2636),
    Era("3.12", (("3.12", "4.6-rc1"),),
        "3.12 to 4.5: pagevec-batched munlock (Babka); the dying victim holds off further kills until its exit is done",
        f.facts(exit_munlock=f.PAGEVEC, absent_pages=f.WALKED_312, munlock_drain=f.DRAIN_NONE, oom_selection=f.SEL_2636,
               memdie_alloc=f.FAIL_LATER, oom_reaper=f.NO_REAPER, oom_skip=f.HOLD_EXIT, no_killable=f.PANIC_LATER_F,
               file_gup=f.FILE_P),
        FollowPageMunlock(), FollowPageMunlock(), 1.0, _POLICY_2636),
    Era("4.6", (("4.6-rc1", "4.7-rc1"),),
        "4.6: OOM reaper, which skips VM_LOCKED VMAs and does nothing once the victim has passed exit_mm()",
        f.facts(exit_munlock=f.PAGEVEC, absent_pages=f.WALKED_312, munlock_drain=f.DRAIN_NONE, oom_selection=f.SEL_2636,
               memdie_alloc=f.FAIL_LATER, oom_reaper=f.REAP46, oom_skip=f.HOLD_46, no_killable=f.PANIC_LATER_F,
               file_gup=f.FILE_P),
        FollowPageMunlock(), FollowPageMunlock(), 1.0, dataclasses.replace(_POLICY_2636, oom_reaper="skips-locked")),
    Era("4.7", (("4.7", "4.9-rc1"),),
        "4.7 to 4.8: the reaper clears TIF_MEMDIE after its pass, so a slow exit munlock no longer holds off kills",
        f.facts(exit_munlock=f.PAGEVEC, absent_pages=f.WALKED_312, munlock_drain=f.DRAIN_NONE, oom_selection=f.SEL_48,
               memdie_alloc=f.FAIL_LATER, oom_reaper=f.REAP48, oom_skip=f.HOLD_48, no_killable=f.PANIC_LATER_F,
               file_gup=f.FILE_P),
        FollowPageMunlock(), FollowPageMunlock(), 1.0,
        OomPolicy("rss", True, oom_reaper="skips-locked", holdoff_until="reaper")),
    Era("4.9", (("4.9-rc1", "4.17-rc5"),),
        "4.9 to 4.16: the reaper sets MMF_OOM_SKIP after its pass, so a slow exit munlock no longer holds off kills",
        f.facts(exit_munlock=f.PAGEVEC, absent_pages=f.WALKED_312, munlock_drain=f.DRAIN_NONE, oom_selection=f.SEL_49,
               memdie_alloc=f.FAIL_LATER, oom_reaper=f.REAP49, oom_skip=f.HOLD_49, no_killable=f.PANIC_LATER_F,
               file_gup=f.FILE_P),
        FollowPageMunlock(), FollowPageMunlock(), 1.0,
        OomPolicy("rss", True, oom_reaper="skips-locked", holdoff_until="reaper")),
    Era("4.17", (("4.17-rc5", "5.18-rc1"),),
        "4.17 to 5.17: exit_mmap reaps an OOM victim and sets MMF_OOM_SKIP before munlock_vma_pages_all",
        f.facts(exit_munlock=f.PAGEVEC, absent_pages=f.WALKED_312, munlock_drain=f.DRAIN_NONE, oom_selection=f.SEL_49,
               memdie_alloc=f.FAIL_LATER, oom_reaper=f.REAP417, oom_skip=f.HOLD_417, no_killable=f.PANIC_LATER_F,
               file_gup=f.FILE_P),
        FollowPageMunlock(), FollowPageMunlock(), 1.0,
        OomPolicy("rss", True, oom_reaper="skips-locked", holdoff_until="exit-mmap-start")),
    Era("5.18", (("5.18-rc1", "6.1-rc1"),),
        "5.18 to 6.0: no munlock pass at exit (munlocked as ptes are zapped); the OOM reaper may reap mlocked VMAs",
        f.facts(exit_munlock=f.NO_PASS, absent_pages=f.SKIPPED, munlock_drain=f.DRAIN_518, oom_selection=f.SEL_49,
               memdie_alloc=f.FAIL_LATER, oom_reaper=f.REAP518, oom_skip=f.HOLD_518, no_killable=f.PANIC_LATER_F,
               file_gup=f.FILE_P),
        PteWalkMunlock(), None, 1.0,
        OomPolicy("rss", True, oom_reaper="reaps-locked", holdoff_until="exit-mmap-start", reaper_delay_s=2.0)),
    Era("6.1", (("6.1-rc1", None),),
        "6.1 and later: as 5.18; an exiting OOM victim holds off further kills until exit_mmap or the reaper is done",
        f.facts(exit_munlock=f.NO_PASS, absent_pages=f.SKIPPED, munlock_drain=f.DRAIN_518, oom_selection=f.SEL_49,
               memdie_alloc=f.FAIL_LATER, oom_reaper=f.REAP518, oom_skip=f.HOLD_61, no_killable=f.PANIC_LATER_F,
               file_gup=f.FILE_P),
        PteWalkMunlock(), None, 1.0,
        OomPolicy("rss", True, oom_reaper="reaps-locked", holdoff_until="exit-done", reaper_delay_s=2.0)),
)
BY_NAME: dict[str, Era] = {e.name: e for e in ERAS}
RELEASED: tuple[Era, ...] = tuple(e for e in ERAS if e.variant_of is None)
ERA_NAMES = tuple(e.name for e in ERAS)  # every era, variants included, oldest first
LATEST = RELEASED[-1]
def _key(text: str) -> tuple[tuple[int, ...], int]:
    """Sort key of a release: numbers, then -rcN before the release itself. `2.6.31-rc5` < `2.6.31` < `2.6.31.1`."""
    m = re.match(r"^\s*v?(\d+(?:\.\d+)*)(?:-rc(\d+))?", str(text))
    if not m:
        raise ValueError(f"{text!r} is not a kernel version")
    nums = tuple(int(p) for p in m.group(1).split("."))
    while len(nums) > 2 and nums[-1] == 0:  # 4.9.0 is 4.9
        nums = nums[:-1]
    return nums, int(m.group(2)) if m.group(2) else 1 << 30


def parse_version(text: str) -> tuple[int, ...]:
    """`6.18.44-fc-v669` -> (6, 18, 44); ValueError if it does not start with numbers."""
    m = re.match(r"^\s*v?(\d+(?:\.\d+)*)", str(text))
    if not m:
        raise ValueError(f"{text!r} is not a kernel version")
    return tuple(int(p) for p in m.group(1).split("."))


def allowed_versions() -> str:
    """The versions `era_for` accepts, for error messages: every era's ranges and the variants' names."""
    ranges = "; ".join(f"{e.name}: {e.versions}" for e in RELEASED)
    return f"{ranges}; or an era name ({', '.join(ERA_NAMES)})"


def era_for(version: str) -> Era:
    """The era whose version range holds `version` (or the era of that name, for variants). ParamError naming
    `kernel` for a version no era covers: never a neighbouring era that behaved differently."""
    text = str(version).strip()
    if text in BY_NAME:
        return BY_NAME[text]
    try:
        k = _key(text)
    except ValueError:
        raise ParamError("kernel", version, allowed_versions(), "is not a kernel version") from None
    for era in ERAS:
        for lo, hi in era.ranges:
            if _key(lo) <= k and (hi is None or k < _key(hi)):
                return era
    raise ParamError("kernel", version, allowed_versions(), "is in no era whose behaviour the sources settle")


def exit_mmap(era: Era, vma: Vma, room_pages: int | None = None) -> tuple[Work, Work]:
    """Work of exit_mmap for one VMA: (munlock pass, unmap). In eras with a pass, munlock_vma_pages_all
    runs before unmap_vmas (allocating at most `room_pages`) and what it faulted in is unmapped too; in 5.18+ zapping a pte of a VM_LOCKED
    vma munlocks the page through rmap (mlock_count), priced as `zap_munlock_ns` (no walk of its own)."""
    munlock = Work()
    after = vma
    if vma.locked and era.exit_munlock is not None:
        munlock = era.exit_munlock(vma, era.munlock_factor, room_pages)
        munlock.never_ends = bool(munlock.faulted) and not era.exit_fault_completes
        after = vma.unlocked()
    unmap = Work()
    present = after.present + munlock.faulted
    unmap.counts["zap_present_ns"] += present
    if vma.locked and era.exit_munlock is None:
        unmap.counts["zap_munlock_ns"] += after.count(State.LOCKED) * era.munlock_factor
        unmap.munlocked += after.count(State.LOCKED)
    return munlock, unmap


def table(kernels=None, behaviours=None, sources: bool = False):
    """The eras of `kernels` (versions or era names; default every era) as a DataFrame: one row per era with
    its versions and each behaviour's value or, with `sources`, one row per era and behaviour with the
    description and the source."""
    import pandas as pd

    chosen = list(dict.fromkeys(era_for(k) for k in kernels)) if kernels else list(ERAS)
    keys = list(behaviours or f.BEHAVIOURS)
    if sources:
        return pd.DataFrame([{"era": e.name, "behaviour": f.BEHAVIOURS[k], "value": e.facts[k].value,
                              "what the kernel did": e.facts[k].text, "source": e.facts[k].source}
                             for e in chosen for k in keys])
    return pd.DataFrame([{"era": e.name, "versions": e.versions, **{k: e.facts[k].value for k in keys}} for e in chosen])
