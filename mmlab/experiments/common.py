"""What every real experiment shares: the repeat/warm-up/guard parameters and the row bookkeeping."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from mmlab.core import params as p
from mmlab.kernel import procfs


@dataclass(frozen=True)
class RealParams(p.Params):
    """Parameters every real experiment has (mmtests-style rigour: warm-up, repeats, a guard)."""

    repeats: int = p.integer(3, "measured repetitions per point", 1, 100)
    warmup: int = p.integer(1, "unmeasured-first repetitions per point (rows kept, marked warmup=True)", 0, 10)
    lock_share: float = p.real(0.25, "safety guard: largest share of MemAvailable locked outside a memory cgroup", 0.01, 0.9)
    timeout_s: float = p.seconds(120.0, "a child silent this long is killed and reported as hung", 1.0, 3600.0)


def repetitions(params: RealParams) -> Iterator[tuple[int, bool]]:
    """(repeat index, is_warmup) in run order: warm-ups first, numbered from 0 with the measured ones."""
    for i in range(params.warmup + params.repeats):
        yield i, i < params.warmup


def counters(prefix: str, pid: int | None = None) -> dict[str, int]:
    """System counters (and the child's status, if pid) under column names with `prefix`."""
    out = {f"sys_{k.removesuffix('_bytes')}_{prefix}_bytes": v for k, v in procfs.system_counters().items()}
    for k, v in procfs.unevictable().items():
        out[f"{k}_{prefix}"] = v
    if pid is not None:
        st = procfs.status(pid)
        out[f"vmlck_{prefix}_bytes"] = st.get("VmLck", 0)
        out[f"rss_{prefix}_bytes"] = st.get("VmRSS", 0)
        s = procfs.stat(pid)
        out[f"minflt_{prefix}"] = int(s["minflt"])
        out[f"majflt_{prefix}"] = int(s["majflt"])
    return out


def progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, unit="run", leave=False)


# Memory state before a timed first touch is a controlled, recorded condition.
SETTLE_HELP = ("pause in the child right before the timed first touch so memory freed earlier is handed back to "
               "the host (free-page reporting takes about 0.5 s; MEASURING.md cold vs warm)")


def settle_s_field(default: float = 1.0):
    """The `settle_s` parameter of experiments whose timed work is first-touch population."""
    return p.seconds(default, SETTLE_HELP, 0.0, 60.0)


def settle(seconds: float) -> None:
    """Sleep `seconds` before a timed first touch: this KVM guest returns freed memory to the host within
    ~0.5 s and the next first touch of it is 2-8x slower than of memory freed just before (MEASURING.md),
    so without a pause the cost depends on what ran just before. A C reference agreed with mmlab within
    3% only with a 1 s pause (benchmarks/run.py SETTLE_S)."""
    if seconds > 0:
        import time

        time.sleep(seconds)
