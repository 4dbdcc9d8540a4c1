"""Kernel eras of the munlock-at-exit and OOM paths, as data plus small strategy objects.

An era is chosen by version: the newest era at or below it (`era_for("6.18")` is 5.18+). Facts and
sources: /work/shared/kernel-history.md (sections in the docstrings below).
"""
from __future__ import annotations

import dataclasses
import re
from collections import Counter
from typing import Protocol

from mmlab.core.params import ParamError
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
    limit_hit: bool = False  # an allocation failed at a memory cgroup's limit (room_pages ran out)

    def __iadd__(self, other: Work) -> Work:
        self.counts.update(other.counts)
        self.faulted += other.faulted
        self.allocated += other.allocated
        self.munlocked += other.munlocked
        self.zero_page += other.zero_page
        self.limit_hit = self.limit_hit or other.limit_hit
        return self


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
    """2.6.31 (kernel-history 2): __get_user_pages in batches of 16 with IGNORE_SIGKILL and, on a VM_WRITE
    VMA, GUP_FLAGS_WRITE: every absent page is faulted in for writing: an anonymous private page is
    allocated and zeroed, a private file page copied (COW), a shared file page faulted from the page cache.
    A read-only anonymous VMA gets ZERO_PAGE from follow_page (FOLL_ANON): no fault, no allocation."""

    batch_pages: int = GUP_BATCH_PAGES

    def __call__(self, vma: Vma, munlock_factor: float, room_pages: int | None = None) -> Work:
        """With `room_pages`, allocation stops there: handle_mm_fault returns VM_FAULT_OOM and the loop
        abandons the VMA (kernel-history 2, inferred from K1)."""
        w = Work()
        _munlock_present(w, vma, munlock_factor)
        absent = vma.absent
        if not absent:
            return w
        if vma.anon and not vma.writable:
            w.counts["walk_absent_ns"] += absent
            w.zero_page += absent
        elif room_pages is not None and room_pages < absent and (vma.anon or not vma.shared):
            key = "fault_zero_ns" if vma.anon else "cow_ns"
            w.counts[key] += room_pages
            w.faulted += room_pages
            w.allocated += room_pages
            w.limit_hit = True
        elif vma.anon and not vma.shared:
            w.counts["fault_zero_ns"] += absent
            w.faulted += absent
            w.allocated += absent
        elif vma.writable and not vma.shared:
            w.counts["cow_ns"] += absent  # do_wp_page/do_cow_fault: read the cached page, copy it
            w.faulted += absent
            w.allocated += absent
        else:
            w.counts["file_fault_ns"] += absent  # page cache assumed resident: no allocation
            w.faulted += absent
        return w


@dataclasses.dataclass(frozen=True)
class FollowPageMunlock:
    """2.6.32 (kernel-history 3, 408e82b78bcc): follow_page(FOLL_GET|FOLL_DUMP) per address: present pages
    munlocked, absent ones cost one page-table walk; nothing faulted or allocated. 3.12 (kernel-history 5,
    Babka) batches present pages in a pagevec and steps through present ptes of one table, but still calls
    follow_page_mask at each hole, so absent addresses cost the same walk; its gain is `munlock_factor`."""

    def __call__(self, vma: Vma, munlock_factor: float, room_pages: int | None = None) -> Work:
        w = Work()
        _munlock_present(w, vma, munlock_factor)
        w.counts["walk_absent_ns"] += vma.absent
        return w


@dataclasses.dataclass(frozen=True)
class PteWalkMunlock:
    """5.18+ munlock() (kernel-history 5, 34b6792380ce): walk_page_range(mlock_pte_range) skips empty page
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
    """The OOM killer's choices that matter here (kernel-history 4, 5)."""

    badness: str  # "total_vm": 2.6.31 badness() counts unfaulted mlock ranges; "rss": oom_badness (2.6.36+)
    sees_exiting_without_mm: bool  # False in 2.6.31: select_bad_process skips !p->mm, so a dying victim is invisible
    oom_reaper: bool  # 4.6+; reaps VM_LOCKED vmas only from 5.18
    reaper_delay_s: float = 2.0  # queue_oom_reaper: OOM_REAPER_DELAY = 2*HZ in current kernels


@dataclasses.dataclass(frozen=True)
class Era:
    """One kernel era: data and strategies, no copies of code between eras."""

    name: str
    version: tuple[int, ...]
    title: str
    munlock: MunlockPass  # munlock() of a range
    exit_munlock: MunlockPass | None  # munlock_vma_pages_all in exit_mmap; None = munlocked as ptes are zapped
    munlock_factor: float  # cost of munlocking a present page relative to a current kernel
    oom: OomPolicy
    mlock_stops_on_fatal_signal: bool = True  # 4779280d1ea4 (2.6.31): GUP checks fatal_signal_pending per page


# Babka (kernel-history 5): 3.11 -> 3.12 munlock of 56 GB 3.39 s -> 1.92 s; earlier per-page munlock
# (lru_add_drain, follow_page, single isolation) is taken to cost 3.39/1.92 = 1.77x a current kernel's.
_OLD_MUNLOCK = 3.39 / 1.92

ERAS: tuple[Era, ...] = (
    Era("2.6.31", (2, 6, 31), "2.6.31, before 408e82b78bcc: exit munlock faults in what mlock never reached",
        GupFaultMunlock(), GupFaultMunlock(), _OLD_MUNLOCK, OomPolicy("total_vm", False, False)),
    Era("2.6.32", (2, 6, 32), "2.6.32, munlock uses follow_page: absent pages walked, not faulted",
        FollowPageMunlock(), FollowPageMunlock(), _OLD_MUNLOCK, OomPolicy("total_vm", False, False)),
    Era("3.12", (3, 12), "3.12, pagevec-batched munlock (Babka)",
        FollowPageMunlock(), FollowPageMunlock(), 1.0, OomPolicy("rss", True, False)),
    Era("5.18", (5, 18), "5.18+, no munlock pass at exit: munlocked as ptes are zapped; OOM reaper reaps mlocked vmas",
        PteWalkMunlock(), None, 1.0, OomPolicy("rss", True, True)),
)
ERA_NAMES = tuple(e.name for e in ERAS)
LATEST = ERAS[-1]


def parse_version(text: str) -> tuple[int, ...]:
    """`6.18.44-fc-v669` -> (6, 18, 44); ValueError if it does not start with numbers."""
    m = re.match(r"^\s*v?(\d+(?:\.\d+)*)", str(text))
    if not m:
        raise ValueError(f"{text!r} is not a kernel version")
    return tuple(int(p) for p in m.group(1).split("."))


def era_for(version: str) -> Era:
    """The newest era at or below `version`; ParamError (parameter `kernel`) if none or unreadable."""
    allowed = "a kernel version >= 2.6.31, e.g. 2.6.31, 2.6.32, 3.12, 6.18 (eras: " + ", ".join(ERA_NAMES) + ")"
    try:
        v = parse_version(version)
    except ValueError:
        raise ParamError("kernel", version, allowed, "is not a kernel version") from None
    found = [e for e in ERAS if e.version <= v]
    if not found:
        raise ParamError("kernel", version, allowed, "is older than any modelled era")
    return found[-1]


def exit_mmap(era: Era, vma: Vma, room_pages: int | None = None) -> tuple[Work, Work]:
    """Work of exit_mmap for one VMA: (munlock pass, unmap). In eras with a pass, munlock_vma_pages_all
    runs before unmap_vmas (allocating at most `room_pages`) and what it faulted in is unmapped too; in 5.18+ zapping a pte of a VM_LOCKED
    vma munlocks the page through rmap (mlock_count), priced as `zap_munlock_ns` (no walk of its own)."""
    munlock = Work()
    after = vma
    if vma.locked and era.exit_munlock is not None:
        munlock = era.exit_munlock(vma, era.munlock_factor, room_pages)
        after = vma.unlocked()
    unmap = Work()
    present = after.present + munlock.faulted
    unmap.counts["zap_present_ns"] += present
    if vma.locked and era.exit_munlock is None:
        unmap.counts["zap_munlock_ns"] += after.count(State.LOCKED) * era.munlock_factor
        unmap.munlocked += after.count(State.LOCKED)
    return munlock, unmap
