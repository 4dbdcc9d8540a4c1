"""`file-mapping`: what mlock, munlock and unmap of a file mapping cost on this kernel, per 4 KiB page,
beside the write and read faults the kernels of 2009 took on the same pages.

A child writes a file (real data, fsync'ed) on a disk filesystem or on tmpfs, maps it PROT_READ|PROT_WRITE
MAP_PRIVATE or MAP_SHARED, and times, each on a fresh mapping:
- `mlock`, then `munlock`, then `munmap` (of the unlocked pages); and on another mapping `munmap_locked`
  (munmap of the still mlocked pages: what exit_mmap does per page on 5.18+, munlock done while zapping);
- `populate_read` (MADV_POPULATE_READ: read faults mapping page-cache pages) and `populate_write`
  (MADV_POPULATE_WRITE: write faults; private: copy of the page-cache page into a new anonymous page
  (COW); shared: page_mkwrite and the page dirtied);
- `write_after_read`: MADV_POPULATE_WRITE over pages a read fault mapped (private: do_wp_page copy;
  shared: write-protect fault, page_mkwrite, dirty); shared only: `writeback` (fdatasync of the pages
  just dirtied) and `redirty_after_writeback` (MADV_POPULATE_WRITE again once writeback write-protected
  them: the fault a write-GUP over a long-mlocked shared mapping takes on every page).

Why these: until 2.6.38 mlock populated through get_user_pages with a write flag whenever the VMA had
VM_WRITE (mm/mlock.c:__mlock_vma_pages_range @2.6.31.3 GUP_FLAGS_WRITE, @2.6.32.9 FOLL_WRITE), so a
writable private file mapping was COWed page by page and a shared one dirtied (mm/memory.c:__do_fault
@2.6.31.3: copy_user_highpage into a new anonymous page, or page_mkwrite + set_page_dirty +
balance_dirty_pages_ratelimited); the pre-patch munlock did the same write-GUP over the whole range.
This kernel populates with FOLL_WRITE only when (vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE
(mm/gup.c:populate_vma_page_range, since 5ecfda041e4b "mlock: avoid dirtying pages and triggering
writeback"): private COWed, shared read-faulted and left clean. The rows say both.

Each row has the wall time (`time_s`, `ns_per_page`: what the model prices) and the CPU time the child
spent in the call (`cpu_s`, `cpu_ns_per_page`): wall above CPU is I/O wait (cold reads, writeback) or
other jobs holding the CPU.

Page cache: `cold` drops the file's pages first (fdatasync, POSIX_FADV_DONTNEED; as root, if pages
remain, `echo 1 > /proc/sys/vm/drop_caches`) and checks with mincore how many stayed (`cached_pages_before`);
`warm` drops them the same way and reads them back through a throwaway mapping (MADV_POPULATE_READ), so
warm and cold pages sit in folios of the same size (those fault readahead makes). tmpfs pages live only in the page cache, so a cold tmpfs
point cannot exist and is skipped with that reason. The file is unlinked as soon as it is open, so it
disappears with the child on every exit path.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mmlab.core import params as p
from mmlab.core.units import PAGE_BYTES
from mmlab.experiments import Experiment
from mmlab.experiments.common import RealParams, progress_bar, repetitions, settle, settle_s_field
from mmlab.kernel import libc, procfs
from mmlab.kernel.child import Child

NAME = "file-mapping"
FILESYSTEMS = ("disk", "tmpfs")
MAPPINGS = ("private", "shared")
CACHES = ("cold", "warm")
# operation -> what it times (the rows' `operation` column)
OPERATIONS: dict[str, str] = {
    "mlock": "mlock() of a fresh PROT_READ|PROT_WRITE mapping: populate (this kernel: private write-faulted, "
             "shared read-faulted) and mlock every page",
    "munlock": "munlock() of the range just mlocked",
    "munmap": "munmap() of the range just munlocked",
    "munmap_locked": "munmap() of a still mlocked range: zap with munlock of each page (exit_mmap on 5.18+)",
    "populate_read": "MADV_POPULATE_READ of a fresh mapping: read faults mapping page-cache pages",
    "populate_write": "MADV_POPULATE_WRITE of a fresh mapping: write faults (private: COW copy into an anonymous "
                      "page; shared: page_mkwrite, page dirtied)",
    "write_after_read": "MADV_POPULATE_WRITE over pages mapped by a read fault (private: do_wp_page copy; shared: "
                        "write-protect fault, page_mkwrite, dirty)",
    "writeback": "fdatasync() of the pages populate_write dirtied (shared)",
    "redirty_after_writeback": "MADV_POPULATE_WRITE over pages writeback has cleaned and write-protected (shared)",
}
POSIX_FADV_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", 4)
DROP_CACHES = Path("/proc/sys/vm/drop_caches")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileMappingParams(RealParams):
    size_bytes: int = p.size("32MiB", "size of the file and of each mapping of it", lo=1 << 20, hi=1 << 40)
    filesystems: tuple = p.choices(list(FILESYSTEMS), FILESYSTEMS, "where the file lives: disk (a block-device "
                                   "filesystem) | tmpfs")
    mappings: tuple = p.choices(list(MAPPINGS), MAPPINGS, "MAP_PRIVATE | MAP_SHARED, both PROT_READ|PROT_WRITE")
    page_cache: tuple = p.choices(list(CACHES), CACHES, "the file's pages before each timed step: cold (dropped) | "
                                  "warm (read in)")
    disk_dir: str = p.text("", "folder on a disk filesystem for the file; empty = the system temporary folder when "
                           "it is on disk, else the project's data folder")
    tmpfs_dir: str = p.text("/dev/shm", "folder on tmpfs for the file")
    settle_s: float = settle_s_field(0.0)


# ------------------------------------------------------------------------------------- child side
def _smaps(addr: int) -> dict[str, int]:
    s = procfs.smaps_vma(addr)
    return {"rss_bytes": s.get("Rss", 0), "anon_bytes": s.get("Anonymous", 0),
            "dirty_bytes": s.get("Private_Dirty", 0) + s.get("Shared_Dirty", 0), "locked_bytes": s.get("Locked", 0)}


def _cached_pages(fd: int, size: int) -> int:
    """Pages of the file in the page cache now (mincore of a read-only shared mapping of it)."""
    addr = libc.mmap(size, libc.PROT_READ, libc.MAP_SHARED, fd, 0)
    try:
        return libc.resident_pages(addr, size)
    finally:
        libc.munmap(addr, size)


def _prepare_cache(fd: int, size: int, cache: str, droppable: bool = True) -> tuple[int, str]:
    """Clean the file's dirty pages and drop them; warm: read them back in through a throwaway mapping.
    Returns (pages cached before the timed step, how the cache was dropped)."""
    os.fdatasync(fd)
    if not droppable:  # tmpfs: the page cache is the file's only copy
        return _cached_pages(fd, size), "none"
    os.posix_fadvise(fd, 0, size, POSIX_FADV_DONTNEED)
    how = "fadvise"
    if _cached_pages(fd, size) and os.geteuid() == 0:
        try:
            DROP_CACHES.write_text("1\n")
            how = "drop_caches"
        except OSError:
            pass
    if cache == "warm":
        # read back in by faults, as the cold steps read it: the folios are then of the size fault readahead
        # makes in both cases (a pread() of 1 MiB left 1 MiB folios, which map, mlock and unmap per folio)
        addr = libc.mmap(size, libc.PROT_READ, libc.MAP_SHARED, fd, 0)
        try:
            libc.madvise(addr, size, libc.MADV_POPULATE_READ)
        finally:
            libc.munmap(addr, size)
    return _cached_pages(fd, size), how


def _timed(fn, *args) -> dict:
    """One call timed right around it: wall ns, the CPU ns this process spent in it (user + system: not
    the time other jobs held the CPU, nor I/O waits), and its minor and major faults."""
    ru0 = libc.getrusage()
    t0 = time.monotonic_ns()
    fn(*args)
    t1 = time.monotonic_ns()
    ru1 = libc.getrusage()
    cpu = lambda ru: (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 10**9 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000  # noqa: E731
    return {"ns": t1 - t0, "cpu_ns": cpu(ru1) - cpu(ru0), "minflt": ru1.ru_minflt - ru0.ru_minflt,
            "majflt": ru1.ru_majflt - ru0.ru_majflt}


def child_main(ctx, size_bytes: int, fs: str, mapping: str, cache: str, folder: str, settle_s: float = 0.0) -> None:
    """Runs in the child: one file, one (fs, mapping, cache) point, every operation once."""
    fd, path = tempfile.mkstemp(prefix="mmlab-file-", dir=folder)
    os.unlink(path)  # gone with the child, whatever happens
    block = b"\x5a" * _CHUNK
    for off in range(0, size_bytes, _CHUNK):
        os.pwrite(fd, block[: min(_CHUNK, size_bytes - off)], off)
    os.fsync(fd)
    flags = libc.MAP_PRIVATE if mapping == "private" else libc.MAP_SHARED
    rw = libc.PROT_READ | libc.PROT_WRITE
    ctx.sync("written", path=path)

    def fresh() -> tuple[int, dict]:
        cached, how = _prepare_cache(fd, size_bytes, cache, droppable=fs != "tmpfs")
        settle(settle_s)
        return libc.mmap(size_bytes, rw, flags, fd, 0), {"cached_pages_before": cached, "cache_drop": how}

    def step(op: str, addr: int, info: dict, fn, *args) -> None:
        ctx.send("measured", operation=op, **_timed(fn, *args), **info, **_smaps(addr))
        info["cached_pages_before"] = None  # only the first step after preparing starts from the stated cache

    addr, info = fresh()
    step("populate_read", addr, info, libc.madvise, addr, size_bytes, libc.MADV_POPULATE_READ)
    step("write_after_read", addr, info, libc.madvise, addr, size_bytes, libc.MADV_POPULATE_WRITE)
    libc.munmap(addr, size_bytes)

    addr, info = fresh()
    step("populate_write", addr, info, libc.madvise, addr, size_bytes, libc.MADV_POPULATE_WRITE)
    if mapping == "shared":
        step("writeback", addr, info, os.fdatasync, fd)
        step("redirty_after_writeback", addr, info, libc.madvise, addr, size_bytes, libc.MADV_POPULATE_WRITE)
    libc.munmap(addr, size_bytes)

    addr, info = fresh()
    step("mlock", addr, info, libc.mlock, addr, size_bytes)
    step("munlock", addr, info, libc.munlock, addr, size_bytes)
    ctx.send("measured", operation="munmap", **_timed(libc.munmap, addr, size_bytes), **info)

    addr, info = fresh()
    step("mlock", addr, info, libc.mlock, addr, size_bytes)
    ctx.send("measured", operation="munmap_locked", **_timed(libc.munmap, addr, size_bytes), **info)
    os.close(fd)
    ctx.sync("finished")


# ------------------------------------------------------------------------------------- parent side
def folders(params: FileMappingParams) -> tuple[dict[str, str], dict[str, str]]:
    """(filesystem -> folder, filesystem -> why it is skipped) for the requested filesystems."""
    mounts = procfs.mounts()
    found: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for fs in params.filesystems:
        if fs == "tmpfs":
            d = params.tmpfs_dir
            kind = procfs.fs_type(d, mounts) if os.path.isdir(d) else "missing"
            if kind != "tmpfs":
                skipped["tmpfs"] = f"{d} is not a tmpfs folder here ({kind}); set tmpfs_dir"
                continue
        else:
            candidates = [params.disk_dir] if params.disk_dir else [tempfile.gettempdir(), str(_data_dir())]
            d = next((c for c in candidates if os.path.isdir(c) and procfs.fs_type(c, mounts) not in procfs.MEMORY_FS), "")
            if not d:
                skipped["disk"] = f"no folder on a disk filesystem among {', '.join(candidates)}; set disk_dir"
                continue
        if not os.access(d, os.W_OK):
            skipped[fs] = f"{d} is not writable"
            continue
        free = os.statvfs(d)
        if free.f_bavail * free.f_frsize < 4 * params.size_bytes:
            skipped[fs] = f"{d} has less than 4 x size_bytes free"
            continue
        found[fs] = d
    return found, skipped


def _data_dir() -> Path:
    from mmlab.core.paths import DATA_DIR

    return DATA_DIR


def measure_point(size_bytes: int, fs: str, mapping: str, cache: str, folder: str, timeout_s: float,
                  settle_s: float) -> tuple[list[dict], str]:
    """One child, every operation of one point; returns (measurements, the file's path while it lived)."""
    out: list[dict] = []
    with Child("mmlab.experiments.file_mapping:child_main", timeout_s=timeout_s, size_bytes=size_bytes, fs=fs,
               mapping=mapping, cache=cache, folder=folder, settle_s=settle_s) as c:
        path = c.expect("written")["path"]
        c.reply()
        while True:
            msg = c.recv()
            if msg["event"] == "finished":
                break
            out.append({k: v for k, v in msg.items() if k != "event"})
        c.reply()
        c.expect("done")
    return out, path


def run(params: FileMappingParams, progress: bool = True):
    import pandas as pd

    from mmlab.kernel.safety import Skipped, budget

    (size,) = budget(params.lock_share).check("size_bytes", (params.size_bytes,))
    where, skipped = folders(params)
    if "tmpfs" in where and "cold" in params.page_cache:
        skipped["tmpfs/cold"] = ("tmpfs pages live only in the page cache (no backing file to read them back from): "
                                 "they cannot be dropped, so tmpfs is measured warm only")
    points = [(fs, m, c) for fs in params.filesystems if fs in where for m in params.mappings for c in params.page_cache
              if not (fs == "tmpfs" and c == "cold")]
    if not points:
        raise Skipped("; ".join(skipped.values()) or "no point to measure")
    pages = size // PAGE_BYTES
    rows = []
    with progress_bar(len(points) * (params.warmup + params.repeats), NAME, progress) as bar:
        for rep, warm in repetitions(params):
            for seq, (fs, mapping, cache) in enumerate(points):
                got, path = measure_point(size, fs, mapping, cache, where[fs], params.timeout_s, params.settle_s)
                for m in got:
                    ns, cpu_ns = m.pop("ns"), m.pop("cpu_ns")
                    rows.append({
                        "experiment": NAME, "method": "real", "filesystem": fs, "folder": where[fs], "mapping": mapping,
                        "page_cache": cache, "operation": m.pop("operation"), "size_bytes": size, "pages": pages,
                        "repeat": rep, "warmup": warm, "order": seq, "settle_s": params.settle_s,
                        "time_s": ns / 1e9, "ns_per_page": ns / pages, "cpu_s": cpu_ns / 1e9,
                        "cpu_ns_per_page": cpu_ns / pages, **m,
                    })
                bar.update()
    df = pd.DataFrame(rows)
    df.attrs["skipped"] = skipped
    return df


EXPERIMENT = Experiment(
    name=NAME,
    description="mlock, munlock, munmap of a private or shared file mapping (disk or tmpfs, page cache cold or warm), "
                "beside read, write (COW, dirty) and re-dirty faults and writeback; ns per 4 KiB page",
    Params=FileMappingParams,
    run=run,
)
