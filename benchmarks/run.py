"""`make bench`: mmlab's measurements against references, and the speed of the simulator and report.

1. mlock-throughput: mmlab (Python child, ctypes) against a C program doing the same mmap/mlock/munlock,
   both started from this process, interleaved A/B with alternating order (MEASURING.md: memory the
   guest just returned to the host is slow to touch, so order and warm-up matter), medians of ns/page.
   Target: mmlab/C <= 1.05 for mlock and munlock at 256 MiB and 1 GiB.
2. The simulator's and the report's figures, when those benchmarks are present.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mmlab.core.units import PAGE_BYTES

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build"
SIZES = [256 << 20, 1 << 30]
REPEATS = int(os.environ.get("MMLAB_BENCH_REPEATS", "9"))
WARMUP = 2
# Pause before each measurement so both programs find memory in the same state: this guest hands freed
# memory back to the host within ~0.5 s and the next first touch is 2-8x slower (MEASURING.md). Without
# it, whichever program starts faster after the previous one exits sees warmer memory.
SETTLE_S = float(os.environ.get("MMLAB_BENCH_SETTLE_S", "1.0"))


def build_reference() -> Path:
    BUILD.mkdir(exist_ok=True)
    exe = BUILD / "mlock_ref"
    src = HERE / "mlock_ref.c"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(exe), str(src)], check=True)
    return exe


def c_once(exe: Path, size: int) -> dict:
    out = subprocess.run([str(exe), str(size)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def mmlab_once(size: int) -> dict:
    from mmlab.experiments.mlock_throughput import measure_one

    m = measure_one(size, "anon-private", timeout_s=120)
    return {"mlock_ns": m["mlock_ns"], "munlock_ns": m["munlock_ns"]}


def bench_mlock() -> list[dict]:
    from tqdm import tqdm

    exe = build_reference()
    samples: dict[tuple[str, int], list[dict]] = {}
    total = len(SIZES) * (REPEATS + WARMUP) * 2
    with tqdm(total=total, desc="mlock mmlab vs C", file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
        for rep in range(REPEATS + WARMUP):
            for size in SIZES:
                order = [("C", lambda s=size: c_once(exe, s)), ("mmlab", lambda s=size: mmlab_once(s))]
                if rep % 2:
                    order.reverse()
                for who, fn in order:
                    time.sleep(SETTLE_S)
                    r = fn()
                    if rep >= WARMUP:
                        samples.setdefault((who, size), []).append(r)
                    bar.update()
    rows = []
    for size in SIZES:
        pages = size // PAGE_BYTES
        row = {"size_MiB": size >> 20}
        for call in ("mlock", "munlock"):
            c = statistics.median(s[f"{call}_ns"] for s in samples[("C", size)]) / pages
            m = statistics.median(s[f"{call}_ns"] for s in samples[("mmlab", size)]) / pages
            row[f"{call}_C_ns_per_page"] = round(c, 1)
            row[f"{call}_mmlab_ns_per_page"] = round(m, 1)
            row[f"{call}_ratio_of_medians"] = round(m / c, 3)
            # paired: each mmlab run against the C run next to it in time, so slow drifts of the host's
            # memory state cancel; the median of those ratios is the headline figure
            pairs = [a[f"{call}_ns"] / b[f"{call}_ns"] for a, b in zip(samples[("mmlab", size)], samples[("C", size)])]
            row[f"{call}_ratio"] = round(statistics.median(pairs), 3)
            for who in ("C", "mmlab"):
                spread = [s[f"{call}_ns"] / pages for s in samples[(who, size)]]
                row[f"{call}_{who}_range"] = f"{min(spread):.0f}-{max(spread):.0f}"
        rows.append(row)
    return rows


def main() -> int:
    print(f"== mlock-throughput: mmlab vs C reference (median of {REPEATS} interleaved repeats, {WARMUP} warm-up, "
          f"{SETTLE_S:g} s settle before each) ==")
    rows = bench_mlock()
    hdr = ["size_MiB", "mlock_C_ns_per_page", "mlock_mmlab_ns_per_page", "mlock_ratio_of_medians", "mlock_ratio",
           "munlock_C_ns_per_page", "munlock_mmlab_ns_per_page", "munlock_ratio_of_medians", "munlock_ratio"]
    print("  ".join(f"{h:>24}" for h in hdr))
    for r in rows:
        print("  ".join(f"{r[h]:>24}" for h in hdr))
    for r in rows:
        print(f"  {r['size_MiB']} MiB ranges (ns/page): mlock C {r['mlock_C_range']}, mmlab {r['mlock_mmlab_range']}; "
              f"munlock C {r['munlock_C_range']}, mmlab {r['munlock_mmlab_range']}")
    worst = max(max(r["mlock_ratio"], r["munlock_ratio"]) for r in rows)
    print(f"worst paired median ratio mmlab/C: {worst:.3f} (target <= 1.05): {'met' if worst <= 1.05 else 'NOT met'}")
    for extra in ("bench_sim.py", "report_wall.py"):
        script = HERE / extra
        if script.exists():
            print(f"\n== {extra} ==", flush=True)
            subprocess.run([sys.executable, str(script)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
