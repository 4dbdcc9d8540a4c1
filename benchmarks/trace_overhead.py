"""What tracing costs the timed exit: kill->reap with and without the private trace instance.

Pairs of measurements, traced and untraced, in alternating order (ABBA), under the machine lock:
`sigkill-during-mlock` at one point (kill_to_reap_s from just before SIGKILL to the pidfd) and
`oom-kill` (the victim's kill_to_reap_s). Prints n, the medians, their ratio and the median of the
paired differences. Usage: python benchmarks/trace_overhead.py [PAIRS] [--json]
"""
from __future__ import annotations

import json
import statistics
import sys


def pairs(n: int) -> dict:
    from mmlab.experiments import oom_kill
    from mmlab.experiments import sigkill_during_mlock as sk
    from mmlab.experiments.cut_short import hierarchy
    from mmlab.kernel import machine_lock

    out: dict = {}
    sp = sk.SigkillParams.from_mapping({"vma_bytes": "1GiB", "populated_bytes": "256MiB"})
    op = oom_kill.OomParams.from_mapping({})
    h, _ = hierarchy()
    with machine_lock.hold():
        for name, once in (
            ("sigkill-during-mlock", lambda t: sk.measure_one(1 << 30, 256 << 20, sp, h, traced=t)["kill_to_reap_s"]),
            ("oom-kill", lambda t: next(r for r in oom_kill.run_once(op, traced=t)[0]
                                        if r["role"] == "victim")["kill_to_reap_s"]),
        ):
            once(False)  # warm-up
            traced, untraced = [], []
            for i in range(n):
                order = (True, False) if i % 2 == 0 else (False, True)
                for t in order:
                    (traced if t else untraced).append(once(t))
            diffs = [a - b for a, b in zip(traced, untraced)]
            out[name] = {"n": n, "traced_median_ms": statistics.median(traced) * 1e3,
                         "untraced_median_ms": statistics.median(untraced) * 1e3,
                         "ratio": statistics.median(traced) / statistics.median(untraced),
                         "paired_diff_median_ms": statistics.median(diffs) * 1e3,
                         "traced_ms": [x * 1e3 for x in traced], "untraced_ms": [x * 1e3 for x in untraced]}
    return out


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    res = pairs(int(args[0]) if args else 8)
    if "--json" in sys.argv:
        print(json.dumps(res, indent=1))
        return
    for name, r in res.items():
        print(f"{name}: n={r['n']} pairs, kill_to_reap median traced {r['traced_median_ms']:.1f} ms, untraced "
              f"{r['untraced_median_ms']:.1f} ms (ratio {r['ratio']:.3f}); median paired difference "
              f"{r['paired_diff_median_ms']:+.1f} ms")


if __name__ == "__main__":
    main()
