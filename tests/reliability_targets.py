"""Child functions that misbehave on purpose, for tests/test_reliability_child_faults.py
(run as `python -m mmlab.kernel.child tests.reliability_targets:NAME`)."""
from __future__ import annotations

import os
import time


def hang(ctx) -> None:
    """Reports ready, then never says anything again."""
    ctx.send("ready")
    time.sleep(3600)


def exit_early(ctx) -> None:
    """Reports ready, then exits with code 7 without finishing."""
    ctx.send("ready")
    os._exit(7)
