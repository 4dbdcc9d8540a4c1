"""The one binding to libc: every syscall mmlab makes, with its argument and return types.

libc is loaded once with `use_errno=True`; each call goes through `_check`, which reads errno right
after the call, retries EINTR, and raises OSError naming the call and its arguments. Constants carry
the kernel's own names (include/uapi/asm-generic/mman-common.h, mman.h, linux/prctl.h).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import os
import platform
from collections.abc import Callable

from mmlab.core.units import PAGE_BYTES

# --- constants, as the kernel spells them -------------------------------------------------------
PROT_NONE, PROT_READ, PROT_WRITE = 0x0, 0x1, 0x2
MAP_SHARED, MAP_PRIVATE = 0x01, 0x02
MAP_ANONYMOUS = 0x20
MAP_NORESERVE = 0x4000
MAP_POPULATE = 0x8000
MAP_LOCKED = 0x2000
MAP_FAILED = ctypes.c_void_p(-1).value

MLOCK_ONFAULT = 0x01  # mlock2() flag, Linux 4.4
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4

MADV_NORMAL = 0
MADV_DONTNEED = 4
MADV_POPULATE_READ = 22  # Linux 5.14: prefault readable (anon: maps the shared zero page)
MADV_POPULATE_WRITE = 23  # Linux 5.14: prefault writable through GUP (faultin_page)

PR_SET_PDEATHSIG = 1
RUSAGE_SELF, RUSAGE_CHILDREN = 0, -1

# mlock2 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl; include/uapi/asm-generic/unistd.h)
SYS_mlock2 = {"x86_64": 325, "aarch64": 284, "i686": 376, "i386": 376}.get(platform.machine())

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

c_void_p, c_size_t, c_int, c_long = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_long
_off_t = ctypes.c_int64


class timeval(ctypes.Structure):
    _fields_ = [("tv_sec", c_long), ("tv_usec", c_long)]


class rusage(ctypes.Structure):
    _fields_ = [("ru_utime", timeval), ("ru_stime", timeval)] + [
        (n, c_long) for n in ("ru_maxrss", "ru_ixrss", "ru_idrss", "ru_isrss", "ru_minflt", "ru_majflt",
                              "ru_nswap", "ru_inblock", "ru_oublock", "ru_msgsnd", "ru_msgrcv",
                              "ru_nsignals", "ru_nvcsw", "ru_nivcsw")]


def _declare(name: str, restype, argtypes) -> Callable:
    fn = getattr(_libc, name)
    fn.restype, fn.argtypes = restype, argtypes
    return fn


_mmap = _declare("mmap", c_void_p, [c_void_p, c_size_t, c_int, c_int, c_int, _off_t])
_munmap = _declare("munmap", c_int, [c_void_p, c_size_t])
_mprotect = _declare("mprotect", c_int, [c_void_p, c_size_t, c_int])
_mlock = _declare("mlock", c_int, [c_void_p, c_size_t])
_munlock = _declare("munlock", c_int, [c_void_p, c_size_t])
_mlockall = _declare("mlockall", c_int, [c_int])
_munlockall = _declare("munlockall", c_int, [])
_madvise = _declare("madvise", c_int, [c_void_p, c_size_t, c_int])
_mincore = _declare("mincore", c_int, [c_void_p, c_size_t, ctypes.POINTER(ctypes.c_ubyte)])
_getrusage = _declare("getrusage", c_int, [c_int, ctypes.POINTER(rusage)])
_prctl = _declare("prctl", c_int, [c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong])
_syscall = _declare("syscall", c_long, [c_long, c_void_p, c_size_t, c_int])
_memset = _declare("memset", c_void_p, [c_void_p, c_int, c_size_t])
_mount = _declare("mount", c_int, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, c_void_p])


def _fmt(args: tuple) -> str:
    return ", ".join(hex(a) if isinstance(a, int) and a > 4096 else repr(a) for a in args)


def _check(name: str, fn: Callable, *args, failed=-1):
    """Call fn(*args); on failure read errno at once, retry EINTR, else raise OSError naming the call."""
    while True:
        ctypes.set_errno(0)
        result = fn(*args)
        if result != failed:
            return result
        err = ctypes.get_errno()
        if err == _errno.EINTR:
            continue
        raise OSError(err, f"{name}({_fmt(args)}): {os.strerror(err)}")


def mmap(length: int, prot: int = PROT_READ | PROT_WRITE, flags: int = MAP_PRIVATE | MAP_ANONYMOUS,
         fd: int = -1, offset: int = 0) -> int:
    """Map `length` bytes; returns the address."""
    return _check("mmap", _mmap, None, length, prot, flags, fd, offset, failed=MAP_FAILED)


def munmap(addr: int, length: int) -> None:
    _check("munmap", _munmap, addr, length)


def mprotect(addr: int, length: int, prot: int) -> None:
    _check("mprotect", _mprotect, addr, length, prot)


def mlock(addr: int, length: int) -> None:
    _check("mlock", _mlock, addr, length)


def mlock2(addr: int, length: int, flags: int = 0) -> None:
    """mlock2(2) by syscall number, so it works on C libraries older than glibc 2.27."""
    if SYS_mlock2 is None:
        raise OSError(_errno.ENOSYS, f"mlock2({_fmt((addr, length, flags))}): no syscall number for {platform.machine()}")
    _check("mlock2", _syscall, SYS_mlock2, addr, length, flags)


def munlock(addr: int, length: int) -> None:
    _check("munlock", _munlock, addr, length)


def mlockall(flags: int) -> None:
    _check("mlockall", _mlockall, flags)


def munlockall() -> None:
    _check("munlockall", _munlockall)


def madvise(addr: int, length: int, advice: int) -> None:
    _check("madvise", _madvise, addr, length, advice)


def mincore(addr: int, length: int) -> bytes:
    """One byte per page; bit 0 set where the page is resident."""
    n = -(-length // PAGE_BYTES)
    vec = (ctypes.c_ubyte * n)()
    _check("mincore", _mincore, addr, length, vec)
    return bytes(vec)


def resident_pages(addr: int, length: int) -> int:
    """Pages of [addr, addr+length) resident now, by mincore."""
    return sum(b & 1 for b in mincore(addr, length))


def getrusage(who: int = RUSAGE_SELF) -> rusage:
    ru = rusage()
    _check("getrusage", _getrusage, who, ctypes.byref(ru))
    return ru


def set_pdeathsig(sig: int) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (PR_SET_PDEATHSIG)."""
    _check("prctl", _prctl, PR_SET_PDEATHSIG, sig, 0, 0, 0)


def mount_fs(source: str, target: str, fstype: str, flags: int = 0) -> None:
    """mount(2) a pseudo filesystem (tracefs) with no options."""
    _check("mount", _mount, source.encode(), target.encode(), fstype.encode(), flags, None)


def touch(addr: int, length: int, stride: int = PAGE_BYTES) -> None:
    """Write one byte in every page, from user space: the plain write-loop fault path."""
    buf = (ctypes.c_char * 1)
    for off in range(0, length, stride):
        buf.from_address(addr + off)[0] = b"\1"


def fill(addr: int, length: int, byte: int = 1) -> None:
    """memset the range: faults every page in by writing, at C speed."""
    _memset(addr, byte, length)
