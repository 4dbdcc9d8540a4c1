"""mmlab: the cost of munlock after an interrupted mlock, measured, replayed and simulated.

Kept light to import (child processes import it): heavy modules load on first use.
"""
from __future__ import annotations

from mmlab.core import __version__

__all__ = ["__version__", "load", "experiment", "summary"]


def load(*args, **kwargs):
    """All stored runs (or chosen ones) as one tidy DataFrame; see `mmlab.core.store.load`."""
    from mmlab.core.store import load as _load

    return _load(*args, **kwargs)


def experiment(name: str, values=None, **kw):
    """Run a real experiment in child processes and store its rows; see `mmlab.experiments.run`."""
    from mmlab.experiments import run

    return run(name, values, **kw)


def summary(*args, **kwargs):
    """Per group and metric: n, median, mean, sd, 95% bootstrap CI; see `mmlab.core.stats.summary`."""
    from mmlab.core.stats import summary as _summary

    return _summary(*args, **kwargs)
