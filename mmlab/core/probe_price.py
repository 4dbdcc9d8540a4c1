"""How a row's in-row probes price it: plain Python, no numpy or pandas, because the experiments' children
import it and a child's own teardown is part of what they time (a child that loaded pandas took 6 ms to
exit instead of 1, and 0.7 s to start instead of 0.15)."""
from __future__ import annotations

import math


def bracketed(before: float | None, after: float | None) -> float | None:
    """The price of a row's work from the probes just before and just after it: their geometric mean, the
    centre of the bracket. A per-page cost here moves between states within one row, so the lower probe is
    not the undisturbed one: where a row's two probes differed by more than 10%, its own munlock() lay
    between their prices in 64% of 880 rows and below both in 28%. Over the 26 collections of 2026-12-04
    (364 munlock-partial point readings, paired) the lower probe put 2 points outside 0.9-1.1 (0.883, 0.899;
    range 0.883-1.054) and the geometric mean none (0.920-1.080). None if neither ran (None or NaN); one
    that ran alone is the price."""
    both = [float(x) for x in (before, after) if x is not None and not math.isnan(float(x))]
    return math.sqrt(both[0] * both[-1]) if both else None
