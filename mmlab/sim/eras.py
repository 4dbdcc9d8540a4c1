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
/work/shared/kernel-history.md.
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
    never_ends: bool = False  # a fault of this pass never completes (2.6.31-mmotm exit): no time can be given

    def __iadd__(self, other: Work) -> Work:
        self.counts.update(other.counts)
        self.faulted += other.faulted
        self.allocated += other.allocated
        self.munlocked += other.munlocked
        self.zero_page += other.zero_page
        self.limit_hit = self.limit_hit or other.limit_hit
        self.never_ends = self.never_ends or other.never_ends
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
    """2.6.31 munlock (mm/mlock.c __mlock_vma_pages_range @ v2.6.31): __get_user_pages in batches of 16
    with GUP_FLAGS_IGNORE_SIGKILL and, on a VM_WRITE VMA, GUP_FLAGS_WRITE, then lru_add_drain and a page
    lock per returned page. Every absent page is faulted in for writing: an anonymous private page is
    allocated and zeroed, a private file page copied (COW), a shared file page faulted from the page cache.
    A read-only anonymous VMA gets ZERO_PAGE from follow_page (FOLL_ANON): no fault, no allocation."""

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
class Fact:
    """One behaviour of an era: a short value the model reads, what the kernel did, and where that is stated."""

    value: str
    text: str
    source: str


# Behaviours every era states, in the order `mmlab eras` lists them.
BEHAVIOURS: dict[str, str] = {
    "exit_munlock": "exit munlock pass (munlock_vma_pages_all in exit_mmap)",
    "absent_pages": "pages mlock never reached, at exit",
    "munlock_drain": "lru_add_drain in the munlock pass",
    "oom_selection": "OOM victim selection",
    "memdie_alloc": "TIF_MEMDIE allocation that finds no memory",
    "oom_reaper": "OOM reaper",
    "oom_skip": "what ends the victim's hold-off of further OOM kills (MMF_OOM_SKIP)",
    "no_killable": "OOM with no killable task left",
    "file_gup": "mlock's GUP flags on a file mapping",
}


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
    facts: dict = dataclasses.field(hash=False, compare=False)  # behaviour key (BEHAVIOURS) -> Fact
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
                "behaviours": {k: {"behaviour": BEHAVIOURS[k], **dataclasses.asdict(self.facts[k])} for k in BEHAVIOURS}}


# --- sources ------------------------------------------------------------------------------------------
_V2631 = "v2.6.31 (74fca6a42863)"
_MLOCK_GUP = (f"mm/mlock.c __mlock_vma_pages_range @ {_V2631}: munlock sets GUP_FLAGS_IGNORE_VMA_PERMISSIONS|"
              "GUP_FLAGS_IGNORE_SIGKILL, and GUP_FLAGS_WRITE if VM_WRITE; mm/memory.c __get_user_pages faults "
              "while follow_page() finds no page")
_FOLLOW = ("408e82b78bcc 'mm: munlock use follow_page' (2.6.32-rc1, Cc: stable; "
           "<Pine.LNX.4.64.0909072227140.15430@sister.anvils>); in stable 2.6.31.3: mm/mlock.c "
           "munlock_vma_pages_range follow_page(FOLL_GET) loop @ 'Linux 2.6.31.3' (GitHub jz47xx/linux-2.6.31.3) "
           "and @ 2.6.31.12 (darion76/linux-sharp-netwalker-2.6.31), GUP_FLAGS_IGNORE_SIGKILL still in mm/internal.h")
_ANON_ALLOC = ("do_anonymous_page allocates and zeroes on read faults from 557ed1fa2620 (2.6.24) until "
               "a13ea5b75964 'mm: reinstate ZERO_PAGE' (2.6.32) <Pine.LNX.4.64.0909072238320.15430@sister.anvils>; "
               "a read-only VMA gets ZERO_PAGE via FOLL_ANON")
_BABKA = ("Vlastimil Babka, 'Improving munlock() performance for large non-THP areas' (3.12; mm/mlock.c "
          "munlock_vma_pages_range @ 3.11.0, GitHub PKUCloud/linux-3.11-cloud, has none of it) "
          "<1376915022-12741-1-git-send-email-vbabka@suse.cz>: pagevec batches, pte walk within a table; "
          "follow_page_mask still called at every hole")
_A213 = ("a213e5cf71cb 'mm/munlock: delete munlock_vma_pages_all(), allow oomreap' (5.18-rc1); munlock() "
         "walks with walk_page_range(mlock_pte_range), 34b6792380ce (5.18-rc1)")
_DRAIN_2631 = f"mm/mlock.c __mlock_vma_pages_range @ {_V2631}: lru_add_drain() after each __get_user_pages batch of 16"
_DRAIN_ONCE = ("408e82b78bcc: munlock_vma_pages_range calls lru_add_drain() once before its loop; per page from "
               "ff6a6da60b89 'mm: accelerate munlock() treatment of THP pages' (3.9), removed by Babka's "
               "'mm: munlock: remove unnecessary call to lru_add_drain()' <1376915022-12741-3-git-send-email-vbabka@suse.cz>")
_OOM_OLD = (f"mm/oom_kill.c select_bad_process @ {_V2631} and @ 2.6.35.6: `if (!p->mm) continue;` before the "
            "TIF_MEMDIE test; badness() starts from mm->total_vm")
_OOM_2636 = ("mm/oom_kill.c select_bad_process @ 2.6.36.4: TIF_MEMDIE returns ERR_PTR(-1UL) with no ->mm test "
             "before it; oom_badness() from get_mm_rss (David Rientjes' rewrite, "
             "<alpine.DEB.2.00.1003170154590.31796@chino.kir.corp.google.com>); @ 3.11.0 and 4.6.2 oom_scan_process_thread: "
             "TIF_MEMDIE -> OOM_SCAN_ABORT before `if (!task->mm)`")
_OOM_49 = ("mm/oom_kill.c oom_evaluate_task @ v4.9: tsk_is_oom_victim() -> abort unless MMF_OOM_SKIP on "
           "signal->oom_mm (26db62f179d1 'oom: keep mm of the killed task available', 862e3073b3ee "
           "'mm, oom: get rid of signal_struct::oom_victims', 4.9-rc1); badness from rss")
_RIENTJES = ("6583bb64fc37 'mm: avoid endless looping for oom killed tasks' (2.6.31-rc5; "
             "<alpine.DEB.2.00.0907170326400.18608@chino.kir.corp.google.com>, acked by Hugh Dickins "
             "<Pine.LNX.4.64.0907171337290.3925@sister.anvils>): __alloc_pages_slowpath goes to nopage for TIF_MEMDIE")
_RC1_LOOP = ("11e33f6a55ed 'page allocator: break up the allocator entry point into fast and slow paths' "
             "(2.6.31-rc1) dropped 2.6.30's `goto nopage` after a failed ALLOC_NO_WATERMARKS try "
             "(__alloc_pages_internal @ v2.6.30); __alloc_pages_slowpath @ v2.6.31-rc4 calls "
             "__alloc_pages_may_oom and `goto restart` until 6583bb64fc37 (2.6.31-rc5)")
_PANIC = f"mm/oom_kill.c __out_of_memory @ {_V2631}: panic(\"Out of memory and no killable processes...\\n\")"
_PANIC_LATER = ("not modelled differently after 2.6.31: out_of_memory still panics when it finds no task to "
                "kill (kernel-history 4); later messages not checked here")
_REAPER_46 = ("aac453635549 'mm, oom: introduce oom reaper', 36324a990cf5 'oom: clear TIF_MEMDIE after "
              "oom_reaper managed to unmap the address space' (4.6-rc1); mm/oom_kill.c __oom_reap_task @ 4.6.2: "
              "skips VM_LOCKED, returns early when find_lock_task_mm() finds no mm")
_REAPER_48 = ("mm/oom_kill.c oom_reap_task @ 4.7.4 (GitHub calebwilliamsd/linux-4.7.4-casio) and @ 4.8.15 "
              "(squirrel20/linux-4.8.15): skips VM_LOCKED; ends with "
              "exit_oom_victim(tsk) whatever it reaped (also when find_lock_task_mm() finds no mm), clearing "
              "TIF_MEMDIE and signal->oom_victims; oom_scan_process_thread aborts while signal->oom_victims is set")
_REAPER_49 = ("mm/oom_kill.c __oom_reap_task_mm / oom_reap_task @ v4.9: skips VM_LOCKED; `done:` sets MMF_OOM_SKIP "
              "after every attempt, also when mmget_not_zero() fails; 212925802454 (4.14) lets it run concurrently "
              "with exit_mmap")
_27AE = ("27ae357fa82b 'mm, oom: fix concurrent munlock and oom reaper unmap, v3' (4.17-rc5; Cc: stable [4.14+]; "
         "<alpine.DEB.2.21.1804241526320.238665@chino.kir.corp.google.com>): exit_mmap of an OOM victim runs "
         "__oom_reap_task_mm, sets MMF_OOM_SKIP, then munlock_vma_pages_all; can_madv_dontneed_vma skips VM_LOCKED")
_DELAY = ("e4a38402c36e 'oom_kill.c: futex: delay the OOM reaper to allow time for proper futex cleanup' "
          "(5.18-rc4): OOM_REAPER_DELAY 2*HZ")
_DROP = ("'mm: drop oom code from exit_mmap' (Suren Baghdasaryan; the parent of b3541d912a84 'mm: delete "
         "unused MMF_OOM_VICTIM flag', both committed to the mm tree on 2022-09-26, after 6.0-rc7, so 6.1-rc1): "
         "exit_mmap sets MMF_OOM_SKIP after "
         "unmapping, no early reap")
_FILE_VMWRITE = (f"mm/mlock.c __mlock_vma_pages_range @ {_V2631} and @ 2.6.36.4: GUP_FLAGS_WRITE / FOLL_WRITE "
                 "whenever vma->vm_flags & VM_WRITE, shared mappings too")
_FILE_PRIVATE = ("5ecfda041e4b 'mlock: avoid dirtying pages and triggering writeback' (2.6.38-rc1; "
                 "<1289996638-21439-4-git-send-email-walken@google.com>): write only if "
                 "(VM_WRITE | VM_SHARED) == VM_WRITE; mm/mlock.c @ 2.6.38")
_KSM_LOOP = ("mmotm of August 2009 with 'ksm: fix oom deadlock': ksm_test_exit() in the fault path installs no pte "
             "once mm_users is 0, so GUP retries the exit-time fault forever "
             "(Andrea Arcangeli <20090825145832.GP14722@random.random>, Hugh Dickins "
             "<Pine.LNX.4.64.0908251738070.30372@sister.anvils>); Hugh's series was 'against current mmotm' "
             "<Pine.LNX.4.64.0909072222070.15424@sister.anvils>")

# Babka (kernel-history 5): munlock of 56 GB, 3.11 -> 3.12: 3.39 s -> 1.92 s. 3.11 munlocked page by page
# (follow_page_mask, lock_page, single-page LRU isolation) and drained the LRU pagevec at every page
# (since ff6a6da60b89, 3.9); removing that drain alone gave about 10% (Babka 2/7). Older kernels drained
# once per batch of 16 (2.6.31) or once per call (2.6.32-3.8), so the factor is a prior for their per-page
# munlock cost that may overstate it by up to that drain's share.
_OLD_MUNLOCK = 3.39 / 1.92

_F = Fact
_GUP = _F("gup-write-fault", "__get_user_pages in batches of 16 with IGNORE_SIGKILL, write faults on VM_WRITE", _MLOCK_GUP)
_FOLLOW_PAGE = _F("follow-page", "follow_page per address; present pages munlocked, nothing faulted", _FOLLOW)
_PAGEVEC = _F("follow-page-pagevec", "follow_page_mask at each hole, pagevec-batched munlock of present ptes", _BABKA)
_NO_PASS = _F("none", "no pass: each present page is munlocked as its pte is zapped (mlock_count)", _A213)
_FAULTED = _F("faulted", "allocated and zeroed (writable anon), COWed (private file), read in (shared file); "
              "read-only anon: ZERO_PAGE, no allocation", f"{_MLOCK_GUP}; {_ANON_ALLOC}")
_WALKED = _F("walked", "one page-table walk each (follow_page finds no page), no fault", _FOLLOW)
_WALKED_312 = _F("walked", "one page-table walk each (follow_page_mask at each hole), no fault", _BABKA)
_SKIPPED = _F("skipped", "cost nothing: empty page tables are skipped, pte_none entries stepped over", _A213)
_DRAIN_BATCH = _F("per-batch-of-16", "lru_add_drain once per GUP batch of 16 pages", _DRAIN_2631)
_DRAIN_CALL = _F("once-per-call", "lru_add_drain once per munlock_vma_pages_range call; per page in 3.9-3.11 "
                 "(priced by the same munlock factor)", _DRAIN_ONCE)
_DRAIN_NONE = _F("none", "no lru_add_drain in the munlock loop; pagevecs drained as they fill", _BABKA)
_DRAIN_518 = _F("per-call", "mlock_fixup and an lru_add_drain per munlock() call (munlock_call_s); none at exit", _A213)
_SEL_OLD = _F("total_vm, dying task invisible", "badness() = total_vm (the unfaulted mlock range counts); a victim "
              "past exit_mm() has no ->mm and is skipped, TIF_MEMDIE and all", _OOM_OLD)
_SEL_2636 = _F("rss, TIF_MEMDIE blocks", "oom_badness() = rss + swap; any TIF_MEMDIE task, with or without ->mm, "
               "makes the killer wait", _OOM_2636)
_SEL_48 = _F("rss, oom_victims blocks", "oom_badness() = rss; a task whose signal->oom_victims is set blocks "
             "new choices, with or without ->mm, until exit_oom_victim()", _REAPER_48)
_SEL_49 = _F("rss, oom_mm blocks until MMF_OOM_SKIP", "oom_badness() = rss; an OOM victim is found through "
             "signal->oom_mm after exit_mm() and blocks new choices until its mm has MMF_OOM_SKIP", _OOM_49)
_FAIL_2631 = _F("fail", "fails (nopage): the fault returns VM_FAULT_OOM, __get_user_pages -ENOMEM, munlock gives "
                "up the VMA", _RIENTJES)
_RETRY = _F("retry", "loops: direct reclaim, __alloc_pages_may_oom (which kills another task, the victim being "
            "invisible), restart", _RC1_LOOP)
_FAIL_LATER = _F("fail", "fails as in 2.6.31-rc5 (not exercised: the exit munlock pass allocates nothing)", _RIENTJES)
_NO_REAPER = _F("none", "no OOM reaper", "aac453635549 'mm, oom: introduce oom reaper' is 4.6-rc1")
_REAP46 = _F("skips-locked", "wakes at the kill, skips VM_LOCKED VMAs; if the victim has already passed exit_mm() "
             "it finds no mm and does nothing (TIF_MEMDIE stays); otherwise it unmaps the rest and clears TIF_MEMDIE",
             _REAPER_46)
_REAP49 = _F("skips-locked", "wakes at the kill, skips VM_LOCKED VMAs, then sets MMF_OOM_SKIP whatever it freed",
             _REAPER_49)
_REAP48 = _F("skips-locked", "wakes at the kill, skips VM_LOCKED VMAs, then clears TIF_MEMDIE whatever it freed",
             _REAPER_48)
_REAP417 = _F("skips-locked", "wakes at the kill, skips VM_LOCKED VMAs; exit_mmap reaps the same way itself", _27AE)
_REAP518 = _F("reaps-locked", "queued OOM_REAPER_DELAY (2 s) after the kill; may reap mlocked VMAs",
              f"{_A213}; {_DELAY}")
_HOLD_NONE = _F("exit-mm", "no hold-off once the victim passed exit_mm(): it is invisible, the next OOM kills again",
                _OOM_OLD)
_HOLD_EXIT = _F("exit-done", "TIF_MEMDIE holds off every new choice until exit_mm() clears it after mmput(): the "
                "whole exit, munlock pass included", _OOM_2636)
_HOLD_46 = _F("exit-done", "as 3.12 when the victim has passed exit_mm() before the reaper runs (modelled); held "
              "off only until the reaper's pass if the reaper wins that race", _REAPER_46)
_HOLD_49 = _F("reaper", "MMF_OOM_SKIP from the reaper right after the kill: a slow exit munlock no longer holds "
              "off further kills", f"{_REAPER_49}; {_OOM_49}")
_HOLD_48 = _F("reaper", "the reaper's exit_oom_victim() right after the kill ends the hold-off: a slow exit "
              "munlock no longer holds off further kills", _REAPER_48)
_HOLD_417 = _F("exit-mmap-start", "MMF_OOM_SKIP set by exit_mmap before munlock_vma_pages_all (and by the reaper)",
               _27AE)
_HOLD_518 = _F("exit-mmap-start", "MMF_OOM_SKIP set by exit_mmap after its own reap, before unmapping", _27AE)
_HOLD_61 = _F("exit-done", "MMF_OOM_SKIP only when exit_mmap has unmapped everything, or when the reaper (2 s "
              "later) has reaped", f"{_DROP}; {_DELAY}")
_PANIC_F = _F("panic", "panic: Out of memory and no killable processes...", _PANIC)
_PANIC_LATER_F = _F("panic", "panic (no task to kill)", _PANIC_LATER)
_FILE_W = _F("VM_WRITE", "write-GUP whenever VM_WRITE: private file pages COWed, shared ones dirtied at mlock",
             _FILE_VMWRITE)
_FILE_P = _F("private-write", "write-GUP only for private writable mappings; shared pages read, not dirtied",
             _FILE_PRIVATE)


def _facts(**kw: Fact) -> dict:
    missing = set(BEHAVIOURS) - set(kw)
    assert not missing, f"behaviours without a fact: {missing}"
    return {k: kw[k] for k in BEHAVIOURS}


_OLD_EXIT = dict(exit_munlock=_GUP, absent_pages=_FAULTED, munlock_drain=_DRAIN_BATCH, oom_selection=_SEL_OLD,
                 oom_reaper=_NO_REAPER, oom_skip=_HOLD_NONE, no_killable=_PANIC_F, file_gup=_FILE_W)
_FOLLOW_EXIT = dict(exit_munlock=_FOLLOW_PAGE, absent_pages=_WALKED, munlock_drain=_DRAIN_CALL)
_POLICY_OLD = OomPolicy("total_vm", False)
_POLICY_2636 = OomPolicy("rss", True, holdoff_until="exit-done")

ERAS: tuple[Era, ...] = (
    Era("2.6.31-rc", (("2.6.31-rc1", "2.6.31-rc5"),),
        "2.6.31-rc1 to -rc4: as 2.6.31, but a failed TIF_MEMDIE allocation loops through the OOM killer",
        _facts(**_OLD_EXIT, memdie_alloc=_RETRY),
        GupFaultMunlock(), GupFaultMunlock(), _OLD_MUNLOCK, dataclasses.replace(_POLICY_OLD, memdie_alloc="retry"),
        variant_of="2.6.31"),
    Era("2.6.31", (("2.6.30", "2.6.31-rc1"), ("2.6.31-rc5", "2.6.31.1")),
        "2.6.30, 2.6.31-rc5 to 2.6.31: exit munlock faults in what mlock never reached (before 408e82b78bcc)",
        _facts(**_OLD_EXIT, memdie_alloc=_FAIL_2631),
        GupFaultMunlock(), GupFaultMunlock(), _OLD_MUNLOCK, _POLICY_OLD),
    Era("2.6.31-mmotm", (),
        "mmotm of August 2009 with KSM (the tree Hugh Dickins tested): exit-time faults never complete",
        _facts(**{**_OLD_EXIT, "absent_pages": _F("faulted-forever", "each fault installs no pte (ksm_test_exit) "
                                                  "and GUP retries it forever", _KSM_LOOP)},
               memdie_alloc=_FAIL_2631),
        GupFaultMunlock(), GupFaultMunlock(), _OLD_MUNLOCK, _POLICY_OLD, exit_fault_completes=False,
        variant_of="2.6.31"),
    Era("2.6.32", (("2.6.31.3", "2.6.36-rc1"),),
        "2.6.31.3 (stable backport) and 2.6.32 to 2.6.35: munlock uses follow_page; absent pages walked, not faulted",
        _facts(**{**_OLD_EXIT, **_FOLLOW_EXIT}, memdie_alloc=_FAIL_LATER),
        FollowPageMunlock(), FollowPageMunlock(), _OLD_MUNLOCK, _POLICY_OLD),
    Era("2.6.36", (("2.6.36", "2.6.38-rc1"),),
        "2.6.36 to 2.6.37: rss badness; a dying TIF_MEMDIE victim holds off further kills until its exit is done",
        _facts(**_FOLLOW_EXIT, oom_selection=_SEL_2636, memdie_alloc=_FAIL_LATER, oom_reaper=_NO_REAPER,
               oom_skip=_HOLD_EXIT, no_killable=_PANIC_LATER_F, file_gup=_FILE_W),
        FollowPageMunlock(), FollowPageMunlock(), _OLD_MUNLOCK, _POLICY_2636),
    Era("2.6.38", (("2.6.38-rc1", "3.12-rc1"),),
        "2.6.38 to 3.11: as 2.6.36; mlock write-faults only private writable file mappings",
        _facts(**_FOLLOW_EXIT, oom_selection=_SEL_2636, memdie_alloc=_FAIL_LATER, oom_reaper=_NO_REAPER,
               oom_skip=_HOLD_EXIT, no_killable=_PANIC_LATER_F, file_gup=_FILE_P),
        FollowPageMunlock(), FollowPageMunlock(), _OLD_MUNLOCK, _POLICY_2636),
    Era("3.12", (("3.12", "4.6-rc1"),),
        "3.12 to 4.5: pagevec-batched munlock (Babka); the dying victim holds off further kills until its exit is done",
        _facts(exit_munlock=_PAGEVEC, absent_pages=_WALKED_312, munlock_drain=_DRAIN_NONE, oom_selection=_SEL_2636,
               memdie_alloc=_FAIL_LATER, oom_reaper=_NO_REAPER, oom_skip=_HOLD_EXIT, no_killable=_PANIC_LATER_F,
               file_gup=_FILE_P),
        FollowPageMunlock(), FollowPageMunlock(), 1.0, _POLICY_2636),
    Era("4.6", (("4.6-rc1", "4.7-rc1"),),
        "4.6: OOM reaper, which skips VM_LOCKED VMAs and does nothing once the victim has passed exit_mm()",
        _facts(exit_munlock=_PAGEVEC, absent_pages=_WALKED_312, munlock_drain=_DRAIN_NONE, oom_selection=_SEL_2636,
               memdie_alloc=_FAIL_LATER, oom_reaper=_REAP46, oom_skip=_HOLD_46, no_killable=_PANIC_LATER_F,
               file_gup=_FILE_P),
        FollowPageMunlock(), FollowPageMunlock(), 1.0, dataclasses.replace(_POLICY_2636, oom_reaper="skips-locked")),
    Era("4.7", (("4.7", "4.9-rc1"),),
        "4.7 to 4.8: the reaper clears TIF_MEMDIE after its pass, so a slow exit munlock no longer holds off kills",
        _facts(exit_munlock=_PAGEVEC, absent_pages=_WALKED_312, munlock_drain=_DRAIN_NONE, oom_selection=_SEL_48,
               memdie_alloc=_FAIL_LATER, oom_reaper=_REAP48, oom_skip=_HOLD_48, no_killable=_PANIC_LATER_F,
               file_gup=_FILE_P),
        FollowPageMunlock(), FollowPageMunlock(), 1.0,
        OomPolicy("rss", True, oom_reaper="skips-locked", holdoff_until="reaper")),
    Era("4.9", (("4.9-rc1", "4.17-rc5"),),
        "4.9 to 4.16: the reaper sets MMF_OOM_SKIP after its pass, so a slow exit munlock no longer holds off kills",
        _facts(exit_munlock=_PAGEVEC, absent_pages=_WALKED_312, munlock_drain=_DRAIN_NONE, oom_selection=_SEL_49,
               memdie_alloc=_FAIL_LATER, oom_reaper=_REAP49, oom_skip=_HOLD_49, no_killable=_PANIC_LATER_F,
               file_gup=_FILE_P),
        FollowPageMunlock(), FollowPageMunlock(), 1.0,
        OomPolicy("rss", True, oom_reaper="skips-locked", holdoff_until="reaper")),
    Era("4.17", (("4.17-rc5", "5.18-rc1"),),
        "4.17 to 5.17: exit_mmap reaps an OOM victim and sets MMF_OOM_SKIP before munlock_vma_pages_all",
        _facts(exit_munlock=_PAGEVEC, absent_pages=_WALKED_312, munlock_drain=_DRAIN_NONE, oom_selection=_SEL_49,
               memdie_alloc=_FAIL_LATER, oom_reaper=_REAP417, oom_skip=_HOLD_417, no_killable=_PANIC_LATER_F,
               file_gup=_FILE_P),
        FollowPageMunlock(), FollowPageMunlock(), 1.0,
        OomPolicy("rss", True, oom_reaper="skips-locked", holdoff_until="exit-mmap-start")),
    Era("5.18", (("5.18-rc1", "6.1-rc1"),),
        "5.18 to 6.0: no munlock pass at exit (munlocked as ptes are zapped); the OOM reaper may reap mlocked VMAs",
        _facts(exit_munlock=_NO_PASS, absent_pages=_SKIPPED, munlock_drain=_DRAIN_518, oom_selection=_SEL_49,
               memdie_alloc=_FAIL_LATER, oom_reaper=_REAP518, oom_skip=_HOLD_518, no_killable=_PANIC_LATER_F,
               file_gup=_FILE_P),
        PteWalkMunlock(), None, 1.0,
        OomPolicy("rss", True, oom_reaper="reaps-locked", holdoff_until="exit-mmap-start", reaper_delay_s=2.0)),
    Era("6.1", (("6.1-rc1", None),),
        "6.1 and later: as 5.18; an exiting OOM victim holds off further kills until exit_mmap or the reaper is done",
        _facts(exit_munlock=_NO_PASS, absent_pages=_SKIPPED, munlock_drain=_DRAIN_518, oom_selection=_SEL_49,
               memdie_alloc=_FAIL_LATER, oom_reaper=_REAP518, oom_skip=_HOLD_61, no_killable=_PANIC_LATER_F,
               file_gup=_FILE_P),
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
    keys = list(behaviours or BEHAVIOURS)
    if sources:
        return pd.DataFrame([{"era": e.name, "behaviour": BEHAVIOURS[k], "value": e.facts[k].value,
                              "what the kernel did": e.facts[k].text, "source": e.facts[k].source}
                             for e in chosen for k in keys])
    return pd.DataFrame([{"era": e.name, "versions": e.versions, **{k: e.facts[k].value for k in keys}} for e in chosen])
