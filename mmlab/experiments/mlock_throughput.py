"""`mlock-throughput`: how fast this kernel mlocks and munlocks a region, per 4 KiB page.

A child maps the region (anonymous private; file-backed shared; or anonymous locked with mlock2
MLOCK_ONFAULT, which populates nothing) and times mlock, munlock, then munmap (of the now unlocked
pages: the unmap the pre-patch exit did after its munlock pass) with a monotonic clock right around
each call; between the calls the parent reads the child's /proc status and the system counters.
Points are interleaved within each repetition (MEASURING.md: first touch of memory the guest just
returned to the host is 2-8x slower, so order matters).
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass

from mmlab.core import params as p
from mmlab.core.units import PAGE_BYTES
from mmlab.experiments import Experiment
from mmlab.experiments.common import RealParams, counters, progress_bar, repetitions, settle, settle_s_field
from mmlab.kernel import libc
from mmlab.kernel.child import Child

MAPPINGS = ("anon-private", "file-shared", "anon-onfault")


@dataclass(frozen=True)
class MlockThroughputParams(RealParams):
    sizes: tuple = p.sizes(["16MiB", "64MiB", "256MiB"], "region sizes to lock", lo=PAGE_BYTES, hi=1 << 40)
    mappings: tuple = p.choices(["anon-private", "anon-onfault"], MAPPINGS, "kinds of mapping: anon-private, file-shared, anon-onfault (mlock2 MLOCK_ONFAULT)")
    settle_s: float = settle_s_field()


def child_main(ctx, size_bytes: int, mapping: str, file_dir: str, settle_s: float = 0.0) -> None:
    """Runs in the child: map, mlock, munlock, each timed right around the call."""
    fd = -1
    if mapping == "file-shared":
        fd, path = tempfile.mkstemp(prefix="mmlab-", dir=file_dir)
        os.unlink(path)
        os.ftruncate(fd, size_bytes)
        addr = libc.mmap(size_bytes, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, fd, 0)
    else:
        addr = libc.mmap(size_bytes)
    ctx.sync("mapped")
    settle(settle_s)  # memory handed back to the host before the timed first touch
    ru0 = libc.getrusage()
    t0 = time.monotonic_ns()
    if mapping == "anon-onfault":
        libc.mlock2(addr, size_bytes, libc.MLOCK_ONFAULT)
    else:
        libc.mlock(addr, size_bytes)
    t1 = time.monotonic_ns()
    ru1 = libc.getrusage()
    ctx.sync("locked", mlock_ns=t1 - t0, mlock_minflt=ru1.ru_minflt - ru0.ru_minflt,
             mlock_majflt=ru1.ru_majflt - ru0.ru_majflt)
    t0 = time.monotonic_ns()
    libc.munlock(addr, size_bytes)
    t1 = time.monotonic_ns()
    ru2 = libc.getrusage()
    ctx.sync("unlocked", munlock_ns=t1 - t0, munlock_minflt=ru2.ru_minflt - ru1.ru_minflt)
    t0 = time.monotonic_ns()
    libc.munmap(addr, size_bytes)
    t1 = time.monotonic_ns()
    ctx.sync("unmapped", munmap_ns=t1 - t0)
    if fd >= 0:
        os.close(fd)


def measure_one(size_bytes: int, mapping: str, timeout_s: float, settle_s: float = 0.0) -> dict:
    """One child, one mlock/munlock pair; returns the row's measurements."""
    row: dict = {}
    with Child("mmlab.experiments.mlock_throughput:child_main", timeout_s=timeout_s,
               size_bytes=size_bytes, mapping=mapping, file_dir=tempfile.gettempdir(), settle_s=settle_s) as c:
        c.expect("mapped")
        row.update(counters("before", c.pid))
        c.reply()
        msg = c.expect("locked")
        row.update(counters("locked", c.pid))
        row.update(mlock_ns=msg["mlock_ns"], mlock_minflt=msg["mlock_minflt"], mlock_majflt=msg["mlock_majflt"])
        c.reply()
        msg = c.expect("unlocked")
        row.update(counters("after", c.pid))
        row.update(munlock_ns=msg["munlock_ns"], munlock_minflt=msg["munlock_minflt"])
        c.reply()
        row["munmap_ns"] = c.expect("unmapped")["munmap_ns"]
        c.reply()
        c.expect("done")
    return row


def run(params: MlockThroughputParams, progress: bool = True):
    import pandas as pd

    from mmlab.kernel.safety import budget

    b = budget(params.lock_share)
    fitted = b.fit({"sizes": params.sizes})
    sizes = b.check("sizes", fitted.values["sizes"])
    points = [(s, m) for s in sizes for m in params.mappings]
    rows = []
    with progress_bar(len(points) * (params.warmup + params.repeats), "mlock-throughput", progress) as bar:
        for rep, warm in repetitions(params):
            for seq, (size_bytes, mapping) in enumerate(points):
                m = measure_one(size_bytes, mapping, params.timeout_s, params.settle_s)
                pages = size_bytes // PAGE_BYTES
                rows.append({
                    "experiment": "mlock-throughput", "method": "real", "mapping": mapping,
                    "size_bytes": size_bytes, "pages": pages, "repeat": rep, "warmup": warm, "order": seq, "settle_s": params.settle_s,
                    "mlock_s": m["mlock_ns"] / 1e9, "munlock_s": m["munlock_ns"] / 1e9,
                    "munmap_s": m["munmap_ns"] / 1e9,
                    "mlock_ns_per_page": m["mlock_ns"] / pages, "munlock_ns_per_page": m["munlock_ns"] / pages,
                    "munmap_ns_per_page": m["munmap_ns"] / pages,
                    **{k: v for k, v in m.items() if k not in ("mlock_ns", "munlock_ns", "munmap_ns")},
                    **fitted.columns(),
                })
                bar.update()
    return pd.DataFrame(rows)


EXPERIMENT = Experiment(
    name="mlock-throughput",
    description="mlock, munlock, then munmap a region in a child; seconds and ns per 4 KiB page for each call",
    Params=MlockThroughputParams,
    run=run,
)
