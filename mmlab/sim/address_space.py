"""Address-space state as runs of pages, so a 1 TiB VMA costs as little to model as a 1 MiB one.

A VMA is a list of runs (start page, page count, state); a state is ABSENT (pte_none, or no page
table at all), PRESENT, or LOCKED (present and PG_mlocked). The VMA carries what the kernel decides
on: anonymous or file, VM_WRITE, VM_SHARED, VM_LOCKED, and for a file whether its pages are in the page
cache. Counting uses run arithmetic only.
"""
from __future__ import annotations

import dataclasses
from enum import Enum

PTRS_PER_PTE = 512  # x86-64: one page table maps 512 pages = 2 MiB


class State(str, Enum):  # noqa: UP042 - str() of a member must stay "State.ABSENT"
    ABSENT = "absent"
    PRESENT = "present"
    LOCKED = "locked"


@dataclasses.dataclass(frozen=True)
class Run:
    """`pages` consecutive pages from page `start` (relative to the VMA) in one state."""

    start: int
    pages: int
    state: State

    @property
    def end(self) -> int:
        return self.start + self.pages


class _Counts:
    """Counts every address-space shape derives from `pages` and `count(state)`."""

    pages: int

    def count(self, state: State) -> int:
        raise NotImplementedError

    @property
    def present(self) -> int:
        """Pages with a pte (PRESENT or LOCKED)."""
        return self.pages - self.absent

    @property
    def absent(self) -> int:
        return self.count(State.ABSENT)

    def tables(self) -> int:
        """Page tables (2 MiB blocks) the VMA spans; assumes a 2 MiB-aligned start."""
        return -(-self.pages // PTRS_PER_PTE)


@dataclasses.dataclass(frozen=True)
class Vma(_Counts):
    """One VMA: its size in pages, its flags and its runs (sorted, contiguous, covering it)."""

    pages: int
    anon: bool = True
    writable: bool = True
    shared: bool = False
    locked: bool = True  # VM_LOCKED
    runs: tuple[Run, ...] = ()
    cached: bool = True  # a file VMA's absent pages are in the page cache (warm); False: read from disk at a fault

    def __post_init__(self) -> None:
        if not self.runs:
            object.__setattr__(self, "runs", (Run(0, self.pages, State.ABSENT),) if self.pages else ())

    @classmethod
    def prefix(cls, pages: int, populated: int, state: State = State.LOCKED, **flags) -> Vma:
        """A VMA whose first `populated` pages are in `state` and the rest absent: how mlock leaves a
        range when a fatal signal stops __get_user_pages part-way (it populates in address order)."""
        populated = max(0, min(populated, pages))
        runs = tuple(r for r in (Run(0, populated, state), Run(populated, pages - populated, State.ABSENT)) if r.pages)
        return cls(pages=pages, runs=runs, **flags)

    def count(self, state: State) -> int:
        return sum(r.pages for r in self.runs if r.state is state)

    def populated_tables(self) -> int:
        """Page tables holding at least one present pte: blocks touched by a non-absent run."""
        count, last = 0, -1
        for r in self.runs:
            if r.state is State.ABSENT or not r.pages:
                continue
            first, final = r.start // PTRS_PER_PTE, (r.end - 1) // PTRS_PER_PTE
            first = max(first, last + 1)
            if final >= first:
                count += final - first + 1
                last = final
        return count

    def absent_in_populated_tables(self) -> int:
        """Absent pages whose page table exists (pte_none entries a pte walk must step over)."""
        return self.populated_tables() * PTRS_PER_PTE - self.present - self._tail_slack()

    def _tail_slack(self) -> int:
        # the last table may extend past the VMA end; those entries are not the VMA's
        if not self.pages % PTRS_PER_PTE:
            return 0
        last_block = (self.pages - 1) // PTRS_PER_PTE
        touched = any(r.state is not State.ABSENT and (r.end - 1) // PTRS_PER_PTE >= last_block for r in self.runs)
        return (PTRS_PER_PTE - self.pages % PTRS_PER_PTE) if touched else 0

    def with_all(self, state: State) -> Vma:
        return dataclasses.replace(self, runs=(Run(0, self.pages, state),) if self.pages else ())

    def unlocked(self) -> Vma:
        """VM_LOCKED cleared and every LOCKED run made PRESENT (after a munlock pass)."""
        runs = tuple(Run(r.start, r.pages, State.PRESENT if r.state is State.LOCKED else r.state) for r in self.runs)
        return dataclasses.replace(self, locked=False, runs=runs)


@dataclasses.dataclass(frozen=True)
class Strided(_Counts):
    """One present page in every `every` pages, counted in closed form (no runs), so a sparse 1 TiB
    range is as cheap as a small one. Same counting interface as Vma."""

    pages: int
    every: int
    anon: bool = True
    writable: bool = True
    shared: bool = False
    locked: bool = True
    state: State = State.LOCKED
    cached: bool = True  # as Vma.cached

    def count(self, state: State) -> int:
        n = -(-self.pages // self.every) if self.pages else 0
        if state is State.ABSENT:
            return self.pages - n
        return n if state is self.state else 0

    def populated_tables(self) -> int:
        n = self.present
        if not n:
            return 0
        if self.every >= PTRS_PER_PTE:
            return n
        t = self.tables()
        return t - 1 + (1 if (n - 1) * self.every >= PTRS_PER_PTE * (t - 1) else 0)

    def absent_in_populated_tables(self) -> int:
        covered = self.populated_tables() * PTRS_PER_PTE
        if self.every < PTRS_PER_PTE and self.pages % PTRS_PER_PTE and self.populated_tables() == self.tables():
            covered -= PTRS_PER_PTE - self.pages % PTRS_PER_PTE
        return max(0, covered - self.present)

    def unlocked(self) -> Strided:
        return dataclasses.replace(self, locked=False, state=State.PRESENT)
