"""Readers of /proc: pure parsers of the text, and thin readers pointed at an overridable proc root.

Facts behind the choice of counters (see shared/MEASURING.md): on a modern kernel VmLck jumps to the
whole range as soon as mlock marks the VMA VM_LOCKED, so it is not a progress measure; VmRSS (or
mincore) is.
"""
from __future__ import annotations

import os
from pathlib import Path

PROC_ROOT = Path(os.environ.get("MMLAB_PROC_ROOT", "/proc"))
# free page reporting's counters, where the guest kernel exports them (not mainline: this project's KVM guests)
PAGE_REPORTING_DIR = Path(os.environ.get("MMLAB_PAGE_REPORTING_DIR", "/sys/module/page_reporting/parameters"))

_KB = 1024


def parse_kv_kb(text: str) -> dict[str, int]:
    """`Key:   123 kB` lines (status, meminfo) -> {key: bytes}; lines without kB keep their number."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        fields = rest.split()
        if not fields:
            continue
        try:
            value = int(fields[0])
        except ValueError:
            continue
        out[key.strip()] = value * _KB if len(fields) > 1 and fields[1] == "kB" else value
    return out


def parse_status(text: str) -> dict[str, int]:
    """/proc/PID/status -> {VmRSS: bytes, VmLck: bytes, ...}; sizes in bytes, counts as numbers."""
    return parse_kv_kb(text)


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo -> {Mlocked: bytes, Unevictable: bytes, MemAvailable: bytes, ...}."""
    return parse_kv_kb(text)


def parse_flat_keyed(text: str) -> dict[str, int]:
    """`key value` lines -> {key: int}: /proc/vmstat, and cgroup files such as memory.events,
    memory.oom_control, memory.stat; lines of another shape are ignored."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def parse_vmstat(text: str) -> dict[str, int]:
    """/proc/vmstat -> {unevictable_pgs_mlocked: n, ...}."""
    return parse_flat_keyed(text)


# Field numbers of /proc/PID/stat after the comm field (man 5 proc, 1-based: state is field 3).
_STAT_FIELDS = {"state": 3, "ppid": 4, "minflt": 10, "cminflt": 11, "majflt": 12, "cmajflt": 13,
                "utime": 14, "stime": 15, "num_threads": 20, "starttime": 22, "vsize": 23, "rss": 24}


def parse_stat(text: str) -> dict[str, int | str]:
    """/proc/PID/stat -> {state, minflt, majflt, utime, stime, ...}; comm may hold spaces and ')'."""
    end = text.rindex(")")
    rest = text[end + 2:].split()
    out: dict[str, int | str] = {"comm": text[text.index("(") + 1:end]}
    for name, number in _STAT_FIELDS.items():
        raw = rest[number - 3]
        out[name] = raw if name == "state" else int(raw)
    return out


def pid_alive(pid: int) -> bool:
    """Whether a process exists: kill(pid, 0) fails with ESRCH only for a pid nobody holds (EPERM means it
    exists but belongs to another user). The janitors use it to tell a dead creator's leftovers."""
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _read(path: Path) -> str:
    with open(path) as f:
        return f.read()


def status(pid: int | str = "self", root: Path | None = None) -> dict[str, int]:
    return parse_status(_read((root or PROC_ROOT) / str(pid) / "status"))


def stat(pid: int | str = "self", root: Path | None = None) -> dict[str, int | str]:
    return parse_stat(_read((root or PROC_ROOT) / str(pid) / "stat"))


def meminfo(root: Path | None = None) -> dict[str, int]:
    return parse_meminfo(_read((root or PROC_ROOT) / "meminfo"))


def vmstat(root: Path | None = None) -> dict[str, int]:
    return parse_vmstat(_read((root or PROC_ROOT) / "vmstat"))


def unevictable(root: Path | None = None) -> dict[str, int]:
    """The unevictable_pgs_* counters of /proc/vmstat."""
    return {k: v for k, v in vmstat(root).items() if k.startswith("unevictable_pgs_")}


def system_counters(root: Path | None = None) -> dict[str, int]:
    """The system-wide counters every real row records before and after: Mlocked, Unevictable, MemAvailable."""
    m = meminfo(root)
    return {"mlocked_bytes": m.get("Mlocked", 0), "unevictable_bytes": m.get("Unevictable", 0),
            "mem_available_bytes": m.get("MemAvailable", 0)}


def host_reported_kib(root: Path | None = None) -> int | None:
    """KiB of free memory this guest has handed back to its host so far (free page reporting, a pass about
    2 s after a large free; the host discards those pages and their next first touch is slow, MEASURING.md).
    None where the kernel does not export the counter."""
    try:
        return int(_read((root or PAGE_REPORTING_DIR) / "reported_kib"))
    except (OSError, ValueError):
        return None


# --- file mappings: one VMA's smaps fields, and which filesystem holds a folder ---------------------
def parse_smaps_vma(text: str, addr: int) -> dict[str, int]:
    """The fields of the VMA starting at `addr` in /proc/PID/smaps, in bytes (Rss, Anonymous,
    Private_Dirty, Shared_Dirty, Locked, ...); empty if no such VMA."""
    out: dict[str, int] = {}
    found = False
    for line in text.splitlines():
        head = line.split(None, 1)[0] if line.strip() else ""
        if "-" in head and ":" not in head:
            if found:
                break
            found = int(head.split("-")[0], 16) == addr
            continue
        if found:
            key, _, rest = line.partition(":")
            fields = rest.split()
            if len(fields) == 2 and fields[1] == "kB":
                out[key.strip()] = int(fields[0]) * _KB
    return out


def smaps_vma(addr: int, pid: int | str = "self", root: Path | None = None) -> dict[str, int]:
    return parse_smaps_vma(_read((root or PROC_ROOT) / str(pid) / "smaps"), addr)


def parse_mounts(text: str) -> list[tuple[str, str]]:
    """/proc/PID/mounts -> [(mount point, fs type)], octal escapes (\\040 for a space) decoded."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            out.append((parts[1].encode().decode("unicode_escape"), parts[2]))
    return out


def mounts(root: Path | None = None) -> list[tuple[str, str]]:
    return parse_mounts(_read((root or PROC_ROOT) / "self" / "mounts"))


MEMORY_FS = ("tmpfs", "ramfs", "devtmpfs", "hugetlbfs")  # filesystems whose pages live only in memory


def fs_type(path: str | Path, mount_list: list[tuple[str, str]]) -> str:
    """The filesystem type of the mount holding `path` (the longest mount point that is its prefix)."""
    real = os.path.realpath(path)
    best, kind = "", "unknown"
    for mnt, typ in mount_list:
        inside = real == mnt or real.startswith(mnt.rstrip("/") + "/") or mnt == "/"
        if inside and len(mnt) >= len(best):
            best, kind = mnt, typ
    return kind
