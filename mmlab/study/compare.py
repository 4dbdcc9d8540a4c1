"""`mmlab compare RUN [RUN ...]`: the same measurements across runs, hosts and kernels, mmtests style.

A user with many machines runs mmlab on each, gathers their `data/runs/` folders in one place and
compares: one table per experiment (the first run is the base; each other run's median is read against
it, with the ratio's 95% bootstrap interval and `*` where it is significant), and a table of what
differs in the runs' environments (kernel, THP, overcommit, CPU, ...), since any of these can explain a
difference. Resolving run arguments touches the file system; the tables are pure functions of rows.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mmlab.core import params as p
from mmlab.core import paths, stats, store
from mmlab.core.figure import pyplot
from mmlab.core.params import ParamError

# The compared quantity of each experiment (dotted as `<experiment>.<metric>` in tables).
METRICS: dict[str, tuple[str, ...]] = {
    "mlock-throughput": ("mlock_ns_per_page", "munlock_ns_per_page"),
    "sigkill-during-mlock": ("kill_to_reap_s",),
    "munlock-partial": ("munlock_s", "munlock_ns_per_page"),
    "prepatch-replay": ("replay_s", "fault_s", "munlock_s"),
    "oom-kill": ("start_to_kill_s", "kill_to_reap_s"),
}
# What a measurement is of: rows agreeing on these are repeats of one point.
KEYS: tuple[str, ...] = ("method", "kernel", "mapping", "variant", "layout", "role", "size_bytes", "vma_bytes",
                         "populated_pct")
# Environment facts shown in the differences table, in this order; the rest only when they differ.
ENV_FIRST: tuple[str, ...] = ("kernel_release", "kernel_version", "thp_enabled", "thp_defrag", "damon", "page_reporting",
                              "console_loglevel", "consoles", "overcommit_memory", "cpu_model", "cpu_count",
                              "mem_total_bytes", "swap_total_bytes", "page_size_bytes", "cgroup_version", "memory_cgroup",
                              "cap_ipc_lock", "rlimit_memlock_soft_bytes",
                              "kernel_cmdline", "host_tag", "mmlab_version", "git_commit", "git_modified", "python_version")
ENV_VOLATILE = ("mem_available_bytes", "memory_cgroup_detail", "experiments", "hostname_hash_only")


@dataclasses.dataclass(frozen=True)
class CompareParams(p.Params):
    """What compare.ipynb compares."""

    runs: str = p.text("", "run ids, run folders or folders of runs, comma-separated; empty: every stored run")
    only_differences: bool = p.flag(True, "environment table: only the facts that differ between runs (the kernel always)")
    reference: bool = p.flag(False, "this machine (the runs named, else its newest run of each experiment) beside the "
                                    "reference machine's shipped runs")

    def read(self) -> tuple[pd.DataFrame, list[dict]]:
        """The rows and metadata to compare: the runs named (or every stored run), or with `reference`
        two groups, the reference machine (the base) and this machine."""
        if self.reference:
            return against_reference([r.strip() for r in self.runs.split(",") if r.strip()])
        return read(self.dirs())

    def dirs(self) -> list[Path]:
        """The run folders named (or every stored run)."""
        names = [r.strip() for r in self.runs.split(",") if r.strip()]
        return resolve(names) if names else store.run_dirs()


def resolve(args: Sequence[str], runs_dir: Path | None = None) -> list[Path]:
    """Run folders named by ids under the runs folder, run folders, or folders of run folders (as
    copied from other machines), in the order given, each once."""
    base = Path(runs_dir or paths.runs_dir())
    out: list[Path] = []
    for a in args:
        p = Path(a)
        if (p / store.RUN_JSON).is_file():
            found = [p]
        elif p.is_dir() and store.run_dirs(p):
            found = [d for d in store.run_dirs(p) if (d / store.RUN_JSON).is_file()]
        elif (base / a / store.RUN_JSON).is_file():
            found = [base / a]
        else:
            raise ParamError("runs", a, f"a run id under {base}, a run folder, or a folder of run folders",
                             "is not a stored run")
        out += [f.resolve() for f in found if f.resolve() not in out]
    return out


def read(dirs: Iterable[Path]) -> tuple[pd.DataFrame, list[dict]]:
    """The runs' tidy rows (column `run_id`) and their run.json metadata, in order."""
    dirs = list(dirs)
    metas = [json.loads((d / store.RUN_JSON).read_text()) for d in dirs]
    for m, d in zip(metas, dirs):
        m.setdefault("run_id", d.name)
    rows = store.load([str(d) for d in dirs], with_env=False)
    return rows, metas


def run_label(meta: Mapping) -> str:
    """A column header naming the run and where it ran: `<run id> (<kernel>)`."""
    env = meta.get("env", {})
    return f"{meta['run_id']} ({env.get('kernel_release', '?')})"


def keyed(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows with `populated_pct` (populated share of the VMA rounded to 5%): a run that stopped mlock
    near a target must meet the same point in another run even if it stopped a few pages apart."""
    if rows.empty or not {"populated_bytes", "vma_bytes"} <= set(rows):
        return rows
    frac = rows["populated_bytes"].astype(float) / rows["vma_bytes"].astype(float)
    return rows.assign(populated_pct=(frac * 20).round() * 5)


def metrics_of(rows: pd.DataFrame, experiment: str) -> list[str]:
    """The experiment's declared metrics present in its rows; unknown experiments: every numeric
    `*_s` / `*_ns_per_page` column (model interval columns `_lo`/`_hi` excluded)."""
    if experiment in METRICS:
        return [m for m in METRICS[experiment] if m in rows and rows[m].notna().any()]
    return [c for c in rows.columns if (c.endswith("_s") or c.endswith("_ns_per_page"))
            and pd.api.types.is_numeric_dtype(rows[c]) and rows[c].notna().any()]


def comparison(rows: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """stats.compare() per experiment across runs (`run_id` the group; first in `order` the base)."""
    if rows.empty:
        return pd.DataFrame()
    rows = keyed(rows)
    if order is not None:
        rank = {r: i for i, r in enumerate(order)}
        rows = rows.iloc[np.argsort([rank.get(r, len(rank)) for r in rows["run_id"]], kind="stable")]
    frames = []
    for exp, g in rows.groupby("experiment", sort=False):
        ms = metrics_of(g, exp)
        if ms:
            t = stats.compare(g, "run_id", ms, KEYS, baseline=order[0] if order else None)
            if not t.empty:
                frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _env_value(v: object) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def env_table(metas: Sequence[Mapping], only_differences: bool = True) -> pd.DataFrame:
    """What the runs' environments say, a row per fact and a column per run, `differs` marking facts
    that are not the same everywhere; by default the differing facts only (the kernel always)."""
    keys = list(ENV_FIRST) + sorted({k for m in metas for k in m.get("env", {})} - set(ENV_FIRST) - set(ENV_VOLATILE))
    rows = []
    for k in keys:
        vals = [_env_value(m.get("env", {}).get(k, "")) for m in metas]
        if all(v == "" for v in vals):
            continue
        differs = len(set(vals)) > 1
        if only_differences and not differs and k != "kernel_release":
            continue
        rows.append({"fact": k, **{m["run_id"]: v for m, v in zip(metas, vals)}, "differs": differs})
    return pd.DataFrame(rows).set_index("fact") if rows else pd.DataFrame()


def wide(table: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """The comparison laid out as mmtests does: a row per metric and point, a column per run."""
    keys = [k for k in KEYS if k in table and table[k].notna().any()]
    return stats.compare_wide(table, "run_id", keys, order)


def text_report(table: pd.DataFrame, envs: pd.DataFrame, labels: Mapping[str, str]) -> str:
    """The plain-text report printed by `mmlab compare`: environment differences, then the tables."""
    out = []
    with pd.option_context("display.max_colwidth", 60, "display.width", 200, "display.max_columns", 50):
        out.append("Runs:")
        out += [f"  {i}. {label}" for i, label in enumerate(labels.values(), 1)]
        out.append("")
        out.append("Environment (facts that differ; the kernel always):")
        out.append(envs.to_string() if not envs.empty else "  (no environment recorded)")
        out.append("")
        if table.empty:
            out.append("No metric is present in these runs.")
            return "\n".join(out)
        out.append("Medians, change against the first run, '*' where the 95% interval of the ratio excludes 1"
                   " ('no base': the first run lacks the point):")
        experiment = table["metric"].str.split(".", n=1).str[0]
        for _, part in table.groupby(experiment, sort=False):
            part = part.drop(columns=[k for k in KEYS if k in part and part[k].isna().all()])  # another experiment's keys
            out.append(readable(wide(part, list(labels))).to_string())
            out.append("")
    return "\n".join(out).rstrip()


def readable(w: pd.DataFrame) -> pd.DataFrame:
    """A wide table for people: sizes as sizes (`256MiB`, not 268435456.0), shares as percentages, no
    `nan` for a key a row does not have, and a missing base said in words."""
    from mmlab.core.units import format_bytes

    if w.empty:
        return w

    def key(name: str, v: object) -> object:
        if isinstance(v, float) and not np.isfinite(v):
            return ""
        if name and name.endswith("_bytes"):
            return format_bytes(float(v))
        if name == "populated_pct":
            return f"{float(v):g}%"
        return v

    idx = w.index.to_frame(index=False)
    for col in idx.columns:
        idx[col] = [key(col, v) for v in idx[col]]
    idx.columns = [c.removesuffix("_bytes") if isinstance(c, str) else c for c in idx.columns]
    out = w.copy()
    out.index = pd.MultiIndex.from_frame(idx)
    return out.map(lambda c: c.replace("    nan", " no base").replace("nan-nan", "-") if isinstance(c, str) else c)


REFERENCE = "reference machine"
THIS = "this machine"


def newest_per_experiment(dirs: Sequence[Path], experiments: Iterable[str]) -> list[Path]:
    """The newest run of each of `experiments` among `dirs` (oldest first, as store.run_dirs gives them)."""
    wanted, out = set(experiments), []
    for d in reversed(list(dirs)):
        try:
            have = set(json.loads((d / store.RUN_JSON).read_text()).get("experiments", []))
        except (OSError, ValueError):
            continue
        if have & wanted:
            out.append(d)
            wanted -= have
    return out[::-1]


def against_reference(runs: Sequence[str]) -> tuple[pd.DataFrame, list[dict]]:
    """Rows and metadata with two groups: the reference dataset (`reference machine`, the base) and this
    machine's runs (those named, else the newest stored run of each experiment the reference has)."""
    ref_dirs = store.run_dirs(paths.REFERENCE_RUNS_DIR)
    if not ref_dirs:
        raise ParamError("--reference", str(paths.REFERENCE_RUNS_DIR), "a folder holding the reference runs",
                         "holds no reference runs")
    ref_rows, ref_metas = read(ref_dirs)
    mine = resolve(runs) if runs else newest_per_experiment(store.run_dirs(), set(ref_rows["experiment"]))
    if not mine:
        raise ParamError("runs", "", f"run ids, or real runs stored under {paths.runs_dir()}",
                         "none of this machine's runs is stored")
    my_rows, my_metas = read(mine)
    rows = pd.concat([ref_rows.assign(run_id=REFERENCE), my_rows.assign(run_id=THIS)], ignore_index=True, sort=False)
    metas = [{**ref_metas[-1], "run_id": REFERENCE}, {**my_metas[-1], "run_id": THIS}]
    return rows, metas


# The one metric per experiment the summary sets beside the reference machine.
EXPERIMENTS_WITH_METRICS = tuple(METRICS)
HEADLINE_METRICS = ("mlock-throughput.mlock_ns_per_page", "sigkill-during-mlock.kill_to_reap_s",
                    "munlock-partial.munlock_s", "prepatch-replay.replay_s", "oom-kill.kill_to_reap_s")


def beside_reference(metrics: Sequence[str] = HEADLINE_METRICS) -> tuple[pd.DataFrame, str]:
    """This machine's newest run of each experiment beside the reference dataset, one metric per
    experiment, as a table for people (base: the reference machine; marks as `mmlab compare` prints
    them); an empty table and the reason when either side has nothing to compare."""
    if not store.run_dirs(paths.REFERENCE_RUNS_DIR):
        return pd.DataFrame(), "the reference dataset is not installed"
    if not newest_per_experiment(store.run_dirs(), EXPERIMENTS_WITH_METRICS):
        return pd.DataFrame(), "no real run of this machine is stored"
    rows, metas = against_reference([])
    order = [m["run_id"] for m in metas]
    table = comparison(rows, order)
    if not table.empty:
        table = table[table["metric"].isin(metrics)]
    if table.empty:
        return pd.DataFrame(), "no point was measured on both machines with the same parameters"
    return readable(wide(table, order)), ""


def main(runs: Sequence[str], as_json: bool = False, out=None, reference: bool = False) -> int:
    """Print the comparison (text, or JSON with `runs`, `environment`, `comparison`); with `reference`,
    this machine's runs against the reference dataset."""
    out = out or sys.stdout
    if reference:
        rows, metas = against_reference(runs)
    else:
        if not runs:
            raise ParamError("runs", "", "one or more run ids or folders, or --reference", "is empty")
        rows, metas = read(resolve(runs))
    order = [m["run_id"] for m in metas]
    table = comparison(rows, order)
    envs = env_table(metas)
    if as_json:
        doc = {"runs": [{"run_id": m["run_id"], "kernel_release": m.get("env", {}).get("kernel_release"),
                         "experiments": m.get("experiments", [])} for m in metas],
               "environment": json.loads(envs.reset_index().to_json(orient="records")) if not envs.empty else [],
               "comparison": json.loads(table.to_json(orient="records", double_precision=15)) if not table.empty else []}
        print(json.dumps(doc, indent=1), file=out)
        return 0
    print(text_report(table, envs, {m["run_id"]: run_label(m) for m in metas}), file=out)
    return 0


def figure(rows: pd.DataFrame, experiment: str, metric: str, order: Sequence[str]):
    """One metric across runs: at each point (its key values) a column of dots per run, one dot per
    repeat, with a bar at the median; log scale when all values are positive."""
    plt = pyplot()

    d = stats.measured_rows(keyed(rows[rows["experiment"] == experiment]))
    d = d[np.isfinite(d[metric].astype(float))] if metric in d else d.iloc[0:0]
    keys = [k for k in KEYS if k in d and d[k].notna().any() and d[k].nunique() > 1]
    d = d.assign(point=d[keys].astype(str).agg(" ".join, axis=1) if keys else "")
    pts = list(dict.fromkeys(d.sort_values(keys)["point"])) if keys else [""]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(pts) * max(1, len(order)) + 2), 3.6))
    width = 0.8 / max(1, len(order))
    for j, run in enumerate(order):
        for i, pt in enumerate(pts):
            v = d[(d["run_id"] == run) & (d["point"] == pt)][metric].astype(float)
            if v.empty:
                continue
            x = i - 0.4 + width * (j + 0.5)
            ax.scatter([x] * len(v), v, s=12, color=f"C{j}", alpha=0.7, label=run if i == 0 or pt == pts[0] else None)
            ax.hlines(float(np.median(v)), x - width * 0.4, x + width * 0.4, color=f"C{j}", lw=2)
    ax.set_xticks(range(len(pts)), [p.replace(" ", "\n") for p in pts], fontsize=7)
    if len(d) and (d[metric].astype(float) > 0).all():
        ax.set_yscale("log")
    ax.set_ylabel(metric)
    ax.set_title(f"{stats.metric_name(experiment, metric)}: each dot a repeat, bar the median ({' '.join(keys)})", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7)
    ax.grid(True, axis="y", which="both", alpha=0.25)
    fig.tight_layout()
    return fig
