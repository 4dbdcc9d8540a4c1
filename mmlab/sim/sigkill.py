"""Simulated `sigkill-during-mlock`: mlock() populates a VMA, SIGKILL stops it part-way, the process exits.

Since 4779280d1ea4 (2.6.29) get_user_pages checks fatal_signal_pending per page, so mlock stops where
it got; the VMA stays VM_LOCKED with a populated prefix (kernel-history 1, 2). What the exit then
costs is the era's exit_mmap (eras.py): 2.6.31 faults in every page mlock never reached, from memory
that is finite (memory.py): past free memory, clean page cache and swap, the machine is out of memory
and the row's `outcome` says what the kernel did instead of giving a time. On a VM_WRITE VMA those are
write faults (GUP_FLAGS_WRITE): anonymous pages zeroed, private file pages COWed, shared file pages
dirtied, and their writeback owed (mm/mlock.c __mlock_vma_pages_range, mm/memory.c __do_fault @ v2.6.31).
"""
from __future__ import annotations

import dataclasses
import math
from collections import Counter

import pandas as pd

from mmlab.core.params import ParamError, choice, flag, seconds, size
from mmlab.core.units import PAGE_BYTES
from mmlab.sim import memory
from mmlab.sim.address_space import State, Vma
from mmlab.sim.eras import Era, exit_mmap
from mmlab.sim.profile import Profile
from mmlab.sim.scenario import Scenario, SimParams, base_row

NAME = "sigkill-during-mlock"
MAPPINGS = ("anon-private", "file-private", "file-shared")
CACHES = ("warm", "cold")


@dataclasses.dataclass(frozen=True)
class SigkillParams(SimParams):
    vma_bytes: int = size("1GiB", "size of the mlocked VMA", hi=1 << 50)
    populated_bytes: int = size("256MiB", "bytes mlock has populated when SIGKILL arrives (kill_at = populated)", lo=0, hi=1 << 50)
    kill_at: str = choice("populated", ("populated", "time"), "kill when populated_bytes are populated, or after kill_after_s")
    kill_after_s: float = seconds(2.0, "seconds after mlock() starts that SIGKILL arrives (kill_at = time)", hi=86400)
    mapping: str = choice("anon-private", MAPPINGS, "what the VMA maps")
    writable: bool = flag(True, "VM_WRITE: PROT_READ|PROT_WRITE (else PROT_READ)")
    page_cache: str = choice("warm", CACHES, "a file mapping's pages before mlock: warm (in the page cache, as far as "
                             "free memory and page cache hold them) | cold (read from disk at their fault)")
    free_bytes: int = size(0, "memory free (MemFree) before mlock; 0 = the profile's free memory", lo=0, hi=1 << 50)

    def check(self) -> None:
        super().check()
        if self.kill_at == "populated" and self.populated_bytes > self.vma_bytes:
            raise ParamError("populated_bytes", self.populated_bytes, f"at most vma_bytes ({self.vma_bytes})", "exceeds the VMA")


def populated_after(profile: Profile, mem: memory.Memory, vma_pages: int, t_s: float,
                    per_page_ns: float) -> tuple[int, float, bool]:
    """Pages mlock() has populated after t_s, the time that took, and whether it ran out of memory first.
    Free memory goes at the populate cost; then each page also costs dropping a clean page-cache page
    (reclaim_ns), then swapping out another task's anonymous page (swap_out_ns; mlocked pages cannot go)."""
    tiers = ((mem.free, per_page_ns), (mem.page_cache, per_page_ns + profile["reclaim_ns"]),
             (min(mem.swap, mem.other_anon), per_page_ns + profile["swap_out_ns"]))
    n, t = 0, 0.0
    for pages, ns in tiers:
        pages = min(pages, vma_pages - n)
        if t + pages * ns * 1e-9 >= t_s:
            k = int((t_s - t) / (ns * 1e-9))
            return n + k, t + k * ns * 1e-9, False
        n, t = n + pages, t + pages * ns * 1e-9
        if n == vma_pages:
            return n, t, False
    return n, t, True


def _no_time(row: dict) -> dict:
    """An outcome that is not an exit has no exit time: every time column null."""
    for k in ("exit_s", "kill_to_reap_s", "exit_mm_s", "exit_writeback_s"):
        for side in ("", "_lo", "_hi"):
            row[k + side] = math.nan
    row["munlock_pass_s"] = math.nan
    return row


def mlock_ns_per_page(era: Era, profile: Profile, mapping: str, writable: bool) -> float:
    """mlock()'s populate cost per page of `mapping` in `era`: an anonymous page is allocated and zeroed; a
    writable private file page is COWed (write-GUP in every era); a writable shared one is write-faulted and
    dirtied where mlock used write-GUP on every VM_WRITE VMA (to 2.6.37: era fact `file_gup`), else
    read-faulted, as a read-only one is (a page-cache read on cold pages is added by `run`)."""
    if mapping.startswith("anon"):
        return profile["populate_mlock_ns"]
    if writable and not mapping.endswith("shared"):
        return profile["cow_ns"]
    if writable and era.facts["file_gup"].value == "VM_WRITE":
        return profile["file_write_fault_ns"]
    return profile["file_fault_ns"]


def run(era: Era, profile: Profile, vma_pages: int, populated_pages: int | None = None, kill_after_s: float = 0.0,
        mapping: str = "anon-private", writable: bool = True, free_pages: int | None = None,
        room_pages: int | None = None, oom_kill: bool = False, page_cache: str = "warm") -> dict:
    """The physics of one point, as a flat dict (fast enough for 10,000-point sweeps). `room_pages`: what
    a memory cgroup's limit lets the exit allocate (None = no group): the old munlock pass stops there.
    `oom_kill`: a pass stopped by the limit invokes the group's OOM killer (default OOM handling), whose
    own time (`oom_kill_s`: reclaim retries, selection, report) and the victim's way from SIGKILL to do_exit
    out of its charge path (`oom_kill_to_exit_s`) come before the reap; without it the charge fails after
    the group's reclaim retries (`memcg_limit_s`) and the pass gives up the VMA.

    Memory is the profile's (memory.py): what mlock populated is mlocked (unevictable), and what the
    exit's munlock pass allocates comes from free memory, clean page cache, then swap. A pass that needs
    more runs the machine out of memory, and the row's `outcome` says what the era's kernel did
    (bystanders-killed, panic, ...) with every time null.

    A file's pages (`page_cache` warm) are in the page cache as far as free memory and page cache hold
    them, from the start of the file, counted in the profile's free and page-cache figures; the rest (all of
    them when cold) are read from disk at their fault (`file_read_ns`). Shared pages that mlock or the exit
    dirtied are written back (`writeback_ns`): by the task itself past the dirty limit (balance_dirty_pages,
    in its time), else by the flusher after it (`exit_writeback_s`: all of the exit's, wherever it runs)."""
    anon, shared = mapping.startswith("anon"), mapping.endswith("shared")
    mem = memory.Memory.of(profile, None if free_pages is None else free_pages * PAGE_BYTES)
    free_bytes = profile.free_bytes if free_pages is None else free_pages * PAGE_BYTES
    cached = vma_pages if anon else 0 if page_cache == "cold" else min(vma_pages, mem.free + mem.page_cache)
    per_page_ns = mlock_ns_per_page(era, profile, mapping, writable)
    read_ns = 0.0 if anon else profile["file_read_ns"]
    # pages mlock brings into memory: anonymous, COW copies, file pages read in; a cached page is there already
    allocates = anon or (writable and not shared) or page_cache == "cold"
    base = mem if anon else memory.cache_file(mem, cached)  # cold: cached is 0
    dirty_limit = memory.dirty_limit(free_bytes)
    dirties = shared and writable and era.facts["file_gup"].value == "VM_WRITE"  # mlock's write-GUP (to 2.6.37)
    outcome = memory.EXITED
    timed = populated_pages is None
    if timed:  # killed after kill_after_s: populated as far as mlock got by then
        populated_pages, mlock_s, oom = populated_after(profile, base if allocates else _unbounded(), vma_pages,
                                                        kill_after_s, per_page_ns + (0.0 if cached else read_ns))
        outcome = memory.OOM_DURING_MLOCK if oom else outcome
    # every page mlock populated is mlocked (unevictable): new pages taken from memory, cached ones locked in place
    new_pages = populated_pages if allocates else max(0, populated_pages - cached)
    if not allocates:
        base = memory.cache_file(mem, cached, locked=populated_pages)
    supply = memory.populate(base, new_pages)
    if not timed:
        throttled = memory.throttled(dirty_limit, 0, populated_pages) if dirties else 0  # balance_dirty_pages: mlock writes back
        mlock_s = (populated_pages * per_page_ns + max(0, populated_pages - cached) * read_ns
                   + throttled * profile["writeback_ns"]) * 1e-9 + profile.price(supply.counts)[0]
        outcome = memory.OOM_DURING_MLOCK if supply.short else outcome
    mlock_dirtied = populated_pages if dirties else 0
    vma = Vma.prefix(vma_pages, populated_pages, State.LOCKED, anon=anon, writable=writable, shared=shared,
                     cached=page_cache != "cold")
    munlock, unmap = exit_mmap(era, vma, None if room_pages is None else max(0, room_pages))
    # the pass munlocks the populated prefix first, so its pages, the new ones and other tasks' can go to swap
    got = memory.take(supply.left, munlock.allocated)
    if getattr(munlock, "never_ends", False) and outcome == memory.EXITED:
        outcome = memory.HUNG  # the era's exit-time fault never completes: GUP retries it forever
    if got.short and outcome == memory.EXITED:
        outcome = memory.exit_outcome(got.short, mem.other_anon, memory.when_short(era))
        if outcome == memory.EXITED:  # chosen itself, its TIF_MEMDIE allocation failed: the pass gave up the VMA
            munlock, unmap = exit_mmap(era, vma, munlock.allocated - got.short)
            got = memory.take(supply.left, munlock.allocated)
    # the pass faults the unreached pages in address order: those past the cached part are read in first
    if not anon and page_cache != "cold" and munlock.faulted:
        munlock.read(memory.read_past_cache(cached, populated_pages, munlock.faulted - got.short))
    files = memory.file_pages(got.left, dirty_limit, mlock_dirtied, munlock.dirtied, munlock.read_in)
    munlock.counts.update(got.counts)
    if munlock.limit_hit and not oom_kill:  # the charge that fails ends the pass, after the group's reclaim retries
        munlock.counts["memcg_limit_s"] += 1
    munlock.counts.update(files.counts)
    pass_s = profile.price(munlock.counts)
    mm_s = profile.price(munlock.counts + unmap.counts)
    killed = int(oom_kill and munlock.limit_hit)
    fixed = Counter(exit_base_s=1, oom_kill_s=killed, oom_kill_to_exit_s=killed)
    exit_s = tuple(m + f for m, f in zip(mm_s, profile.price(fixed)))
    writeback_s = profile.price({"writeback_ns": munlock.dirtied})
    row = {
        "vma_bytes": vma_pages * PAGE_BYTES, "populated_bytes": populated_pages * PAGE_BYTES,
        "mapping": mapping, "writable": writable, "page_cache": "" if anon else page_cache,
        "unreached_pages": vma_pages - populated_pages,
        "outcome": outcome, "mlock_s": mlock_s,
        "exit_s": exit_s[0], "exit_s_lo": exit_s[1], "exit_s_hi": exit_s[2],
        "kill_to_reap_s": exit_s[0], "kill_to_reap_s_lo": exit_s[1], "kill_to_reap_s_hi": exit_s[2],
        "exit_mm_s": mm_s[0], "exit_mm_s_lo": mm_s[1], "exit_mm_s_hi": mm_s[2],
        "munlock_pass_s": pass_s[0],
        "exit_pages_needed": munlock.faulted,
        "exit_pages_faulted": 0 if getattr(munlock, "never_ends", False) else munlock.faulted - got.short,
        "exit_bytes_allocated": (munlock.allocated - got.short) * PAGE_BYTES,
        "exit_bytes_short": got.short * PAGE_BYTES,
        "exit_pages_munlocked": munlock.munlocked + unmap.munlocked, "exit_pages_zero_page": munlock.zero_page,
        "exit_pages_reclaimed": got.from_cache + got.swapped_out + files.read_reclaimed,
        "exit_pages_swapped_out": got.swapped_out,
        "exit_pages_read": munlock.read_in, "exit_pages_dirtied": munlock.dirtied,
        "exit_pages_throttled": files.throttled,
        "exit_writeback_s": writeback_s[0], "exit_writeback_s_lo": writeback_s[1], "exit_writeback_s_hi": writeback_s[2],
        "exit_oom_kills": fixed["oom_kill_s"],
    }
    return row if outcome == memory.EXITED else _no_time(row)


def _unbounded() -> memory.Memory:
    """Memory that never runs out (a file mapping's pages are already in the page cache)."""
    big = 1 << 62
    return memory.Memory(free=big, page_cache=0, other_anon=0, swap=0)


def simulate(p: SigkillParams) -> pd.DataFrame:
    """One tidy row: the outcome, exit seconds (with interval; null unless it exited), pages faulted and
    bytes allocated during exit, pages munlocked."""
    prof = p.machine()
    free = None if p.free_bytes == 0 else p.free_bytes // PAGE_BYTES
    populated = math.ceil(p.populated_bytes / PAGE_BYTES) if p.kill_at == "populated" else None
    row = run(p.era, prof, math.ceil(p.vma_bytes / PAGE_BYTES), populated, p.kill_after_s, p.mapping, p.writable, free,
              page_cache=p.page_cache)
    row["vma_bytes"] = p.vma_bytes
    return pd.DataFrame([{**base_row(NAME, p), **row, "kill_at": p.kill_at,
                          "kill_after_s": p.kill_after_s if p.kill_at == "time" else float("nan")}])


SCENARIO = Scenario(NAME, "mlock() of a VMA, SIGKILL part-way, exit: time from kill to reap and what exit faulted in",
                    SigkillParams, simulate)
