"""The project's folders, defined once, so notebooks run from any folder find their data.

Two kinds of folder. What mmlab reads and never changes (the notebooks, the reference profile and
dataset, the cited background documents, the C reference program) lives in the source tree at
`notebooks/`, `data/reference/`, `data/sources/` and `benchmarks/`; a wheel carries copies of them inside
the package, under `mmlab/_resources/` (setup.py puts them there), so an installed mmlab finds them
without the source tree. What mmlab writes (runs, reports, this machine's calibrated profile, which sits
with the runs) goes under the folder mmlab is started from (`data/runs/`, `reports/`), or where
MMLAB_RUNS_DIR / MMLAB_REPORTS_DIR say: never into site-packages or the source tree.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = PACKAGE_DIR.parent  # the source tree when installed editable (site-packages otherwise)
BUNDLED_DIR = PACKAGE_DIR / "_resources"  # only in a built wheel


def resource_root() -> Path:
    """Where the read-only resources are: inside the package (a wheel) or the source tree (a checkout)."""
    return BUNDLED_DIR if BUNDLED_DIR.is_dir() else PROJECT_DIR


RESOURCE_DIR = resource_root()
NOTEBOOKS_DIR = RESOURCE_DIR / "notebooks"
DATA_DIR = RESOURCE_DIR / "data"
REFERENCE_DIR = DATA_DIR / "reference"
REFERENCE_RUNS_DIR = REFERENCE_DIR / "runs"  # real runs at full sizes on the reference machine
SOURCES_DIR = DATA_DIR / "sources"  # the background documents the notebooks and the simulator cite
C_REFERENCE = RESOURCE_DIR / "benchmarks" / "mlock_ref.c"


# MMLAB_RUNS_DIR / MMLAB_REPORTS_DIR let tests and batch jobs point the store elsewhere; read at call time.
def runs_dir() -> Path:
    """The runs folder: MMLAB_RUNS_DIR, else `data/runs` under the current folder (read at call time)."""
    return Path(os.environ.get("MMLAB_RUNS_DIR") or Path.cwd() / "data" / "runs").absolute()


def reports_dir() -> Path:
    """The reports folder: MMLAB_REPORTS_DIR, else `reports` under the current folder."""
    return Path(os.environ.get("MMLAB_REPORTS_DIR") or Path.cwd() / "reports").absolute()


_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def is_plain_name(value: object) -> bool:
    """A single file or folder name: letters, digits and `._+-`, not starting with a dot, at most 128
    characters; so never a path (`/`, `..`) nor control characters. mmlab often runs as root, and names
    from outside (a parameter, a foreign run.json) become folder and file names."""
    return isinstance(value, str) and _PLAIN_NAME.fullmatch(value) is not None
