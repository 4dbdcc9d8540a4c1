"""The results store: one folder per run under data/runs/, written atomically, never overwritten.

A run folder holds one Parquet file per experiment (tidy rows) and `run.json` (run id, time, the
environment, the parameters, the parts of an experiment skipped on the machine with their reasons, and
the collection it belongs to when `mmlab run` made it: every run of one report shares its id). It
is written under a hidden temporary name and renamed into place, so a reader sees a whole run or none;
an interrupted run is left as `<id>.incomplete`, which `load()` skips by name.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import warnings
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from mmlab.core import paths
from mmlab.core.errors import MmlabError

RUN_JSON = "run.json"
COLLECTION_ENV = "MMLAB_COLLECTION"  # set by `mmlab run` for its notebooks: the report's id, kept in run.json


def host_tag(hostname: str | None = None) -> str:
    """A short stable tag for the host (hash, so the folder name leaks no hostname)."""
    return hashlib.sha1((hostname or socket.gethostname()).encode()).hexdigest()[:6]


def new_run_id(now: datetime | None = None, hostname: str | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z-{host_tag(hostname)}"


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    return str(o)


class StoreError(MmlabError):
    """A run could not be written (disk full, read-only or missing folder); `str()` is one line naming the
    folder and the error, and where the rows were saved instead, or that they were not kept. Exit code 1."""


def _write(tmp: Path, results: Mapping[str, pd.DataFrame], meta: Mapping[str, object]) -> None:
    """The run's files in `tmp`, synced; folder 0755 and files 0644 whatever the umask."""
    for name, df in results.items():
        df.to_parquet(tmp / f"{name}.parquet", index=False)
    with open(tmp / RUN_JSON, "w") as f:
        json.dump(meta, f, indent=1, default=_json_default)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o755)
    for item in tmp.iterdir():
        os.chmod(item, 0o644)


def _why(e: BaseException) -> str:
    return getattr(e, "strerror", None) or " ".join(str(e).split()) or type(e).__name__


def _save_elsewhere(results: Mapping[str, pd.DataFrame], meta: Mapping[str, object], run_id: str) -> Path | None:
    """The rows of a run that could not be written where asked, in a private folder under the system's
    temporary folder; None if that fails too (nothing is left behind)."""
    import tempfile

    try:
        base = Path(tempfile.mkdtemp(prefix=f"mmlab-unsaved-{run_id}-"))
    except OSError:
        return None
    try:
        _write(base, results, meta)
        return base
    except (OSError, ValueError):
        shutil.rmtree(base, ignore_errors=True)
        return None


def save(results: Mapping[str, pd.DataFrame], params: Mapping[str, dict], env: Mapping[str, object],
         runs_dir: Path | None = None, run_id: str | None = None, extra: Mapping[str, object] | None = None) -> Path:
    """Write one run atomically and return its folder; an existing run is never replaced.

    If the folder cannot be written (full disk, read-only, permissions), nothing half-written is left
    there and StoreError says where the rows went instead (a temporary folder) or that they were not kept."""
    runs_dir = Path(runs_dir or paths.runs_dir())
    run_id = run_id or new_run_id()
    meta = {"run_id": run_id, "created_utc": datetime.now(UTC).isoformat(),
            "experiments": list(results), "params": dict(params), "env": dict(env), **(extra or {})}
    if os.environ.get(COLLECTION_ENV):
        meta.setdefault("collection", os.environ[COLLECTION_ENV])
    tmp = runs_dir / f".tmp-{run_id}-{os.getpid()}"
    try:
        if not runs_dir.is_dir():  # a runs folder mmlab makes is 0755 whatever the umask
            runs_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(runs_dir, 0o755)
        tmp.mkdir(mode=0o755)
        _write(tmp, results, meta)
        final, n = runs_dir / run_id, 1
        while True:
            if not final.exists():
                try:
                    os.rename(tmp, final)  # atomic; a non-empty target makes it fail rather than replace
                    break
                except OSError:
                    if not tmp.is_dir():
                        raise
            n += 1
            final = runs_dir / f"{run_id}-{n}"
        meta["run_id"] = final.name
        if final.name != run_id:
            # rewritten atomically (temp + rename), so an interrupt here never half-writes run.json
            part = final / f".{RUN_JSON}.tmp"
            with open(part, "w") as f:
                json.dump(meta, f, indent=1, default=_json_default)
            os.chmod(part, 0o644)
            os.replace(part, final / RUN_JSON)
        return final
    except OSError as e:  # full disk, read-only folder, no permission: nothing half-written stays
        shutil.rmtree(tmp, ignore_errors=True)
        where = _save_elsewhere(results, meta, run_id)
        kept = f"rows saved in {where}" if where else "the rows were not kept"
        raise StoreError(f"cannot write the run to {runs_dir}: {_why(e)}; {kept}") from None
    except BaseException:
        if tmp.exists():
            incomplete = runs_dir / f"{run_id}.incomplete"
            try:
                os.rename(tmp, incomplete)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        raise


def run_dirs(runs_dir: Path | None = None) -> list[Path]:
    """Complete run folders, oldest first (hidden temporaries and *.incomplete excluded)."""
    runs_dir = Path(runs_dir or paths.runs_dir())
    if not runs_dir.is_dir():
        return []
    return sorted(d for d in runs_dir.iterdir()
                  if d.is_dir() and not d.name.startswith(".") and not d.name.endswith(".incomplete"))


def flatten_env(env: Mapping[str, object]) -> dict[str, object]:
    """Environment as `env.<key>` scalar columns (nested dicts dotted; lists as JSON text)."""
    out: dict[str, object] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(value, (list, tuple)):
            out[prefix] = json.dumps(value, default=_json_default)
        else:
            out[prefix] = value

    walk("env", env)
    return out


def read_run(run_dir: Path) -> tuple[dict, dict[str, pd.DataFrame]]:
    meta = json.loads((run_dir / RUN_JSON).read_text())
    # experiment names from a (possibly foreign) run.json become file names: plain names, never paths
    bad = [n for n in meta["experiments"] if not paths.is_plain_name(n)]
    if bad:
        raise ValueError(f"run.json lists experiment names that are not plain names: {bad[:3]!r}")
    frames = {name: pd.read_parquet(run_dir / f"{name}.parquet") for name in meta["experiments"]}
    return meta, frames


def load(runs: Iterable[str] | str | None = None, experiment: str | None = None,
         runs_dir: Path | None = None, with_env: bool = True, reference: bool = False) -> pd.DataFrame:
    """All stored runs (or the chosen run ids / folders) as one tidy DataFrame, environment joined.

    `reference=True` reads the reference dataset shipped with mmlab instead: real runs at full sizes on
    the reference machine (its environment in the env.* columns), to explore without running anything.
    Column `collection` names the report whose `mmlab run` made the row's run (None for a run made on its
    own). Corrupt or partial run folders are skipped with a warning naming them. Parts of an experiment that a
    run skipped are in `.attrs["skipped_parts"]`: {run_id: {experiment: {part: reason}}}."""
    if reference:
        runs_dir = paths.REFERENCE_RUNS_DIR
    if isinstance(runs, str):
        runs = [runs]
    if runs is None:
        dirs = run_dirs(runs_dir)
    else:
        base = Path(runs_dir or paths.runs_dir())
        dirs = [Path(r) if Path(r).is_dir() else base / r for r in runs]
    frames, skipped = [], {}
    for d in dirs:
        try:
            meta, dfs = read_run(d)
        except Exception as e:  # any unreadable folder is skipped, named
            warnings.warn(f"skipping run folder {d}: {type(e).__name__}: {e}", stacklevel=2)
            continue
        envcols = flatten_env(meta.get("env", {})) if with_env else {}
        for name, df in dfs.items():
            if experiment is not None and name != experiment:
                continue
            df = df.copy()
            if "experiment" not in df:
                df["experiment"] = name
            df["run_id"] = meta.get("run_id", d.name)
            df["collection"] = meta.get("collection")
            parts = (meta.get("skipped_parts") or {}).get(name)
            if parts:
                skipped.setdefault(meta.get("run_id", d.name), {})[name] = dict(parts)
            if envcols:  # one block, not one insert per column (a frame of many columns fragments)
                env_df = pd.DataFrame({k: [v] * len(df) for k, v in envcols.items()}, index=df.index)
                df = pd.concat([df.drop(columns=list(envcols), errors="ignore"), env_df], axis=1)
            frames.append(df)
    if not frames:
        out = pd.DataFrame(columns=["experiment", "method", "run_id"])
    else:
        out = pd.concat(frames, ignore_index=True, sort=False).copy()  # copy(): one block per dtype, not per frame
    out.attrs["skipped_parts"] = skipped
    return out


def runs_table(runs_dir: Path | None = None) -> pd.DataFrame:
    """One row per stored run: id, time, experiments, kernel, host tag."""
    rows = []
    for d in run_dirs(runs_dir):
        try:
            meta = json.loads((d / RUN_JSON).read_text())
        except Exception as e:
            warnings.warn(f"skipping run folder {d}: {e}", stacklevel=2)
            continue
        env = meta.get("env", {})
        rows.append({"run_id": meta.get("run_id", d.name), "created_utc": meta.get("created_utc"),
                     "experiments": ",".join(meta.get("experiments", [])),
                     "skipped_parts": "; ".join(f"{exp} {part}: {why}" for exp, parts in
                                                (meta.get("skipped_parts") or {}).items() for part, why in parts.items()),
                     "kernel_release": env.get("kernel_release"), "host_tag": env.get("host_tag")})
    return pd.DataFrame(rows)
