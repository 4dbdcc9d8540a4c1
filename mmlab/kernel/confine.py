"""Paths and names from user input, confined: mmlab often runs as root, so a parameter must never steer a
write (or a read) outside the project's folders, nor name a folder with `/`, `..` or control characters.

The project's folders are the checkout (`paths.PROJECT_DIR`) and the runs and reports folders (which
MMLAB_RUNS_DIR / MMLAB_REPORTS_DIR may point elsewhere). Paths are resolved (symlinks followed) before
the check, so a link inside the project pointing out of it is refused too.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mmlab.core import paths
from mmlab.core.params import ParamError


def project_roots() -> list[Path]:
    """The folders mmlab may write to or read named files from."""
    return [paths.PROJECT_DIR, paths.runs_dir(), paths.reports_dir()]


def safe_name(param: str, value: object) -> str:
    """A single folder or file name: letters, digits, `._+-`, not starting with a dot, at most 128."""
    if not paths.is_plain_name(value) or value.endswith(".incomplete"):
        raise ParamError(param, value, "a plain name of letters, digits and ._+- (no / or .., not hidden, "
                                       "at most 128 characters)", "is not a safe name")
    return value


def inside(param: str, value: object, roots: Iterable[Path] | None = None) -> Path:
    """`value` as a resolved path, if it lies in one of `roots` (default: the project's folders)."""
    roots = list(roots) if roots is not None else project_roots()
    allowed = "a path inside " + " or ".join(str(r) for r in roots)
    if not isinstance(value, (str, Path)) or not str(value) or "\0" in str(value):
        raise ParamError(param, value, allowed, "is not a path")
    resolved = Path(value).expanduser().resolve()
    for root in roots:
        try:
            resolved.relative_to(Path(root).resolve())
            return resolved
        except ValueError:
            continue
    raise ParamError(param, str(value), allowed, "is outside the project's folders")
