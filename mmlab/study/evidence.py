"""Gathering the rows the summary stands on: the newest stored runs of this host (or the chosen ones),
and small real experiments for what is missing. I/O at the edge; the summary's modules stay pure."""
from __future__ import annotations

import pandas as pd

from mmlab.core import store
from mmlab.study import series

# The small runs the summary makes itself when an experiment it reads is not stored for this host.
SMALL_RUNS: dict[str, dict] = {
    "sigkill-during-mlock": {"vma_bytes": "256MiB,1GiB", "populated_bytes": "16MiB,64MiB", "repeats": 3, "warmup": 1},
    "prepatch-replay": {"vma_bytes": "64MiB,256MiB", "settings": "free", "repeats": 3, "warmup": 1},
    "munlock-partial": {"vma_bytes": "64MiB", "populated_fractions": "0.1,0.25,0.5", "variants": "onfault",
                        "repeats": 3, "warmup": 1},
    "oom-kill": {"repeats": 2, "warmup": 0},
}


def small_run(name: str) -> dict:
    """Small parameters for an experiment the summary runs itself (those the experiment declares)."""
    from mmlab import experiments

    known = experiments.get(name).Params.specs()
    return {k: v for k, v in SMALL_RUNS.get(name, {}).items() if k in known}



def gather(runs: str, run_missing: bool, host_tag: str | None) -> tuple[pd.DataFrame, dict[str, str]]:
    """(stored rows, {experiment: why it has no rows}). `runs` is a comma-separated list of run ids or
    folders, empty for the newest run of each experiment on this host; with `run_missing`, experiments
    with no rows are run now at small sizes. An experiment that cannot run here is recorded, not raised,
    so the summary still runs to the end."""
    from mmlab import experiments

    chosen = [r.strip() for r in runs.split(",") if r.strip()]
    stored = series.newest_per_experiment(store.load(chosen or None), None if chosen else host_tag)
    missing: dict[str, str] = {}
    for name in series.missing_experiments(stored):
        if not run_missing:
            missing[name] = "not stored for this host and run_missing is false"
            continue
        try:
            result = experiments.run(name, small_run(name), progress=False)
        except Exception as e:
            missing[name] = f"{type(e).__name__}: {e}"
            continue
        if result.skipped:
            missing[name] = result.skipped
        else:
            run_id = result.run_dir.name if result.run_dir else ""
            stored = pd.concat([stored, result.rows.assign(run_id=run_id)], ignore_index=True)
    return stored, missing
