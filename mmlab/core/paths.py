"""The project's folders, defined once, so notebooks run from any folder find their data."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = PACKAGE_DIR.parent
NOTEBOOKS_DIR = PROJECT_DIR / "notebooks"
DATA_DIR = PROJECT_DIR / "data"
REFERENCE_DIR = DATA_DIR / "reference"


# MMLAB_RUNS_DIR / MMLAB_REPORTS_DIR let tests and batch jobs point the store elsewhere; read at call time.
def runs_dir() -> Path:
    """The runs folder (git-ignored): stored runs and this machine's calibrated profile."""
    return Path(os.environ.get("MMLAB_RUNS_DIR", DATA_DIR / "runs"))


def reports_dir() -> Path:
    """The published reports' folder (git-ignored)."""
    return Path(os.environ.get("MMLAB_REPORTS_DIR", PROJECT_DIR / "reports"))
