"""Finite memory: where the pages a simulated mlock, exit or munlock() allocates come from, and what the
kernel did when there were not enough. Pure: pages and flags in, a plan and an outcome out.

A page to allocate comes, in order, from free memory above the min watermark, from clean page cache
that reclaim drops (`reclaim_ns` each), then from swapping an anonymous page out (`swap_out_ns` each),
as far as free swap lasts. Anonymous memory is never reclaimed without swap; mlocked pages are never
reclaimed at all (they sit on the unevictable LRU). What cannot be had that way is `short`.

When a pass falls short, the page allocator calls the OOM killer, and what happens next is the era's
(kernel-history 4; 2.6.31.3 mm/oom_kill.c `select_bad_process`, `__out_of_memory`; mm/page_alloc.c
`__alloc_pages_slowpath`):
- The exit of a SIGKILLed task runs exit_mmap after exit_mm() set tsk->mm = NULL. 2.6.31's
  select_bad_process skips `!p->mm` before anything else, so the dying task is invisible: it is never
  chosen and never gets TIF_MEMDIE; its order-0 allocations keep retrying, and each round the OOM killer
  kills another task that still has an mm (bystanders-killed). When none is left, __out_of_memory
  panics: "Out of memory and no killable processes..." (panic).
- A live task in munlock() (2.6.31: write-GUP under mmap_sem, faulting pages that stay mapped until
  munmap) still has its mm and the largest total_vm (badness counts its whole VM_LOCKED range), so it
  is the one chosen: TIF_MEMDIE and SIGKILL, which its GUP ignores (GUP_FLAGS_IGNORE_SIGKILL). Where a
  TIF_MEMDIE allocation fails instead of looping ("Avoid allocations with no watermarks from looping
  endlessly", in 2.6.31.3's __alloc_pages_slowpath), the fault returns VM_FAULT_OOM, munlock gives up the
  VMA and the task dies (oom-killed). Where it loops, the TIF_MEMDIE task, still holding its mm, makes
  every later select_bad_process return without a choice: nothing is freed again (hung).

File pages are page cache, not anonymous memory. A shared file page the 2.6.31 write-GUP dirtied
(mm/memory.c __do_fault @ v2.6.31: set_page_dirty_balance) stays dirty until written back, and only then
can reclaim drop it; but no allocation waits on that here: balance_dirty_pages (mm/page-writeback.c
@ v2.6.31) makes the dirtier write back itself once dirty pages pass vm_dirty_ratio = 20 of dirtyable
memory, so dirty pages never outgrow that limit and the rest of the file's pages stay clean and
reclaimable. A file page read from disk (page cache cold) takes a free page, then a clean page-cache page
reclaim drops (the profile's, or the file's own clean ones): it never makes the machine run short.
"""
from __future__ import annotations

import dataclasses

from mmlab.core.units import PAGE_BYTES

# what a row's `outcome` can say
EXITED = "exited"  # the exit finished (sigkill-during-mlock)
RETURNED = "returned"  # munlock() returned (munlock-partial)
BYSTANDERS_KILLED = "bystanders-killed"  # the OOM killer killed other tasks so the dying task's exit could go on
PANIC = "panic"  # no killable task left: "Out of memory and no killable processes..."
OOM_KILLED = "oom-killed"  # the task itself was chosen by the OOM killer; its munlock() never returned
HUNG = "hung"  # an allocation loops with nothing left to free: no forward progress
OOM_DURING_MLOCK = "oom-during-mlock"  # mlock() could not populate that much: the OOM killer acts before the kill
FINISHED = (EXITED, RETURNED)

LABELS = {
    EXITED: "exited",
    RETURNED: "returned",
    BYSTANDERS_KILLED: "OOM: bystanders killed",
    PANIC: "OOM: panic, no killable task",
    OOM_KILLED: "OOM: the task itself killed",
    HUNG: "OOM: hung",
    OOM_DURING_MLOCK: "OOM during mlock()",
}


def label(outcome: str) -> str:
    """The words a figure or table shows in place of a time for `outcome`."""
    return LABELS.get(outcome, outcome)


@dataclasses.dataclass(frozen=True)
class Memory:
    """A machine's memory as a test starts, in pages."""

    free: int  # MemFree above the min watermark
    page_cache: int  # clean file pages reclaim can drop
    other_anon: int  # anonymous pages of other tasks: swappable, and freed when the OOM killer kills them
    swap: int  # free swap slots

    @classmethod
    def of(cls, profile, free_bytes: int | None = None) -> Memory:
        """A profile's memory; `free_bytes` overrides its free memory (a scenario's parameter)."""
        free = profile.free_bytes if free_bytes is None else free_bytes
        return cls(free=max(0, (free - profile.min_free_bytes) // PAGE_BYTES),
                   page_cache=profile.page_cache_bytes // PAGE_BYTES,
                   other_anon=profile.other_anon_bytes // PAGE_BYTES, swap=profile.swap_bytes // PAGE_BYTES)


@dataclasses.dataclass(frozen=True)
class Supply:
    """Where `pages` came from, what is left, and how many could not be had."""

    pages: int
    from_free: int
    from_cache: int
    swapped_out: int
    short: int
    left: Memory

    @property
    def counts(self) -> dict[str, int]:
        """The reclaim work, as profile operation counts."""
        return {"reclaim_ns": self.from_cache, "swap_out_ns": self.swapped_out}


def take(mem: Memory, pages: int, swappable_anon: int | None = None) -> Supply:
    """Allocate `pages`: free first, then clean page cache, then swap-out of anonymous pages, at most
    `swappable_anon` of them (None: as many as swap holds) and never more than free swap."""
    pages = max(0, int(pages))
    f = min(pages, mem.free)
    c = min(pages - f, mem.page_cache)
    room = mem.swap if swappable_anon is None else min(mem.swap, swappable_anon)
    s = min(pages - f - c, room)
    left = dataclasses.replace(mem, free=mem.free - f, page_cache=mem.page_cache - c, swap=mem.swap - s,
                               other_anon=mem.other_anon - min(s, mem.other_anon))
    return Supply(pages, f, c, s, pages - f - c - s, left)


# vm_dirty_ratio = 20 (mm/page-writeback.c @ v2.6.31 and 6.18). 2.6.31's determine_dirtyable_memory counts free
# pages plus every LRU page; the limit here is taken on free memory alone (as file_mapping.py does), which
# throttles a little early on a machine with much page cache.
DIRTY_RATIO = 0.20


def dirty_limit(free_bytes: int) -> int:
    """Dirty pages past which balance_dirty_pages throttles a dirtier, on a machine with `free_bytes` free."""
    return int(DIRTY_RATIO * free_bytes) // PAGE_BYTES


def throttled(limit: int, dirty_before: int, dirtied: int) -> int:
    """Of `dirtied` pages made dirty on top of `dirty_before`, those past `limit`: balance_dirty_pages makes
    the dirtier write each of them back itself."""
    return max(0, dirty_before + dirtied - limit) - max(0, dirty_before - limit)


@dataclasses.dataclass(frozen=True)
class FilePages:
    """What a pass's file pages cost beside the faults: pages the dirtier wrote back itself because it was
    throttled, and page-cache pages for reads (from free memory, else reclaimed)."""

    throttled: int
    read_from_free: int
    read_reclaimed: int

    @property
    def counts(self) -> dict[str, int]:
        return {"writeback_ns": self.throttled, "reclaim_ns": self.read_reclaimed}


def file_pages(mem: Memory, limit: int, dirty_before: int, dirtied: int, read_in: int) -> FilePages:
    """`dirtied` shared file pages made dirty on top of `dirty_before` (balance_dirty_pages: each past
    `limit` is written back by the dirtier), and `read_in` pages read into the page cache from `mem`."""
    free = min(max(0, read_in), mem.free)
    return FilePages(throttled(limit, dirty_before, dirtied), free, max(0, read_in) - free)


def cache_file(mem: Memory, cached: int, locked: int = 0) -> Memory:
    """`mem` once a file's `cached` pages are in the page cache (they displace free memory, then other clean
    page cache, and are clean page cache themselves) and `locked` of them mlocked in place (unevictable)."""
    cached = min(max(0, cached), mem.free + mem.page_cache)
    from_free = min(mem.free, cached)
    page_cache = mem.page_cache - (cached - from_free) + cached - min(max(0, locked), cached)
    return dataclasses.replace(mem, free=mem.free - from_free, page_cache=page_cache)


def read_past_cache(cached: int, present: int, faulted: int) -> int:
    """Of `faulted` absent file pages, those past the `cached` pages the page cache holds (taken to hold the
    `present` ones first): read from disk at their fault."""
    return max(0, faulted - max(0, cached - present))


def populate(mem: Memory, pages: int) -> Supply:
    """mlock() populating `pages`: the new pages are mlocked (unevictable), so only other tasks'
    anonymous pages can make room by going to swap."""
    return take(mem, pages, swappable_anon=mem.other_anon)


def lockable(mem: Memory) -> int:
    """The most pages mlock() can populate before the OOM killer has to act."""
    return mem.free + mem.page_cache + min(mem.swap, mem.other_anon)


@dataclasses.dataclass(frozen=True)
class WhenShort:
    """What an era's kernel did when an allocation found no memory (see the module docstring)."""

    dying_task_visible: bool  # select_bad_process sees a task past exit_mm(); False in 2.6.31 (`!p->mm` skipped)
    memdie_alloc_fails: bool  # a TIF_MEMDIE allocation fails (VM_FAULT_OOM) rather than looping


def when_short(era) -> WhenShort:
    """An era's behaviour under memory shortage, read from its OOM policy. `memdie_alloc_fails` is read
    from the era where it states it (`era.oom.memdie_alloc` of "fail"/"retry", or a bool
    `era.oom.memdie_alloc_fails`); otherwise it is True, as in the 2.6.31.3 tree."""
    oom = era.oom
    fails = getattr(oom, "memdie_alloc_fails", None)
    if fails is None:
        how = getattr(oom, "memdie_alloc", None)
        fails = True if how is None else how == "fail"
    return WhenShort(dying_task_visible=bool(oom.sees_exiting_without_mm), memdie_alloc_fails=bool(fails))


def exit_outcome(short: int, killable: int, how: WhenShort) -> str:
    """The outcome of an exit whose munlock pass could not get `short` pages. `killable`: pages the OOM
    killer frees by killing every other task it may choose (their anonymous memory, in RAM or swap)."""
    if short <= 0:
        return EXITED
    if how.dying_task_visible:  # chosen itself (PF_EXITING current): TIF_MEMDIE, reserves, then fail or loop
        return EXITED if how.memdie_alloc_fails else HUNG
    return BYSTANDERS_KILLED if killable >= short else PANIC


def munlock_outcome(short: int, how: WhenShort) -> str:
    """The outcome of a munlock() by a live task whose fault-in could not get `short` pages: the task is
    the OOM killer's choice (its whole VM_LOCKED range counts in its badness)."""
    if short <= 0:
        return RETURNED
    return OOM_KILLED if how.memdie_alloc_fails else HUNG
