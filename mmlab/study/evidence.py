"""Gathering the rows the summary stands on: the newest stored runs of this host (or the chosen ones),
and small real experiments for what is missing. I/O at the edge; `headline` stays pure."""
from __future__ import annotations

import pandas as pd

from mmlab.core import store
from mmlab.study import headline


def gather(runs: str, run_missing: bool, host_tag: str | None) -> tuple[pd.DataFrame, dict[str, str]]:
    """(stored rows, {experiment: why it has no rows}). `runs` is a comma-separated list of run ids or
    folders, empty for the newest run of each experiment on this host; with `run_missing`, experiments
    with no rows are run now at small sizes. An experiment that cannot run here is recorded, not raised,
    so the summary still runs to the end."""
    from mmlab import experiments

    chosen = [r.strip() for r in runs.split(",") if r.strip()]
    stored = headline.newest_per_experiment(store.load(chosen or None), None if chosen else host_tag)
    missing: dict[str, str] = {}
    for name in headline.missing_experiments(stored):
        if not run_missing:
            missing[name] = "not stored for this host and run_missing is false"
            continue
        try:
            result = experiments.run(name, headline.small_run(name), progress=False)
        except Exception as e:  # any reason it cannot run here is reported in the summary
            missing[name] = f"{type(e).__name__}: {e}"
            continue
        if result.skipped:
            missing[name] = result.skipped
        else:
            run_id = result.run_dir.name if result.run_dir else ""
            stored = pd.concat([stored, result.rows.assign(run_id=run_id)], ignore_index=True)
    return stored, missing
