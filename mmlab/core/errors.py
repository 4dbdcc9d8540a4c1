"""The one exception tree of mmlab: every error the package raises on purpose derives from `MmlabError`,
which knows the command line's exit code and the word it is shown with, so `mmlab` catches one type.

Exit codes: 1 an experiment or notebook failed, 2 bad input, 75 (EX_TEMPFAIL, sysexits.h) the machine
is busy with another real experiment, 0 skipped (the reason on stderr)."""
from __future__ import annotations


class MmlabError(Exception):
    """Base of mmlab's errors; `str()` is one line for the user."""

    exit_code = 1
    label = "error"  # shown as `mmlab: <label>: <message>`


class CliError(MmlabError):
    """Bad input that is not a single parameter's value (a file, a notebook name): exit code 2."""

    exit_code = 2
