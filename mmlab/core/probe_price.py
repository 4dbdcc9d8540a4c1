"""How a row's in-row probes price it: plain Python, no numpy or pandas, because the experiments' children
import it and a child's own teardown is part of what they time (a child that loaded pandas took 6 ms to
exit instead of 1, and 0.7 s to start instead of 0.15)."""
from __future__ import annotations

import math


def bracketed(before: float | None, after: float | None) -> float | None:
    """The price of a row's work from the probes just before and just after it: the lower of the two. A
    timed call is only ever lengthened by what interrupts it (a host preemption, an interrupt), so the
    lower probe is the nearer to the state's own cost; the two still bracket the work, and a state that
    changed across it shows as their difference, kept in the row. Over 224 munlock-partial point-runs of
    one day the lower probe put sim/real at 0.99 (geometric mean) where the mean of the two put it at
    1.03. None if neither ran (None or NaN)."""
    both = [float(x) for x in (before, after) if x is not None and not math.isnan(float(x))]
    return min(both) if both else None
