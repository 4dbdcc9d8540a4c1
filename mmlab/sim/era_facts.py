"""The sourced facts of the kernel eras: each behaviour an era states, with the commit, the kernel function
at a version or the LKML message it rests on. `eras` builds the eras from these."""
from __future__ import annotations

import dataclasses


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


# --- sources ------------------------------------------------------------------------------------------
V2631 = "v2.6.31 (74fca6a42863)"
MLOCK_GUP = (f"mm/mlock.c __mlock_vma_pages_range @ {V2631}: munlock sets GUP_FLAGS_IGNORE_VMA_PERMISSIONS|"
              "GUP_FLAGS_IGNORE_SIGKILL, and GUP_FLAGS_WRITE if VM_WRITE; mm/memory.c __get_user_pages faults "
              "while follow_page() finds no page")
FOLLOW = ("408e82b78bcc 'mm: munlock use follow_page' (2.6.32-rc1, Cc: stable; "
           "<Pine.LNX.4.64.0909072227140.15430@sister.anvils>); in stable 2.6.31.3: mm/mlock.c "
           "munlock_vma_pages_range follow_page(FOLL_GET) loop @ 'Linux 2.6.31.3' (GitHub jz47xx/linux-2.6.31.3) "
           "and @ 2.6.31.12 (darion76/linux-sharp-netwalker-2.6.31), GUP_FLAGS_IGNORE_SIGKILL still in mm/internal.h")
FILE_FAULT = (f"mm/memory.c @ {V2631}: __get_user_pages sets FOLL_WRITE under GUP_FLAGS_WRITE and follow_page() "
              "returns NULL for an absent pte (and under FOLL_WRITE for a present one without pte_write), so it calls "
              "handle_mm_fault(FAULT_FLAG_WRITE); __do_fault: !VM_SHARED allocates a page and copy_user_highpage()s "
              "the page-cache page into it (COW), VM_SHARED calls ->page_mkwrite, maps the pte dirty and "
              "set_page_dirty_balance() (mm/page-writeback.c: balance_dirty_pages throttles the dirtier past "
              "vm_dirty_ratio = 20); without GUP_FLAGS_WRITE a file VMA gets no FOLL_ANON (use_zero_page: "
              "vm_ops->fault is set), so an absent page is read-faulted from the page cache (filemap_fault reads it in)")
ANON_ALLOC = ("do_anonymous_page allocates and zeroes on read faults from 557ed1fa2620 (2.6.24) until "
               "a13ea5b75964 'mm: reinstate ZERO_PAGE' (2.6.32) <Pine.LNX.4.64.0909072238320.15430@sister.anvils>; "
               "a read-only VMA gets ZERO_PAGE via FOLL_ANON")
BABKA = ("Vlastimil Babka, 'Improving munlock() performance for large non-THP areas' (3.12; mm/mlock.c "
          "munlock_vma_pages_range @ 3.11.0, GitHub PKUCloud/linux-3.11-cloud, has none of it) "
          "<1376915022-12741-1-git-send-email-vbabka@suse.cz>: pagevec batches, pte walk within a table; "
          "follow_page_mask still called at every hole")
A213 = ("a213e5cf71cb 'mm/munlock: delete munlock_vma_pages_all(), allow oomreap' (5.18-rc1); munlock() "
         "walks with walk_page_range(mlock_pte_range), 34b6792380ce (5.18-rc1)")
DRAIN_2631 = f"mm/mlock.c __mlock_vma_pages_range @ {V2631}: lru_add_drain() after each __get_user_pages batch of 16"
DRAIN_ONCE = ("408e82b78bcc: munlock_vma_pages_range calls lru_add_drain() once before its loop; per page from "
               "ff6a6da60b89 'mm: accelerate munlock() treatment of THP pages' (3.9), removed by Babka's "
               "'mm: munlock: remove unnecessary call to lru_add_drain()' <1376915022-12741-3-git-send-email-vbabka@suse.cz>")
OOM_OLD = (f"mm/oom_kill.c select_bad_process @ {V2631} and @ 2.6.35.6: `if (!p->mm) continue;` before the "
            "TIF_MEMDIE test; badness() starts from mm->total_vm")
OOM_2636 = ("mm/oom_kill.c select_bad_process @ 2.6.36.4: TIF_MEMDIE returns ERR_PTR(-1UL) with no ->mm test "
             "before it; oom_badness() from get_mm_rss (David Rientjes' rewrite, "
             "<alpine.DEB.2.00.1003170154590.31796@chino.kir.corp.google.com>); @ 3.11.0 and 4.6.2 oom_scan_process_thread: "
             "TIF_MEMDIE -> OOM_SCAN_ABORT before `if (!task->mm)`")
OOM_49 = ("mm/oom_kill.c oom_evaluate_task @ v4.9: tsk_is_oom_victim() -> abort unless MMF_OOM_SKIP on "
           "signal->oom_mm (26db62f179d1 'oom: keep mm of the killed task available', 862e3073b3ee "
           "'mm, oom: get rid of signal_struct::oom_victims', 4.9-rc1); badness from rss")
RIENTJES = ("6583bb64fc37 'mm: avoid endless looping for oom killed tasks' (2.6.31-rc5; "
             "<alpine.DEB.2.00.0907170326400.18608@chino.kir.corp.google.com>, acked by Hugh Dickins "
             "<Pine.LNX.4.64.0907171337290.3925@sister.anvils>): __alloc_pages_slowpath goes to nopage for TIF_MEMDIE")
RC1_LOOP = ("11e33f6a55ed 'page allocator: break up the allocator entry point into fast and slow paths' "
             "(2.6.31-rc1) dropped 2.6.30's `goto nopage` after a failed ALLOC_NO_WATERMARKS try "
             "(__alloc_pages_internal @ v2.6.30); __alloc_pages_slowpath @ v2.6.31-rc4 calls "
             "__alloc_pages_may_oom and `goto restart` until 6583bb64fc37 (2.6.31-rc5)")
PANIC = f"mm/oom_kill.c __out_of_memory @ {V2631}: panic(\"Out of memory and no killable processes...\\n\")"
PANIC_LATER = ("not modelled differently after 2.6.31: out_of_memory still panics when it finds no task to "
                "kill (kernel-history 4); later messages not checked here")
REAPER_46 = ("aac453635549 'mm, oom: introduce oom reaper', 36324a990cf5 'oom: clear TIF_MEMDIE after "
              "oom_reaper managed to unmap the address space' (4.6-rc1); mm/oom_kill.c __oom_reap_task @ 4.6.2: "
              "skips VM_LOCKED, returns early when find_lock_task_mm() finds no mm")
REAPER_48 = ("mm/oom_kill.c oom_reap_task @ 4.7.4 (GitHub calebwilliamsd/linux-4.7.4-casio) and @ 4.8.15 "
              "(squirrel20/linux-4.8.15): skips VM_LOCKED; ends with "
              "exit_oom_victim(tsk) whatever it reaped (also when find_lock_task_mm() finds no mm), clearing "
              "TIF_MEMDIE and signal->oom_victims; oom_scan_process_thread aborts while signal->oom_victims is set")
REAPER_49 = ("mm/oom_kill.c __oom_reap_task_mm / oom_reap_task @ v4.9: skips VM_LOCKED; `done:` sets MMF_OOM_SKIP "
              "after every attempt, also when mmget_not_zero() fails; 212925802454 (4.14) lets it run concurrently "
              "with exit_mmap")
COMMIT_27AE = ("27ae357fa82b 'mm, oom: fix concurrent munlock and oom reaper unmap, v3' (4.17-rc5; Cc: stable [4.14+]; "
         "<alpine.DEB.2.21.1804241526320.238665@chino.kir.corp.google.com>): exit_mmap of an OOM victim runs "
         "__oom_reap_task_mm, sets MMF_OOM_SKIP, then munlock_vma_pages_all; can_madv_dontneed_vma skips VM_LOCKED")
DELAY = ("e4a38402c36e 'oom_kill.c: futex: delay the OOM reaper to allow time for proper futex cleanup' "
          "(5.18-rc4): OOM_REAPER_DELAY 2*HZ")
DROP = ("'mm: drop oom code from exit_mmap' (Suren Baghdasaryan; the parent of b3541d912a84 'mm: delete "
         "unused MMF_OOM_VICTIM flag', both committed to the mm tree on 2022-09-26, after 6.0-rc7, so 6.1-rc1): "
         "exit_mmap sets MMF_OOM_SKIP after "
         "unmapping, no early reap")
FILE_VMWRITE = (f"mm/mlock.c __mlock_vma_pages_range @ {V2631} and @ 2.6.36.4: GUP_FLAGS_WRITE / FOLL_WRITE "
                 "whenever vma->vm_flags & VM_WRITE, shared mappings too")
FILE_PRIVATE = ("5ecfda041e4b 'mlock: avoid dirtying pages and triggering writeback' (2.6.38-rc1; "
                 "<1289996638-21439-4-git-send-email-walken@google.com>): write only if "
                 "(VM_WRITE | VM_SHARED) == VM_WRITE; mm/mlock.c @ 2.6.38")
KSM_LOOP = ("mmotm of August 2009 with 'ksm: fix oom deadlock': ksm_test_exit() in the fault path installs no pte "
             "once mm_users is 0, so GUP retries the exit-time fault forever "
             "(Andrea Arcangeli <20090825145832.GP14722@random.random>, Hugh Dickins "
             "<Pine.LNX.4.64.0908251738070.30372@sister.anvils>); Hugh's series was 'against current mmotm' "
             "<Pine.LNX.4.64.0909072222070.15424@sister.anvils>")

# Babka (kernel-history 5): munlock of 56 GB, 3.11 -> 3.12: 3.39 s -> 1.92 s. 3.11 munlocked page by page
# (follow_page_mask, lock_page, single-page LRU isolation) and drained the LRU pagevec at every page
# (since ff6a6da60b89, 3.9); removing that drain alone gave about 10% (Babka 2/7). Older kernels drained
# once per batch of 16 (2.6.31) or once per call (2.6.32-3.8), so the factor is a prior for their per-page
# munlock cost that may overstate it by up to that drain's share.
OLD_MUNLOCK = 3.39 / 1.92

GUP = Fact("gup-write-fault", "__get_user_pages in batches of 16 with IGNORE_SIGKILL, write faults on VM_WRITE", MLOCK_GUP)
FOLLOW_PAGE = Fact("follow-page", "follow_page per address; present pages munlocked, nothing faulted", FOLLOW)
PAGEVEC = Fact("follow-page-pagevec", "follow_page_mask at each hole, pagevec-batched munlock of present ptes", BABKA)
NO_PASS = Fact("none", "no pass: each present page is munlocked as its pte is zapped (mlock_count)", A213)
FAULTED = Fact("faulted", "allocated and zeroed (writable anon), COWed (writable private file), write-faulted and "
              "dirtied, so written back (writable shared file), read-faulted (read-only file); read-only anon: "
              "ZERO_PAGE, no allocation", f"{MLOCK_GUP}; {FILE_FAULT}; {ANON_ALLOC}")
WALKED = Fact("walked", "one page-table walk each (follow_page finds no page), no fault", FOLLOW)
WALKED_312 = Fact("walked", "one page-table walk each (follow_page_mask at each hole), no fault", BABKA)
SKIPPED = Fact("skipped", "cost nothing: empty page tables are skipped, pte_none entries stepped over", A213)
DRAIN_BATCH = Fact("per-batch-of-16", "lru_add_drain once per GUP batch of 16 pages", DRAIN_2631)
DRAIN_CALL = Fact("once-per-call", "lru_add_drain once per munlock_vma_pages_range call; per page in 3.9-3.11 "
                 "(priced by the same munlock factor)", DRAIN_ONCE)
DRAIN_NONE = Fact("none", "no lru_add_drain in the munlock loop; pagevecs drained as they fill", BABKA)
DRAIN_518 = Fact("per-call", "mlock_fixup and an lru_add_drain per munlock() call (munlock_call_s); none at exit", A213)
SEL_OLD = Fact("total_vm, dying task invisible", "badness() = total_vm (the unfaulted mlock range counts); a victim "
              "past exit_mm() has no ->mm and is skipped, TIF_MEMDIE and all", OOM_OLD)
SEL_2636 = Fact("rss, TIF_MEMDIE blocks", "oom_badness() = rss + swap; any TIF_MEMDIE task, with or without ->mm, "
               "makes the killer wait", OOM_2636)
SEL_48 = Fact("rss, oom_victims blocks", "oom_badness() = rss; a task whose signal->oom_victims is set blocks "
             "new choices, with or without ->mm, until exit_oom_victim()", REAPER_48)
SEL_49 = Fact("rss, oom_mm blocks until MMF_OOM_SKIP", "oom_badness() = rss; an OOM victim is found through "
             "signal->oom_mm after exit_mm() and blocks new choices until its mm has MMF_OOM_SKIP", OOM_49)
FAIL_2631 = Fact("fail", "fails (nopage): the fault returns VM_FAULT_OOM, __get_user_pages -ENOMEM, munlock gives "
                "up the VMA", RIENTJES)
RETRY = Fact("retry", "loops: direct reclaim, __alloc_pages_may_oom (which kills another task, the victim being "
            "invisible), restart", RC1_LOOP)
FAIL_LATER = Fact("fail", "fails as in 2.6.31-rc5 (not exercised: the exit munlock pass allocates nothing)", RIENTJES)
NO_REAPER = Fact("none", "no OOM reaper", "aac453635549 'mm, oom: introduce oom reaper' is 4.6-rc1")
REAP46 = Fact("skips-locked", "wakes at the kill, skips VM_LOCKED VMAs; if the victim has already passed exit_mm() "
             "it finds no mm and does nothing (TIF_MEMDIE stays); otherwise it unmaps the rest and clears TIF_MEMDIE",
             REAPER_46)
REAP49 = Fact("skips-locked", "wakes at the kill, skips VM_LOCKED VMAs, then sets MMF_OOM_SKIP whatever it freed",
             REAPER_49)
REAP48 = Fact("skips-locked", "wakes at the kill, skips VM_LOCKED VMAs, then clears TIF_MEMDIE whatever it freed",
             REAPER_48)
REAP417 = Fact("skips-locked", "wakes at the kill, skips VM_LOCKED VMAs; exit_mmap reaps the same way itself", COMMIT_27AE)
REAP518 = Fact("reaps-locked", "queued OOM_REAPER_DELAY (2 s) after the kill; may reap mlocked VMAs",
              f"{A213}; {DELAY}")
HOLD_NONE = Fact("exit-mm", "no hold-off once the victim passed exit_mm(): it is invisible, the next OOM kills again",
                OOM_OLD)
HOLD_EXIT = Fact("exit-done", "TIF_MEMDIE holds off every new choice until exit_mm() clears it after mmput(): the "
                "whole exit, munlock pass included", OOM_2636)
HOLD_46 = Fact("exit-done", "as 3.12 when the victim has passed exit_mm() before the reaper runs (modelled); held "
              "off only until the reaper's pass if the reaper wins that race", REAPER_46)
HOLD_49 = Fact("reaper", "MMF_OOM_SKIP from the reaper right after the kill: a slow exit munlock no longer holds "
              "off further kills", f"{REAPER_49}; {OOM_49}")
HOLD_48 = Fact("reaper", "the reaper's exit_oom_victim() right after the kill ends the hold-off: a slow exit "
              "munlock no longer holds off further kills", REAPER_48)
HOLD_417 = Fact("exit-mmap-start", "MMF_OOM_SKIP set by exit_mmap before munlock_vma_pages_all (and by the reaper)",
               COMMIT_27AE)
HOLD_518 = Fact("exit-mmap-start", "MMF_OOM_SKIP set by exit_mmap after its own reap, before unmapping", COMMIT_27AE)
HOLD_61 = Fact("exit-done", "MMF_OOM_SKIP only when exit_mmap has unmapped everything, or when the reaper (2 s "
              "later) has reaped", f"{DROP}; {DELAY}")
PANIC_F = Fact("panic", "panic: Out of memory and no killable processes...", PANIC)
PANIC_LATER_F = Fact("panic", "panic (no task to kill)", PANIC_LATER)
FILE_W = Fact("VM_WRITE", "write-GUP whenever VM_WRITE: private file pages COWed, shared ones dirtied at mlock",
             FILE_VMWRITE)
FILE_P = Fact("private-write", "write-GUP only for private writable mappings; shared pages read, not dirtied",
             FILE_PRIVATE)


def facts(**kw: Fact) -> dict:
    missing = set(BEHAVIOURS) - set(kw)
    assert not missing, f"behaviours without a fact: {missing}"
    return {k: kw[k] for k in BEHAVIOURS}


