"""The safety guard: how much memory an experiment may lock on this machine, and why.

Outside a memory cgroup mmlab never locks more than a share of MemAvailable (default 25%); without
CAP_IPC_LOCK the kernel itself caps mlock at RLIMIT_MEMLOCK, so sizes above it are dropped (or the
experiment skipped) with that reason rather than failing with EPERM/ENOMEM.
"""
from __future__ import annotations

import os
import resource
from dataclasses import dataclass

from mmlab.core.errors import MmlabError
from mmlab.core.params import ParamError
from mmlab.core.units import format_bytes
from mmlab.kernel import procfs

DEFAULT_LOCK_SHARE = float(os.environ.get("MMLAB_LOCK_SHARE", "0.25"))
CAP_IPC_LOCK = 14  # include/uapi/linux/capability.h


class SizesDropped(UserWarning):
    """Some requested sizes exceed RLIMIT_MEMLOCK (no CAP_IPC_LOCK) and are not run; the rest are."""


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


def budget(lock_share: float = DEFAULT_LOCK_SHARE) -> Budget:
    avail = procfs.meminfo().get("MemAvailable", 0)
    rlimit = None if has_cap_ipc_lock() else memlock_rlimit()[0]
    return Budget(int(avail * lock_share), rlimit, lock_share, avail)
