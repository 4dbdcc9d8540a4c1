"""Simulated kernels: the munlock-at-exit and OOM paths of each kernel era (eras.py, `mmlab eras`).

`SCENARIOS` maps each scenario name (shared with the real experiments) to a Scenario with `Params`
and `simulate(params) -> DataFrame` (tidy rows, method = simulated).
"""
from __future__ import annotations

import time

from mmlab.core.units import PAGE_BYTES
from mmlab.sim import file_mapping, munlock_partial, oom, sigkill
from mmlab.sim.eras import ERAS, era_for
from mmlab.sim.profile import Profile
from mmlab.sim.scenario import Scenario

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (sigkill.SCENARIO, munlock_partial.SCENARIO, oom.SCENARIO,
                                                     file_mapping.SCENARIO)}

__all__ = ["SCENARIOS", "Scenario", "Profile", "ERAS", "era_for", "simulate", "bench"]


def simulate(name: str, values: dict | None = None):
    """Validate raw parameter values and run one scenario; KeyError lists the known names."""
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    return SCENARIOS[name].run(values)


def bench(points: int = 10_000, repeat: int = 5) -> dict[str, float]:
    """The two benchmark figures (one core): one sigkill-during-mlock simulation of a 1 TiB VMA through
    the full path (parameters validated, DataFrame out), best of `repeat`; and a sweep of `points`
    parameter points (era x VMA size x populated fraction) through the physics function."""
    s = sigkill.SCENARIO
    values = {"kernel": "2.6.31", "vma_bytes": "1TiB", "populated_bytes": "256GiB"}
    s.run(values)  # load the profile once
    single = min(_timed(lambda: s.run(values)) for _ in range(repeat))
    prof = s.Params().machine()
    eras = [e for e in ERAS if e.variant_of is None]
    sizes = [1 << k for k in range(20, 41)]  # 1 MiB .. 1 TiB
    grid = [(e, sz, f / 100) for e in eras for sz in sizes for f in range(100)]
    grid = (grid * (points // len(grid) + 1))[:points]

    def sweep():
        for era, sz, frac in grid:
            pages = sz // PAGE_BYTES
            sigkill.run(era, prof, pages, int(pages * frac))
    sweep_s = _timed(sweep)
    out = {"single_1TiB_s": single, "sweep_points": points, "sweep_s": sweep_s}
    print(f"sigkill-during-mlock, 1 TiB VMA, one simulation: {single * 1e3:.2f} ms (target < 10 ms)")
    print(f"sweep of {points} parameter points, one core: {sweep_s:.2f} s (target < 2 s)")
    return out


def _timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0
