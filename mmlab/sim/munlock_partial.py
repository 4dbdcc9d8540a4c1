"""Simulated `munlock-partial`: munlock() of a VM_LOCKED range that is only partly populated.

Real runs get there with mlock2(MLOCK_ONFAULT) and touching part of the range, or with mlock stopped
by a memory cgroup limit. 2.6.31's munlock() runs the same write-GUP loop as exit and faults in the
rest, under mmap_sem, into pages that stay mapped until munmap; 2.6.32/3.12 walk every absent address;
5.18+ skips empty page tables (eras.py). Memory is finite (memory.py): a 2.6.31 munlock() that must
fault in more than free memory, clean page cache and swap provide makes the OOM killer choose the
munlocking task itself, and the row's `outcome` says so with every time null.
"""
from __future__ import annotations

import dataclasses
import math

import pandas as pd

from mmlab.core.params import choice, real, size
from mmlab.core.units import PAGE_BYTES
from mmlab.sim import memory
from mmlab.sim.address_space import State, Strided, Vma
from mmlab.sim.eras import Era
from mmlab.sim.profile import Profile
from mmlab.sim.scenario import Scenario, SimParams, base_row

NAME = "munlock-partial"


@dataclasses.dataclass(frozen=True)
class MunlockPartialParams(SimParams):
    vma_bytes: int = size("1GiB", "size of the VM_LOCKED range", hi=1 << 50)
    populated_fraction: float = real(0.5, "fraction of its pages present before munlock()", lo=0.0, hi=1.0)
    layout: str = choice("prefix", ("prefix", "strided"),
                         "prefix: the first pages present (as mlock leaves it); strided: one page in every 1/fraction")
    variant: str = choice("onfault", ("onfault", "cgroup-limit"), "how the real experiment made the state (label only)")


def run(era: Era, profile: Profile, vma_pages: int, fraction: float, layout: str = "prefix") -> dict:
    """Physics of one munlock() call, as a flat dict; `outcome` is `returned` when munlock() returned."""
    if layout == "strided" and fraction > 0:
        vma = Strided(vma_pages, max(1, round(1 / fraction)))
    else:
        vma = Vma.prefix(vma_pages, round(vma_pages * fraction), State.LOCKED)
    w = era.munlock(vma, era.munlock_factor)
    w.counts["munlock_call_s"] += 1
    mem = memory.Memory.of(profile)
    held = memory.populate(mem, vma.present)  # the present pages were mlocked when they were populated
    got = memory.take(held.left, w.allocated)  # munlocked pages and the new ones may go to swap
    w.counts.update(got.counts)
    outcome = (memory.OOM_DURING_MLOCK if held.short else
               memory.munlock_outcome(got.short, memory.when_short(era)))
    s, lo, hi = profile.price(w.counts) if outcome == memory.RETURNED else (math.nan,) * 3
    return {"vma_bytes": vma_pages * PAGE_BYTES, "populated_bytes": vma.present * PAGE_BYTES,
            "populated_fraction": vma.present / vma_pages if vma_pages else 0.0, "layout": layout,
            "outcome": outcome, "munlock_s": s, "munlock_s_lo": lo, "munlock_s_hi": hi,
            "munlock_ns_per_page": s / vma_pages * 1e9 if vma_pages else float("nan"),
            "pages_needed": w.faulted, "pages_faulted": w.faulted - got.short,
            "bytes_allocated": (w.allocated - got.short) * PAGE_BYTES, "bytes_short": got.short * PAGE_BYTES,
            "pages_swapped_out": got.swapped_out, "pages_munlocked": w.munlocked}


def simulate(p: MunlockPartialParams) -> pd.DataFrame:
    """One tidy row: the outcome, munlock() seconds (with interval; null unless it returned) and what it faulted in."""
    row = run(p.era, p.machine(), math.ceil(p.vma_bytes / PAGE_BYTES), p.populated_fraction, p.layout)
    return pd.DataFrame([{**base_row(NAME, p), "variant": p.variant, **row}])


SCENARIO = Scenario(NAME, "munlock() of a partly populated VM_LOCKED range: time, pages faulted in",
                    MunlockPartialParams, simulate)
