"""Selecting the summary's rows: which stored rows each scenario of the 2009 thread shows, and which
series (pre-patch simulated or replayed, post-patch simulated, this kernel measured) each belongs to.

Three scenarios (kernel-history 1, 4): SIGKILL during mlock (exit faulted in every page mlock never
reached), munlock() after a partial mlock (the same write-GUP loop), and an OOM kill with bystanders
(the dying victim's exit ate the reserves and innocents were killed). Pure functions of data frames.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mmlab.core import stats
from mmlab.core.units import PAGE_BYTES

PRE, REPLAY, POST, NOW_SIM, REAL = "pre-sim", "pre-replay", "post-sim", "now-sim", "real"
SERIES_ORDER = (PRE, REPLAY, POST, NOW_SIM, REAL)
SIMULATED = frozenset({PRE, POST, NOW_SIM})
COLORS = {PRE: "#b42318", REPLAY: "#f79009", POST: "#1570ef", NOW_SIM: "#7a5af8", REAL: "#12b76a"}
POINT = ["vma_bytes", "point_bytes"]

# The notebook whose page shows an experiment's rows (a summary number links there).
NOTEBOOK_OF = {"sigkill-during-mlock": "02-sigkill-during-mlock", "munlock-partial": "03-munlock-partial",
               "oom-kill": "04-oom-kill", "prepatch-replay": "05-prepatch-replay"}


def series_of(method: str, kernel: object, pre_kernel: str, post_kernel: str) -> str | None:
    """Which series a row belongs to (None: a simulated kernel the summary does not show)."""
    if method == "real":
        return REAL
    if method == "replay":
        return REPLAY
    if method == "simulated":
        k = str(kernel)
        return PRE if k == pre_kernel else POST if k == post_kernel else NOW_SIM
    return None


def series_labels(pre_kernel: str, post_kernel: str, this_kernel: str = "this kernel") -> dict[str, str]:
    """Column and legend names of the series; `this_kernel` (the release) is named once, in REAL."""
    return {PRE: f"pre-patch: {pre_kernel} simulated", REPLAY: "pre-patch work replayed here",
            POST: f"post-patch: {post_kernel} simulated", NOW_SIM: "this kernel simulated",
            REAL: f"this kernel ({this_kernel}) measured"}


def evidence_kind(series: str, profile: str) -> str:
    """What kind of number a series gives: measured here, replayed here, or simulated on a profile."""
    if series == REAL:
        return "measured here"
    if series == REPLAY:
        return "replayed here"
    return f"simulated, {profile} profile"


def label(rows: pd.DataFrame, pre_kernel: str, post_kernel: str) -> pd.DataFrame:
    """Rows with a `series` column (rows of no series dropped), the point they measure (`point_bytes`:
    the populated size aimed at, since a real mlock stops a few pages past its target) and
    `populated_fraction` = point_bytes / vma_bytes."""
    if rows.empty:
        return rows.assign(series=pd.Series(dtype=str))
    rows = rows.copy()  # consolidated: the experiments' wide frames would fragment as columns are added
    kernel = rows["kernel"] if "kernel" in rows else pd.Series([None] * len(rows), index=rows.index)
    out = rows.assign(series=[series_of(m, k, pre_kernel, post_kernel) for m, k in zip(rows["method"], kernel)])
    out = out[out["series"].notna()].copy()
    if "vma_bytes" in out:
        vma = out["vma_bytes"].astype(float)
        point = pd.Series(np.nan, index=out.index)
        if "target_populated_bytes" in out:
            point = point.fillna(out["target_populated_bytes"].astype(float))
        for col in ("target_populated_fraction", "populated_fraction"):
            if col in out:
                point = point.fillna((vma * out[col].astype(float) / PAGE_BYTES).round() * PAGE_BYTES)
        if "populated_bytes" in out:
            point = point.fillna(out["populated_bytes"].astype(float))
        out["point_bytes"] = point
        out["populated_fraction"] = point / vma
    return out


def points(rows: pd.DataFrame, vma_bytes: int, fractions: Sequence[float]) -> list[tuple[int, int]]:
    """(vma_bytes, point_bytes) to simulate: every point the measured rows cover, else the
    parameters' grid. Simulating at the measured points makes every ratio compare like with like."""
    measured = rows[rows["method"].isin(["real", "replay"])] if "method" in rows else rows
    if not measured.empty and {"vma_bytes", "point_bytes"} <= set(measured):
        pts = sorted({(int(v), int(b)) for v, b in zip(measured["vma_bytes"], measured["point_bytes"]) if np.isfinite(b)})
        if pts:
            return pts
    return [(int(vma_bytes), int(round(vma_bytes * f / PAGE_BYTES)) * PAGE_BYTES) for f in fractions]


def sim_values(scenario: str, vma_bytes: int, point_bytes: int) -> dict:
    """Simulator parameters for one point of a scenario."""
    if scenario == "sigkill-during-mlock":
        return {"vma_bytes": vma_bytes, "populated_bytes": point_bytes}
    if scenario == "munlock-partial":
        return {"vma_bytes": vma_bytes, "populated_fraction": point_bytes / vma_bytes}
    raise ValueError(f"no point parameters for {scenario}")


def measured_for(scenario: str, stored: pd.DataFrame) -> pd.DataFrame:
    """The stored real and replay rows a scenario shows, each with the notebook that shows it
    (`source`). Replays are those on free memory (`setting free`); each replay row's twin, a child
    brought to the same state and SIGKILLed on this kernel (`modern_kill_to_reap_s`), is also a real
    SIGKILL-during-mlock measurement at that point, shown in the replay's notebook."""
    if stored.empty or "experiment" not in stored:
        return stored.iloc[0:0]
    stored = stored.assign(source=stored["experiment"].map(NOTEBOOK_OF))
    replay = stored[stored["experiment"] == "prepatch-replay"]
    if "setting" in replay:
        replay = replay[replay["setting"].fillna("free") == "free"]
    if scenario == "sigkill-during-mlock":
        real = stored[stored["experiment"] == scenario]
        parts = [real, replay]
        if "modern_kill_to_reap_s" in replay and replay["modern_kill_to_reap_s"].notna().any():
            twin = replay[replay["modern_kill_to_reap_s"].notna()].copy()
            twin["method"], twin["kill_to_reap_s"], twin["experiment"] = "real", twin["modern_kill_to_reap_s"], scenario
            parts.append(twin.drop(columns=["replay_s"], errors="ignore"))
        parts = [p for p in parts if not p.empty]
        return pd.concat(parts, ignore_index=True) if parts else stored.iloc[0:0]
    if scenario == "munlock-partial":
        real = stored[stored["experiment"] == scenario]
        if "variant" in real and (real["variant"] == "onfault").any():
            real = real[real["variant"] == "onfault"]
        if not replay.empty and {"fault_s", "munlock_s"} <= set(replay):
            if "replay_munlock_s" not in replay or replay["replay_munlock_s"].isna().all():  # runs stored before it was a column
                replay = replay.assign(replay_munlock_s=replay["fault_s"].astype(float) + replay["munlock_s"].astype(float))
            replay = replay.drop(columns=["munlock_s"])
        parts = [p for p in (real, replay) if not p.empty]
        return pd.concat(parts, ignore_index=True) if parts else stored.iloc[0:0]
    return stored[stored["experiment"] == scenario]


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A scenario of the 2009 thread as the summary shows it: which column each method's time is in."""

    name: str
    title: str
    verb: str  # "exit took", as in "exit took 41x longer before the patch"
    metric: dict  # method -> column holding the compared time
    what: str  # what the metric means, for captions
    anchor: str  # the id of its section on the summary page

    def value_col(self, method: str) -> str:
        return self.metric.get(method, self.metric["real"])


SIGKILL = Scenario("sigkill-during-mlock", "SIGKILL during mlock()", "the exit took",
                   {"real": "kill_to_reap_s", "simulated": "kill_to_reap_s", "replay": "replay_s"},
                   "time from SIGKILL to the parent reaping the child (replay: the pre-patch exit munlock's "
                   "faulting re-done on this kernel)", "sigkill")
MUNLOCK = Scenario("munlock-partial", "munlock() after a partial mlock()", "munlock() took",
                   {"real": "munlock_s", "simulated": "munlock_s", "replay": "replay_munlock_s"},
                   "time in munlock() of a VM_LOCKED range only partly populated (replay: faulting in the "
                   "unreached pages as the pre-patch munlock did, then munlock)", "munlock")
OOM_NAME = "oom-kill"
OOM_ANCHOR = "oom"


def with_value(rows: pd.DataFrame, scen: Scenario) -> pd.DataFrame:
    """Rows with the scenario's time in one `value_s` column (and `value_s_lo/_hi` for models)."""
    out = pd.concat([rows, pd.DataFrame(np.nan, index=rows.index, columns=["value_s", "value_s_lo", "value_s_hi"])], axis=1)
    for method in out["method"].unique():
        col = scen.value_col(method)
        sel = out["method"] == method
        if col in out:
            out.loc[sel, "value_s"] = out.loc[sel, col].astype(float)
            for side in ("lo", "hi"):
                if f"{col}_{side}" in out:
                    out.loc[sel, f"value_s_{side}"] = out.loc[sel, f"{col}_{side}"].astype(float)
    return out


def prepared(rows: pd.DataFrame, scen: Scenario) -> pd.DataFrame:
    """Labelled rows with the compared time in `value_s`, warm-ups dropped."""
    return stats.measured_rows(with_value(rows, scen))


def newest_per_experiment(rows: pd.DataFrame, host_tag: str | None = None) -> pd.DataFrame:
    """Of stored rows, for each experiment the newest run (of this host when given): a report on this
    machine summarises the data its own notebooks just stored, not older or foreign runs."""
    if rows.empty or "run_id" not in rows:
        return rows
    data = rows
    if host_tag is not None and "env.host_tag" in data:
        data = data[data["env.host_tag"] == host_tag]
    keep = [g[g["run_id"] == g["run_id"].max()] for _, g in data.groupby("experiment", sort=True)]
    return pd.concat(keep, ignore_index=True) if keep else data.iloc[0:0]


# The real experiments the summary reads.
NEEDED = ("sigkill-during-mlock", "prepatch-replay", "munlock-partial", "oom-kill")


def missing_experiments(stored: pd.DataFrame) -> list[str]:
    """The needed experiments with no stored rows."""
    have = set(stored["experiment"]) if "experiment" in stored and len(stored) else set()
    return [n for n in NEEDED if n not in have]


def missing_series(scen: Scenario | None, missing: dict[str, str]) -> dict[str, str]:
    """Why a scenario has no measured (REAL) or replay series: the reason its experiment is missing."""
    real = scen.name if scen is not None else OOM_NAME
    out = {}
    if real in missing:
        out[REAL] = f"{real}: {missing[real]}"
    if "prepatch-replay" in missing:
        out[REPLAY] = f"prepatch-replay: {missing['prepatch-replay']}"
    return out


def oom_sim_values(rows: pd.DataFrame, defaults: dict) -> dict:
    """Simulator parameters matching a measured OOM run: the memory cgroup's limit as the machine's
    RAM, its bystanders and their size, the victim's mlock; without measured rows, `defaults`."""
    real = rows[rows["method"] == "real"] if "method" in rows else rows
    v = dict(defaults)
    if real.empty or "limit_bytes" not in real or not real["limit_bytes"].notna().any():
        return v
    first = real[real["limit_bytes"].notna()].iloc[0]
    limit = int(first["limit_bytes"])
    n = int(first["bystanders"]) if "bystanders" in real and pd.notna(first.get("bystanders")) else int((real["role"] == "bystander").sum())
    byb = int(first["bystander_bytes"]) if "bystander_bytes" in real and pd.notna(first.get("bystander_bytes")) else 32 << 20
    free = max(limit - n * byb, 1 << 20)
    v.update(ram_bytes=limit, bystanders=n, bystander_bytes=byb, free_bytes=free,
             reserve_bytes=min(int(v.get("reserve_bytes", 16 << 20)), free // 8))
    lock = int(first["lock_bytes"]) if "lock_bytes" in real and pd.notna(first.get("lock_bytes")) else 2 * limit
    v["vma_bytes"] = max(lock, free + (1 << 20))
    return v
