"""In-row probes: the per-page cost of one kernel operation measured on a small separate VMA, in the same
child and moments before the row's timed work, so the row carries the price of that operation on this
host at that moment.

Why: on this KVM guest a per-page cost moves between states ~1.4x apart (munlock 190 vs 260 ns/page,
munmap of locked pages 400 vs 570 ns/page) that persist for seconds and differ between processes started
a few seconds apart. A profile fitted from other runs cannot know which state a row ran in; a probe next
to the row does. The simulator is then checked on what it claims (which operations an era does, how many
of each), priced at the costs of this moment: `mmlab.sim.validate` prices each row with its probes.

A probe that cannot run (RLIMIT_MEMLOCK without CAP_IPC_LOCK, ENOMEM) returns no cost and its reason;
it never fails the row.
"""
from __future__ import annotations

import errno
import os
import time

from mmlab.core.probe_price import bracketed
from mmlab.core.units import PAGE_BYTES
from mmlab.experiments.cut_short import map_anon, populate
from mmlab.kernel import libc

DEFAULT_PROBE_BYTES = 16 << 20  # 4096 pages: ~1 ms of munlock, long enough to be far above the timer's floor


NULL_CALLS = 8  # zero-length munlock() calls just before the timed one


def warm_munlock_path(addr: int, calls: int = NULL_CALLS) -> int:
    """Zero-length munlock() calls (the syscall entry and mmap_lock, no VMA touched: apply_vma_lock_flags
    returns at start == end) so the timed call does not pay for a CPU just woken from the pipe handshake
    (a cold first call here took ~57 us against ~2 us warm). Returns the last call's ns: the harness floor."""
    ns = 0
    for _ in range(calls):
        t0 = time.monotonic_ns()
        libc.munlock(addr, 0)
        ns = time.monotonic_ns() - t0
    return ns


def _locked(probe_bytes: int, onfault: bool = False) -> tuple[int | None, str | None]:
    """A mapped, mlocked (so populated) probe VMA, or None and why not; with `onfault`, mlock2
    (MLOCK_ONFAULT)ed and still empty, populated later by its caller."""
    addr = map_anon(probe_bytes)
    try:
        if onfault:
            libc.mlock2(addr, probe_bytes, libc.MLOCK_ONFAULT)
        else:
            libc.mlock(addr, probe_bytes)
    except OSError as e:
        libc.munmap(addr, probe_bytes)
        if e.errno in (errno.EPERM, errno.ENOMEM, errno.EAGAIN):
            return None, f"mlock of the {probe_bytes >> 10} KiB probe failed: {errno.errorcode.get(e.errno, e.errno)}"
        raise
    return addr, None


def _munlock_then_unmap(addr: int, size: int) -> float:
    """munlock() of a locked, populated probe VMA in ns per page, timed as the row's own munlock() is (the
    syscall path warmed first with zero-length calls); the VMA is unmapped after."""
    try:
        return _munlock_timed(addr, size)
    finally:
        libc.munmap(addr, size)


def _munlock_timed(addr: int, size: int) -> float:
    """munlock() of `size` locked, populated bytes at `addr`, timed after zero-length calls, in ns per page."""
    warm_munlock_path(addr, 4)
    t0 = time.monotonic_ns()
    libc.munlock(addr, size)
    return (time.monotonic_ns() - t0) / (size // PAGE_BYTES)


def munlock_ns_per_page(probe_bytes: int = DEFAULT_PROBE_BYTES) -> tuple[float | None, str | None]:
    """munlock() of a fully populated locked VMA, per page; (None, reason) if it cannot be locked."""
    addr, why = _locked(probe_bytes)
    if addr is None:
        return None, why
    return _munlock_then_unmap(addr, probe_bytes), None


INTERLEAVE_CHUNKS = 16  # target and probe pages populated in turns, so both come from the same free pages
PTE_SPAN_BYTES = 512 * PAGE_BYTES  # memory one page-table page maps (x86-64: 512 entries)
# At a memory group's limit, the share of the target's pages that fit under it which the probes are populated
# beside: the rest is margin for the charges the kernel adds on the way (page tables, slab), so the probes'
# last turn never meets the limit.
LIMIT_SPAN_SHARE = 0.75


def limit_span_bytes(fit_bytes: int) -> int:
    """How much of a target whose first `fit_bytes` fit under a group's limit the probes are populated
    beside (`LIMIT_SPAN_SHARE`), in whole pages."""
    return int(fit_bytes * LIMIT_SPAN_SHARE) // PAGE_BYTES * PAGE_BYTES


def limit_room_bytes(probe_bytes: int, vmas: int) -> int:
    """Room a group's limit must add for `probe_bytes` of probe pages populated inside it, in `vmas` VMAs:
    the pages and the page tables they need (one per 2 MiB, plus one at the edge of each VMA), so the
    target stops where it would without probes. 0 for no probe pages."""
    return probe_bytes + (-(-probe_bytes // PTE_SPAN_BYTES) + vmas) * PAGE_BYTES if probe_bytes else 0


def interleave_plan(target_bytes: int, probe_bytes: int, chunks: int = INTERLEAVE_CHUNKS) -> list[tuple[int, int, int, int]]:
    """Turns of an interleaved populate: (target offset, target length, probe offset, probe length), page
    aligned, together covering the target's first `target_bytes` and each probe's `probe_bytes` once each."""
    def span(total: int, i: int) -> tuple[int, int]:
        pages = total // PAGE_BYTES
        lo, hi = pages * i // chunks, pages * (i + 1) // chunks
        return lo * PAGE_BYTES, (hi - lo) * PAGE_BYTES
    return [(*span(target_bytes, i), *span(probe_bytes, i)) for i in range(chunks)]


def mlock_in_turns(addr: int, nbytes: int, probes: list[int], size: int,
                   chunks: int = INTERLEAVE_CHUNKS) -> tuple[int, int | None]:
    """mlock() of [addr, addr+nbytes) in `chunks` pieces, each followed by the populate of the same share of
    every probe's `size` bytes (`interleave_plan`), so target and probes take pages from the same free
    memory; the VM_LOCKED pieces merge back into one VMA. Returns the ns of the mlock() calls alone and the
    errno that stopped them (EAGAIN or ENOMEM: a memory group's limit), None if none; other errors raise."""
    ns, err = 0, None
    for t_off, t_len, p_off, p_len in interleave_plan(nbytes, size, chunks):
        t0 = time.monotonic_ns()
        try:
            libc.mlock(addr + t_off, t_len)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ENOMEM):
                raise
            err = e.errno
        ns += time.monotonic_ns() - t0
        if err is not None:
            break
        for q in probes:
            populate(q + p_off, p_len)
    return ns, err


def onfault_probes(count: int, probe_bytes: int, reserve_bytes: int = 0) -> tuple[list[int], int]:
    """`count` probe VMAs of one size, each mlock2(MLOCK_ONFAULT)ed and still empty, to be populated beside a
    target: (addresses, size); ([], 0) when they cannot be locked (the row then probes fresh VMAs, which
    say why not). The size is `probe_bytes` cut to what RLIMIT_MEMLOCK leaves for all of them (`fit`) once
    `reserve_bytes` (a target still to be locked) is set aside."""
    room = max(0, room_bytes(count * probe_bytes + reserve_bytes) - reserve_bytes)
    size, _ = fit(probe_bytes, room // count // PAGE_BYTES * PAGE_BYTES)
    addrs: list[int] = []
    try:
        while size and len(addrs) < count:
            addr, _ = _locked(size, onfault=True)
            if addr is None:
                break
            addrs.append(addr)
    finally:
        if len(addrs) < count:  # one could not be locked, or an error: none is kept
            for a in addrs:
                libc.munmap(a, size)
            addrs = []
    return addrs, size if addrs else 0


# Share of a populated probe VMA munlock()ed untimed before the rest is timed.
WARM_SHARE = 0.25


def munlock_populated(addr: int, size: int) -> dict:
    """munlock() of a probe VMA already populated and locked (`onfault_probes`), then unmapped: the columns
    `run_probe` gives. Its first quarter (`WARM_SHARE`) is munlock()ed untimed and the rest timed, so the
    probe just before a row's munlock() runs on a page path as warm as the row's own (which follows that
    probe) and the probe after it (which follows the row): timed whole, the probe before ran above the one
    after at every point, 4.6% at the median over 462 rows; with the warm-up 2.0% (162 ns/page after in
    both; 3 alternating rounds of munlock-partial's defaults per arm)."""
    warm = int(size * WARM_SHARE) // PAGE_BYTES * PAGE_BYTES
    try:
        libc.munlock(addr, warm)
        ns = _munlock_timed(addr + warm, size - warm)
    finally:
        libc.munmap(addr, size)
    return {"probe_munlock_ns_per_page": ns, "probe_bytes": size, "probe_skipped": None}


def _munmap_ns_per_page(addr: int, size: int) -> float:
    """munmap() of a probe VMA, timed, in ns per page."""
    t0 = time.monotonic_ns()
    libc.munmap(addr, size)
    return (time.monotonic_ns() - t0) / (size // PAGE_BYTES)


def munmap_populated(addr: int, size: int) -> dict:
    """munmap() of a probe VMA already populated and locked (`onfault_probes`): the columns `run_probe`
    gives for `munmap_locked_ns_per_page`."""
    return {"probe_munmap_locked_ns_per_page": _munmap_ns_per_page(addr, size), "probe_bytes": size, "probe_skipped": None}


def munmap_locked_ns_per_page(probe_bytes: int = DEFAULT_PROBE_BYTES) -> tuple[float | None, str | None]:
    """munmap() of a fully populated locked VMA, per page: the work exit_mmap does per present page of a
    VM_LOCKED VMA on 5.18+ (zap, with the munlock done as each page's rmap is removed)."""
    addr, why = _locked(probe_bytes)
    if addr is None:
        return None, why
    return _munmap_ns_per_page(addr, probe_bytes), None


def probe_bytes_field():
    """The `probe_bytes` parameter of experiments that probe: 0 turns the probe off."""
    from mmlab.core import params as p

    return p.size(DEFAULT_PROBE_BYTES, "size of the in-row probe VMA whose per-page cost prices the row in the "
                  "model check (0 = no probe)", lo=0, hi=256 << 20)


MIN_PROBE_BYTES = 1 << 20  # 256 pages: tens of microseconds, still far above the clock's resolution


def room_bytes(probe_bytes: int) -> int:
    """The largest probe this process may lock now: `probe_bytes` with CAP_IPC_LOCK, else no more than
    RLIMIT_MEMLOCK leaves above its VmLck (mlock would refuse the rest), in whole pages."""
    from mmlab.kernel import procfs, safety

    if safety.has_cap_ipc_lock():
        return probe_bytes
    soft, _ = safety.memlock_rlimit()
    locked = procfs.status(os.getpid()).get("VmLck", 0)
    return max(0, min(probe_bytes, (soft - locked) // PAGE_BYTES * PAGE_BYTES))


def fit(probe_bytes: int, lockable_bytes: int) -> tuple[int, str | None]:
    """The probe's size as it will run and why it is skipped (None if it is not): `probe_bytes` cut to
    `lockable_bytes` (what this process may still lock, `room_bytes`) in whole pages; skipped when asked
    for 0 bytes or when that leaves less than the 1 MiB minimum."""
    if probe_bytes <= 0:
        return 0, "probe_bytes is 0"
    size = min(probe_bytes, lockable_bytes) // PAGE_BYTES * PAGE_BYTES
    if size < min(probe_bytes, MIN_PROBE_BYTES):
        return 0, f"RLIMIT_MEMLOCK leaves {lockable_bytes >> 10} KiB to lock, under the probe's 1 MiB minimum"
    return size, None


def run_probe(fn, probe_bytes: int) -> dict:
    """A probe's row columns: `<fn name>` in ns per page (None when it could not run), `probe_bytes` (the
    size that ran, shrunk to what RLIMIT_MEMLOCK allows without CAP_IPC_LOCK), and `probe_skipped` with
    the reason (None when it ran)."""
    col = f"probe_{fn.__name__}"
    size, why = fit(probe_bytes, room_bytes(probe_bytes))
    if not size:
        return {col: None, "probe_bytes": 0, "probe_skipped": why}
    ns, why = fn(size)
    return {col: ns, "probe_bytes": size if ns is not None else 0, "probe_skipped": why}


def sandwich(before: dict, after: dict, col: str) -> dict:
    """Two probes' columns, one just before and one just after the row's timed work, as one: `col` their
    geometric mean (`bracketed`), each kept as `col` with `_before`/`_after` inserted before
    `_ns_per_page`; one that could not run leaves the other."""
    stem = col.removesuffix("_ns_per_page")
    a, b = before.get(col), after.get(col)
    return {col: bracketed(a, b), f"{stem}_before_ns_per_page": a,
            f"{stem}_after_ns_per_page": b, "probe_bytes": before.get("probe_bytes") or after.get("probe_bytes") or 0,
            "probe_skipped": before.get("probe_skipped") if a is None and b is None else None}
