"""The project's folders, defined once, so notebooks run from any folder find their data."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = PACKAGE_DIR.parent
NOTEBOOKS_DIR = PROJECT_DIR / "notebooks"
DATA_DIR = PROJECT_DIR / "data"
# MMLAB_RUNS_DIR / MMLAB_REPORTS_DIR let tests and batch jobs point the store elsewhere.
RUNS_DIR = Path(os.environ.get("MMLAB_RUNS_DIR", DATA_DIR / "runs"))
REPORTS_DIR = Path(os.environ.get("MMLAB_REPORTS_DIR", PROJECT_DIR / "reports"))
REFERENCE_DIR = DATA_DIR / "reference"


def runs_dir() -> Path:
    """The runs folder, read from the environment at call time (tests redirect it)."""
    return Path(os.environ.get("MMLAB_RUNS_DIR", DATA_DIR / "runs"))


def reports_dir() -> Path:
    return Path(os.environ.get("MMLAB_REPORTS_DIR", PROJECT_DIR / "reports"))
