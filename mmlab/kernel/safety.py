"""The safety guard: how much memory an experiment may lock on this machine, and why.

Outside a memory cgroup mmlab never locks more than a share of MemAvailable (default 25%); without
CAP_IPC_LOCK the kernel itself caps mlock at RLIMIT_MEMLOCK, so an experiment divides its sizes to fit
the limit (`fit`; its rows record the divisor) rather than failing with EPERM/ENOMEM.
"""
from __future__ import annotations

import os
import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mmlab.core.errors import MmlabError
from mmlab.core.params import ParamError
from mmlab.core.units import PAGE_BYTES, format_bytes
from mmlab.kernel import procfs

DEFAULT_LOCK_SHARE = float(os.environ.get("MMLAB_LOCK_SHARE", "0.25"))
CAP_IPC_LOCK = 14  # include/uapi/linux/capability.h


class SizesDropped(UserWarning):
    """Some requested sizes exceed RLIMIT_MEMLOCK (no CAP_IPC_LOCK) and are not run; the rest are."""


class SizesScaled(UserWarning):
    """Without CAP_IPC_LOCK the requested sizes were divided to fit RLIMIT_MEMLOCK; the rows say by how much."""


class Skipped(MmlabError):
    """The experiment cannot run here; the message is the reason shown in reports. Not a failure: exit 0."""

    exit_code = 0
    label = "skipped"


def parse_cap_eff(status_text: str) -> int:
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def has_cap_ipc_lock() -> bool:
    with open(f"{procfs.PROC_ROOT}/self/status") as f:
        return bool(parse_cap_eff(f.read()) >> CAP_IPC_LOCK & 1)


def memlock_rlimit() -> tuple[int, int]:
    """(soft, hard) RLIMIT_MEMLOCK in bytes; RLIM_INFINITY as a huge number."""
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    inf = 1 << 62
    return (inf if soft == resource.RLIM_INFINITY else soft, inf if hard == resource.RLIM_INFINITY else hard)


@dataclass(frozen=True)
class Budget:
    """What may be locked: the guard's share of MemAvailable and, without CAP_IPC_LOCK, the rlimit."""

    guard_bytes: int
    rlimit_bytes: int | None
    lock_share: float
    mem_available_bytes: int

    def fit(self, sizes: Mapping[str, Sequence[int]], locked: Sequence[str] | None = None) -> Fitted:
        """`fit` against this budget's RLIMIT_MEMLOCK (none with CAP_IPC_LOCK)."""
        return fit(self.rlimit_bytes, sizes, locked)

    def check(self, name: str, values: tuple[int, ...] | int) -> tuple[int, ...]:
        """Refuse sizes above the guard (ParamError); drop those above RLIMIT_MEMLOCK; Skipped if none left."""
        many = isinstance(values, tuple)
        sizes = values if many else (values,)
        over = [s for s in sizes if s > self.guard_bytes]
        if over:
            raise ParamError(name, ",".join(format_bytes(s) for s in over),
                             f"at most {format_bytes(self.guard_bytes)} outside a memory cgroup "
                             f"({self.lock_share:.0%} of MemAvailable {format_bytes(self.mem_available_bytes)}; "
                             f"raise lock_share to allow more)", "exceeds the safety guard")
        if self.rlimit_bytes is None:
            return sizes
        kept = tuple(s for s in sizes if s <= self.rlimit_bytes)
        if not kept:
            raise Skipped(f"without CAP_IPC_LOCK mlock is capped at RLIMIT_MEMLOCK = {format_bytes(self.rlimit_bytes)}, "
                          f"below every requested {name} ({', '.join(format_bytes(s) for s in sizes)})")
        dropped = [s for s in sizes if s > self.rlimit_bytes]
        if dropped:
            import warnings

            warnings.warn(f"{name} {', '.join(format_bytes(s) for s in dropped)} not run: without CAP_IPC_LOCK mlock is "
                          f"capped at RLIMIT_MEMLOCK = {format_bytes(self.rlimit_bytes)}", SizesDropped, stacklevel=2)
        return kept


@dataclass(frozen=True)
class Fitted:
    """Sizes as they will run: as asked (divisor 1) or divided by `divisor` to fit RLIMIT_MEMLOCK."""

    values: dict[str, tuple[int, ...]]
    divisor: int
    memlock_limit_bytes: int | None

    def columns(self) -> dict[str, object]:
        """What every row records: the divisor (1 = sizes as asked) and the limit that forced it."""
        return {"size_divisor": self.divisor,
                "memlock_limit_bytes": self.memlock_limit_bytes if self.divisor > 1 else None}


def fit(rlimit_bytes: int | None, sizes: Mapping[str, Sequence[int]], locked: Sequence[str] | None = None,
        page_bytes: int = PAGE_BYTES) -> Fitted:
    """Every size divided by one power of two so that the largest of `locked` (default: all) fits
    `rlimit_bytes`; unchanged when there is no limit (CAP_IPC_LOCK) or everything fits.

    Without CAP_IPC_LOCK, mlock(), mlock2(MLOCK_ONFAULT) and mlockall() charge the whole range against
    RLIMIT_MEMLOCK up front (mm/mlock.c: do_mlock checks `locked > lock_limit` before populating), so it is
    the VMA, not what gets populated, that must fit. One divisor for every size keeps the ratios the
    experiment is about (VMA against populated size, size against size). Sizes are whole pages, at least
    one; sizes that coincide after dividing are kept once."""
    asked = {k: tuple(int(v) for v in vals) for k, vals in sizes.items()}
    if rlimit_bytes is None:
        return Fitted(asked, 1, None)
    if rlimit_bytes < page_bytes:
        raise Skipped(f"without CAP_IPC_LOCK mlock is capped at RLIMIT_MEMLOCK = {rlimit_bytes} bytes, less than a page")
    largest = max(max(asked[k]) for k in (locked or list(asked)))
    divisor = 1
    while largest // divisor > rlimit_bytes:
        divisor *= 2
    if divisor == 1:
        return Fitted(asked, 1, rlimit_bytes)
    scaled = {k: tuple(dict.fromkeys(max(page_bytes, v // divisor // page_bytes * page_bytes) for v in vals))
              for k, vals in asked.items()}
    import warnings

    warnings.warn("without CAP_IPC_LOCK mlock is capped at RLIMIT_MEMLOCK = " + format_bytes(rlimit_bytes)
                  + f": every size divided by {divisor} ("
                  + "; ".join(f"{k} {', '.join(format_bytes(v) for v in vals)}" for k, vals in scaled.items())
                  + "); rows record size_divisor", SizesScaled, stacklevel=2)
    return Fitted(scaled, divisor, rlimit_bytes)


def budget(lock_share: float = DEFAULT_LOCK_SHARE) -> Budget:
    avail = procfs.meminfo().get("MemAvailable", 0)
    rlimit = None if has_cap_ipc_lock() else memlock_rlimit()[0]
    return Budget(int(avail * lock_share), rlimit, lock_share, avail)
