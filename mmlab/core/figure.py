"""The one way figures get matplotlib: pyplot loaded on first use (importing mmlab stays light for the
child processes), with the house defaults set once."""
from __future__ import annotations


def pyplot():
    """`matplotlib.pyplot`, with mmlab's defaults (100 dpi unless the caller set one)."""
    import matplotlib
    import matplotlib.pyplot as plt

    matplotlib.rcParams.setdefault("figure.dpi", 100)
    return plt
