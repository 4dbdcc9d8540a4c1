"""The project's folders, defined once, so notebooks run from any folder find their data.

Two kinds of folder. What mmlab reads and never changes (the notebooks, the reference profile and
dataset, the C reference program) lives in the source tree at `notebooks/`, `data/reference/` and
`benchmarks/`; a wheel carries copies of them inside the package, under `mmlab/_resources/` (setup.py
puts them there), so an installed mmlab finds them without the source tree. What mmlab writes (runs,
reports, this machine's calibrated profile) goes under the folder it is started from (`data/runs/`,
`reports/`, `data/profiles/`), or where MMLAB_RUNS_DIR / MMLAB_REPORTS_DIR say: never into
site-packages or the source tree.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = PACKAGE_DIR.parent  # the source tree when installed editable (site-packages otherwise)
BUNDLED_DIR = PACKAGE_DIR / "_resources"  # only in a built wheel


def resource_root() -> Path:
    """Where the read-only resources are: inside the package (a wheel) or the source tree (a checkout)."""
    return BUNDLED_DIR if BUNDLED_DIR.is_dir() else PROJECT_DIR


RESOURCE_DIR = resource_root()
NOTEBOOKS_DIR = RESOURCE_DIR / "notebooks"
REFERENCE_DIR = RESOURCE_DIR / "data" / "reference"
REFERENCE_RUNS_DIR = REFERENCE_DIR / "runs"  # real runs at full sizes on the reference machine
C_REFERENCE = RESOURCE_DIR / "benchmarks" / "mlock_ref.c"


def runs_dir() -> Path:
    """The runs folder: MMLAB_RUNS_DIR, else `data/runs` under the current folder (read at call time)."""
    return Path(os.environ.get("MMLAB_RUNS_DIR") or Path.cwd() / "data" / "runs").absolute()


def reports_dir() -> Path:
    """The reports folder: MMLAB_REPORTS_DIR, else `reports` under the current folder."""
    return Path(os.environ.get("MMLAB_REPORTS_DIR") or Path.cwd() / "reports").absolute()


def data_dir() -> Path:
    """Written data beside the runs (this machine's calibrated profile): the runs folder's parent."""
    return runs_dir().parent
