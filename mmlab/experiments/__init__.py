"""The registry of real experiments and the one way to run one: validate, run in children, store.

Each experiment module defines `EXPERIMENT`; `get(name)` imports it on demand so that listing them
stays cheap and the child processes import nothing heavy.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..params import ParamError, Params
from ..safety import Skipped

if TYPE_CHECKING:
    import pandas as pd

# name -> module under mmlab.experiments; the order is the order of `mmlab experiments`.
MODULES: dict[str, str] = {
    "mlock-throughput": "mlock_throughput",
}


@dataclass(frozen=True)
class Experiment:
    """A real experiment: its parameters, its runner, and what it needs from the machine."""

    name: str
    description: str
    Params: type[Params]
    run: Callable[..., "pd.DataFrame"]  # run(params, progress=True) -> tidy rows
    needs_cgroup: bool = False
    cgroup_optional: bool = False  # parts need a cgroup; without one those parts are skipped

    def availability(self) -> tuple[bool, str]:
        """Whether it can run here, and if not why (also shown by `mmlab env`)."""
        from .. import cgroup, safety

        reasons = []
        if not safety.has_cap_ipc_lock():
            soft, _ = safety.memlock_rlimit()
            if soft < (1 << 20):
                return False, f"no CAP_IPC_LOCK and RLIMIT_MEMLOCK is only {soft} bytes"
            reasons.append(f"no CAP_IPC_LOCK: sizes capped at RLIMIT_MEMLOCK = {soft} bytes")
        if self.needs_cgroup or self.cgroup_optional:
            ok, why = cgroup.availability()
            if not ok and self.needs_cgroup:
                return False, why
            if not ok:
                reasons.append(f"memory-cgroup part skipped: {why}")
        return True, "; ".join(reasons) or "yes"


def names() -> list[str]:
    return list(MODULES)


def get(name: str) -> Experiment:
    if name not in MODULES:
        raise ParamError("experiment", name, ", ".join(MODULES), "is not an experiment")
    return importlib.import_module(f"{__name__}.{MODULES[name]}").EXPERIMENT


@dataclass
class Result:
    """What one experiment run produced: tidy rows, where they were stored, or why it was skipped."""

    name: str
    params: Params
    rows: "pd.DataFrame"
    run_dir: Any = None
    skipped: str | None = None


def run(name: str, values: Mapping[str, object] | None = None, *, save: bool = True,
        progress: bool = True, **kw: object) -> Result:
    """Validate `values` (and keyword parameters), run the experiment in child processes, store the rows."""
    import pandas as pd

    from .. import env, store

    exp = get(name)
    params = exp.Params.from_mapping({**(values or {}), **kw})
    try:
        rows = exp.run(params, progress=progress)
    except Skipped as s:
        return Result(name, params, pd.DataFrame(), None, str(s))
    run_dir = store.save({name: rows}, {name: params.to_dict()}, env.capture(experiments=False)) if save else None
    return Result(name, params, rows, run_dir)
