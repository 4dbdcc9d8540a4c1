"""The project's folders, defined once, so notebooks run from any folder find their data."""
from __future__ import annotations

import os
import re
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


_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def is_plain_name(value: object) -> bool:
    """A single file or folder name: letters, digits and `._+-`, not starting with a dot, at most 128
    characters; so never a path (`/`, `..`) nor control characters. mmlab often runs as root, and names
    from outside (a parameter, a foreign run.json) become folder and file names."""
    return isinstance(value, str) and _PLAIN_NAME.fullmatch(value) is not None
