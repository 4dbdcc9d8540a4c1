"""Simulated `sigkill-during-mlock`: mlock() populates a VMA, SIGKILL stops it part-way, the process exits.

Since 4779280d1ea4 (2.6.29) get_user_pages checks fatal_signal_pending per page, so mlock stops where
it got; the VMA stays VM_LOCKED with a populated prefix (kernel-history 1, 2). What the exit then
costs is the era's exit_mmap (eras.py): 2.6.31 faults in every page mlock never reached.
"""
from __future__ import annotations

import dataclasses
import math
from collections import Counter

import pandas as pd

from mmlab.core.params import ParamError, choice, flag, seconds, size
from mmlab.core.units import PAGE_BYTES
from mmlab.sim.address_space import State, Vma
from mmlab.sim.eras import Era, exit_mmap
from mmlab.sim.profile import Profile
from mmlab.sim.scenario import Scenario, SimParams, base_row

NAME = "sigkill-during-mlock"
MAPPINGS = ("anon-private", "file-private", "file-shared")


@dataclasses.dataclass(frozen=True)
class SigkillParams(SimParams):
    vma_bytes: int = size("1GiB", "size of the mlocked VMA", hi=1 << 50)
    populated_bytes: int = size("256MiB", "bytes mlock has populated when SIGKILL arrives (kill_at = populated)", lo=0, hi=1 << 50)
    kill_at: str = choice("populated", ("populated", "time"), "kill when populated_bytes are populated, or after kill_after_s")
    kill_after_s: float = seconds(2.0, "seconds after mlock() starts that SIGKILL arrives (kill_at = time)", hi=86400)
    mapping: str = choice("anon-private", MAPPINGS, "what the VMA maps")
    writable: bool = flag(True, "VM_WRITE: PROT_READ|PROT_WRITE (else PROT_READ)")
    free_bytes: int = size(0, "memory free before mlock; 0 = the profile's free memory", lo=0, hi=1 << 50)

    def check(self) -> None:
        super().check()
        if self.kill_at == "populated" and self.populated_bytes > self.vma_bytes:
            raise ParamError("populated_bytes", self.populated_bytes, f"at most vma_bytes ({self.vma_bytes})", "exceeds the VMA")


def populated_after(profile: Profile, vma_pages: int, free_pages: int, t_s: float, per_page_ns: float) -> tuple[int, float]:
    """Pages mlock has populated after t_s, and the time it took: free memory first at the populate
    cost, then each page also costs a reclaim (reclaim_ns) once free memory is used up."""
    fast = min(vma_pages, free_pages)
    t_fast = fast * per_page_ns * 1e-9
    if t_s <= t_fast:
        n = int(t_s / (per_page_ns * 1e-9))
        return n, n * per_page_ns * 1e-9
    slow_ns = per_page_ns + profile["reclaim_ns"]
    n = min(vma_pages, fast + int((t_s - t_fast) / (slow_ns * 1e-9)))
    return n, t_fast + (n - fast) * slow_ns * 1e-9


def run(era: Era, profile: Profile, vma_pages: int, populated_pages: int | None = None, kill_after_s: float = 0.0,
        mapping: str = "anon-private", writable: bool = True, free_pages: int | None = None,
        room_pages: int | None = None, oom_kill: bool = False) -> dict:
    """The physics of one point, as a flat dict (fast enough for 10,000-point sweeps). `room_pages`: what
    a memory cgroup's limit lets the exit allocate (None = no group): the old munlock pass stops there.
    `oom_kill`: a pass stopped by the limit invokes the group's OOM killer (default OOM handling), whose
    own time (`oom_kill_s`: reclaim retries, selection, report) comes before the reap."""
    anon, shared = mapping.startswith("anon"), mapping.endswith("shared")
    free_pages = profile.free_bytes // PAGE_BYTES if free_pages is None else free_pages
    per_page_ns = profile["populate_mlock_ns"] if anon else profile["file_fault_ns"]
    if populated_pages is None:
        populated_pages, mlock_s = populated_after(profile, vma_pages, free_pages, kill_after_s, per_page_ns)
    else:
        over = max(0, populated_pages - free_pages) if anon else 0
        mlock_s = (populated_pages * per_page_ns + over * profile["reclaim_ns"]) * 1e-9
    vma = Vma.prefix(vma_pages, populated_pages, State.LOCKED, anon=anon, writable=writable, shared=shared)
    munlock, unmap = exit_mmap(era, vma, None if room_pages is None else max(0, room_pages))
    # allocations at exit beyond what is still free each need a page reclaimed first
    reclaimed = max(0, munlock.allocated - max(0, free_pages - (populated_pages if anon else 0)))
    munlock.counts["reclaim_ns"] += reclaimed
    pass_s = profile.price(munlock.counts)
    mm_s = profile.price(munlock.counts + unmap.counts)
    fixed = Counter(exit_base_s=1, oom_kill_s=int(oom_kill and munlock.limit_hit))
    exit_s = tuple(m + f for m, f in zip(mm_s, profile.price(fixed)))
    return {
        "vma_bytes": vma_pages * PAGE_BYTES, "populated_bytes": populated_pages * PAGE_BYTES,
        "mapping": mapping, "writable": writable, "unreached_pages": vma_pages - populated_pages,
        "mlock_s": mlock_s,
        "exit_s": exit_s[0], "exit_s_lo": exit_s[1], "exit_s_hi": exit_s[2],
        "kill_to_reap_s": exit_s[0], "kill_to_reap_s_lo": exit_s[1], "kill_to_reap_s_hi": exit_s[2],
        "exit_mm_s": mm_s[0], "exit_mm_s_lo": mm_s[1], "exit_mm_s_hi": mm_s[2],
        "munlock_pass_s": pass_s[0],
        "exit_pages_faulted": munlock.faulted, "exit_bytes_allocated": munlock.allocated * PAGE_BYTES,
        "exit_pages_munlocked": munlock.munlocked + unmap.munlocked, "exit_pages_zero_page": munlock.zero_page,
        "exit_pages_reclaimed": reclaimed, "exit_oom_kills": fixed["oom_kill_s"],
    }


def simulate(p: SigkillParams) -> pd.DataFrame:
    """One tidy row: exit seconds (with interval), pages faulted and bytes allocated during exit, pages munlocked."""
    prof = p.machine()
    free = None if p.free_bytes == 0 else p.free_bytes // PAGE_BYTES
    populated = math.ceil(p.populated_bytes / PAGE_BYTES) if p.kill_at == "populated" else None
    row = run(p.era, prof, math.ceil(p.vma_bytes / PAGE_BYTES), populated, p.kill_after_s, p.mapping, p.writable, free)
    row["vma_bytes"] = p.vma_bytes
    return pd.DataFrame([{**base_row(NAME, p), **row, "kill_at": p.kill_at,
                          "kill_after_s": p.kill_after_s if p.kill_at == "time" else float("nan")}])


SCENARIO = Scenario(NAME, "mlock() of a VMA, SIGKILL part-way, exit: time from kill to reap and what exit faulted in",
                    SigkillParams, simulate)
