"""Simulated `munlock-partial`: munlock() of a VM_LOCKED range that is only partly populated.

Real runs get there with mlock2(MLOCK_ONFAULT) and touching part of the range, or with mlock stopped
by a memory cgroup limit. 2.6.31's munlock() runs the same write-GUP loop as exit and faults in the
rest, under mmap_sem, into pages that stay mapped until munmap; 2.6.32/3.12 walk every absent address;
5.18+ skips empty page tables (eras.py). Memory is finite (memory.py): a 2.6.31 munlock() that must
fault in more than free memory, clean page cache and swap provide makes the OOM killer choose the
munlocking task itself, and the row's `outcome` says so with every time null. On a writable shared file
mapping 2.6.31's munlock() write-faults and dirties every absent page (eras.GupFaultMunlock); the
munlocking task writes back itself what passes the dirty limit (balance_dirty_pages), and the row says
how many pages it dirtied and what their writeback costs (`writeback_s`, wherever it runs).
"""
from __future__ import annotations

import dataclasses
import math

import pandas as pd

from mmlab.core.params import choice, flag, real, size
from mmlab.core.units import PAGE_BYTES
from mmlab.sim import memory
from mmlab.sim.address_space import State, Strided, Vma
from mmlab.sim.eras import Era
from mmlab.sim.profile import Profile
from mmlab.sim.scenario import Scenario, SimParams, base_row
from mmlab.sim.sigkill import CACHES, MAPPINGS

NAME = "munlock-partial"


@dataclasses.dataclass(frozen=True)
class MunlockPartialParams(SimParams):
    vma_bytes: int = size("1GiB", "size of the VM_LOCKED range", hi=1 << 50)
    populated_fraction: float = real(0.5, "fraction of its pages present before munlock()", lo=0.0, hi=1.0)
    layout: str = choice("prefix", ("prefix", "strided"),
                         "prefix: the first pages present (as mlock leaves it); strided: one page in every 1/fraction")
    variant: str = choice("onfault", ("onfault", "cgroup-limit"), "how the real experiment made the state (label only)")
    mapping: str = choice("anon-private", MAPPINGS, "what the range maps")
    writable: bool = flag(True, "VM_WRITE: PROT_READ|PROT_WRITE (else PROT_READ)")
    page_cache: str = choice("warm", CACHES, "a file mapping's pages: warm (in the page cache, as far as free memory "
                             "and page cache hold them) | cold (read from disk at their fault)")


def run(era: Era, profile: Profile, vma_pages: int, fraction: float, layout: str = "prefix",
        mapping: str = "anon-private", writable: bool = True, page_cache: str = "warm") -> dict:
    """Physics of one munlock() call, as a flat dict; `outcome` is `returned` when munlock() returned. The
    present pages of a file range are taken as clean (written back since they were touched)."""
    anon, shared = mapping.startswith("anon"), mapping.endswith("shared")
    flags = dict(anon=anon, writable=writable, shared=shared, cached=page_cache != "cold")
    if layout == "strided" and fraction > 0:
        vma = Strided(vma_pages, max(1, round(1 / fraction)), **flags)
    else:
        vma = Vma.prefix(vma_pages, round(vma_pages * fraction), State.LOCKED, **flags)
    w = era.munlock(vma, era.munlock_factor)
    w.counts["munlock_call_s"] += 1
    mem = memory.Memory.of(profile)
    # the present pages were mlocked when they were populated: new pages (anonymous, COW copies, file pages
    # read from disk) taken from memory, a warm file's cached pages locked in place
    cached = 0 if anon or page_cache == "cold" else min(vma_pages, mem.free + mem.page_cache)
    in_place = min(vma.present, cached) if not anon and not (writable and not shared) else 0
    held = memory.populate(memory.cache_file(mem, cached, locked=in_place), vma.present - in_place)
    got = memory.take(held.left, w.allocated)  # munlocked pages and the new ones may go to swap
    if cached and w.faulted:  # pages past what the page cache holds are read in
        w.read(memory.read_past_cache(cached, vma.present, w.faulted))
    files = memory.file_pages(got.left, memory.dirty_limit(profile.free_bytes), 0, w.dirtied, w.read_in)
    w.counts.update(got.counts)
    w.counts.update(files.counts)
    outcome = (memory.OOM_DURING_MLOCK if held.short else
               memory.munlock_outcome(got.short, memory.when_short(era)))
    s, lo, hi = profile.price(w.counts) if outcome == memory.RETURNED else (math.nan,) * 3
    wb = profile.price({"writeback_ns": w.dirtied}) if outcome == memory.RETURNED else (math.nan,) * 3
    return {"vma_bytes": vma_pages * PAGE_BYTES, "populated_bytes": vma.present * PAGE_BYTES,
            "populated_fraction": vma.present / vma_pages if vma_pages else 0.0, "layout": layout,
            "mapping": mapping, "writable": writable, "page_cache": "" if anon else page_cache,
            "outcome": outcome, "munlock_s": s, "munlock_s_lo": lo, "munlock_s_hi": hi,
            "munlock_ns_per_page": s / vma_pages * 1e9 if vma_pages else float("nan"),
            "pages_needed": w.faulted, "pages_faulted": w.faulted - got.short,
            "bytes_allocated": (w.allocated - got.short) * PAGE_BYTES, "bytes_short": got.short * PAGE_BYTES,
            "pages_swapped_out": got.swapped_out, "pages_munlocked": w.munlocked,
            "pages_read": w.read_in, "pages_dirtied": w.dirtied, "pages_throttled": files.throttled,
            "writeback_s": wb[0], "writeback_s_lo": wb[1], "writeback_s_hi": wb[2]}


def simulate(p: MunlockPartialParams) -> pd.DataFrame:
    """One tidy row: the outcome, munlock() seconds (with interval; null unless it returned) and what it faulted in."""
    row = run(p.era, p.machine(), math.ceil(p.vma_bytes / PAGE_BYTES), p.populated_fraction, p.layout, p.mapping,
              p.writable, p.page_cache)
    return pd.DataFrame([{**base_row(NAME, p), "variant": p.variant, **row}])


SCENARIO = Scenario(NAME, "munlock() of a partly populated VM_LOCKED range: time, pages faulted in",
                    MunlockPartialParams, simulate)
