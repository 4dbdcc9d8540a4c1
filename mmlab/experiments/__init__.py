"""The registry of real experiments and the one way to run one: validate, run in children, store.

Each experiment module defines `EXPERIMENT`; `get(name)` imports it on demand so that listing them
stays cheap and the child processes import nothing heavy.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmlab.core.errors import MmlabError
from mmlab.core.params import ParamError, Params
from mmlab.kernel.safety import Skipped

if TYPE_CHECKING:
    import pandas as pd

# name -> module under mmlab.experiments; the order is the order of `mmlab experiments`.
MODULES: dict[str, str] = {
    "mlock-throughput": "mlock_throughput",
    "sigkill-during-mlock": "sigkill_during_mlock",
    "munlock-partial": "munlock_partial",
    "prepatch-replay": "prepatch_replay",
    "oom-kill": "oom_kill",
}


@dataclass(frozen=True)
class Experiment:
    """A real experiment: its parameters, its runner, and what it needs from the machine."""

    name: str
    description: str
    Params: type[Params]
    run: Callable[..., pd.DataFrame]  # run(params, progress=True) -> tidy rows
    needs_cgroup: bool = False
    cgroup_optional: bool = False  # parts need a cgroup; without one those parts are skipped

    def availability(self) -> tuple[bool, str]:
        """Whether it can run here, and if not why (also shown by `mmlab env`)."""
        import os

        from mmlab.core.units import PAGE_BYTES
        from mmlab.kernel import cgroup, safety

        if os.sysconf("SC_PAGE_SIZE") != PAGE_BYTES:
            return False, f"the kernel's page size is {os.sysconf('SC_PAGE_SIZE')} bytes; mmlab counts {PAGE_BYTES}-byte pages"
        reasons = []
        if not safety.has_cap_ipc_lock():
            soft, _ = safety.memlock_rlimit()
            if soft < (1 << 20):
                return False, f"no CAP_IPC_LOCK and RLIMIT_MEMLOCK is only {soft} bytes"
            reasons.append(f"no CAP_IPC_LOCK: sizes divided to fit RLIMIT_MEMLOCK = {soft} bytes")
        if self.needs_cgroup or self.cgroup_optional:
            ok, why = cgroup.availability()
            if not ok and self.needs_cgroup:
                return False, why
            if not ok:
                reasons.append(f"memory-cgroup part skipped: {why}")
        return True, "; ".join(reasons) or "yes"


def names() -> list[str]:
    return list(MODULES)


def availability() -> dict[str, dict]:
    """Per experiment whether it can run on this machine and why: stored with the environment."""
    out = {}
    for name in names():
        ok, why = get(name).availability()
        out[name] = {"can_run": ok, "detail": why}
    return out


def get(name: str) -> Experiment:
    if name not in MODULES:
        raise ParamError("experiment", name, ", ".join(MODULES), "is not an experiment")
    return importlib.import_module(f"{__name__}.{MODULES[name]}").EXPERIMENT


@dataclass
class Result:
    """What one experiment run produced: tidy rows, where they were stored, or why it was skipped."""

    name: str
    params: Params
    rows: pd.DataFrame
    run_dir: Any = None
    skipped: str | None = None


def run(name: str, values: Mapping[str, object] | None = None, *, save: bool = True,
        progress: bool = True, **kw: object) -> Result:
    """Validate `values` (and keyword parameters), run the experiment in child processes, store the rows."""
    import pandas as pd

    from mmlab.core import store
    from mmlab.kernel import env

    exp = get(name)
    params = exp.Params.from_mapping({**(values or {}), **kw})
    # one real experiment per machine (timings would disturb each other); stale cgroups removed first;
    # a child's fault becomes one line naming the experiment
    from mmlab.kernel import machine_lock
    from mmlab.kernel.child import ChildError

    with machine_lock.hold():
        _remove_stale_cgroups()
        try:
            rows = exp.run(params, progress=progress)
        except Skipped as s:
            return Result(name, params, pd.DataFrame(), None, str(s))
        except ChildError as e:
            label = {"hung": "a child hung", "killed": "a child was killed", "exited-early": "a child exited early"}
            raise ExperimentFailed(f"{name} failed ({label.get(e.fault, 'a child reported an error')}): "
                                   f"{' '.join(str(e).split())}") from e
    # parts of the experiment skipped on this machine (e.g. a cgroup v1 variant), with their reasons: rows.attrs
    # does not survive Parquet, so they go in run.json and come back as load().attrs["skipped_parts"]
    parts = {str(k): str(v) for k, v in (rows.attrs.get("skipped") or {}).items()}
    extra = {"skipped_parts": {name: parts}} if parts else None
    run_dir = store.save({name: rows}, {name: params.to_dict()}, env.capture(), extra=extra) if save else None
    return Result(name, params, rows, run_dir)


class ExperimentFailed(MmlabError, RuntimeError):
    """A real experiment stopped because a child hung, exited early or was killed by something else;
    the one-line message names the experiment and what happened. Nothing of the run is stored."""


def _remove_stale_cgroups() -> None:
    """The janitor, at the start of every real experiment: memory groups and trace instances named by
    mmlab whose creator died (e.g. a notebook kernel SIGKILLed mid-experiment) are emptied and removed,
    and named on stderr."""
    import os
    import sys

    from mmlab.kernel import cgroup, trace

    if os.geteuid() == 0:
        gone = trace.remove_stale()  # their trace instances too (events enabled there go with them)
        if gone:
            print(f"mmlab: removed {len(gone)} stale trace instance(s) left by dead mmlab processes: "
                  + ", ".join(str(p) for p in gone), file=sys.stderr, flush=True)
    if not any(os.access(h.parent, os.W_OK) for h in cgroup.candidate_parents()):
        return  # unprivileged without a delegated subtree: nothing here is ours to remove
    removed = cgroup.remove_stale()
    if removed:
        print(f"mmlab: removed {len(removed)} stale memory cgroup(s) left by dead mmlab processes: "
              + ", ".join(str(p) for p in removed), file=sys.stderr, flush=True)
