"""A child that steps through a prepatch-replay probe alone, pausing after each step so the parent can read
/proc, for tests/test_exp_replay.py (run as `python -m mmlab.kernel.child tests.replay_probe_targets:NAME`)."""
from __future__ import annotations

from mmlab.experiments.cut_short import resident_bytes
from mmlab.experiments.prepatch_replay import Probe


def probe_steps(ctx, size: int, populated_fraction: float) -> None:
    probe = Probe(size, populated_fraction)

    def resident() -> int:
        return resident_bytes(probe.addr, probe.size)

    ctx.sync("built", resident_bytes=resident())
    probe.munlock()
    ctx.sync("munlocked", resident_bytes=resident(), **probe.report())
    probe.fault("populate-write")
    ctx.sync("faulted", resident_bytes=resident(), **probe.report())
    probe.munmap()
    ctx.sync("unmapped", **probe.report())
