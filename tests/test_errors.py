"""One exception tree: every error mmlab raises on purpose derives from MmlabError and carries the
command line's exit code, so `mmlab` catches one type and prints one line."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import mmlab
from mmlab import cli
from mmlab.core.errors import CliError, MmlabError
from mmlab.core.params import ParamError
from mmlab.experiments import ExperimentFailed
from mmlab.kernel.child import ChildDied, ChildTimeout
from mmlab.kernel.machine_lock import MachineBusy
from mmlab.kernel.safety import Skipped


def _exception_classes():
    for info in pkgutil.walk_packages(mmlab.__path__, "mmlab."):
        if info.name in ("mmlab.__main__",):
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == info.name and issubclass(obj, Exception) and not issubclass(obj, Warning):
                yield obj


def test_every_mmlab_exception_derives_from_the_base():
    """Exceptions (not warnings, not the SIGTERM KeyboardInterrupt) defined in the package share one base."""
    stray = sorted(c.__qualname__ for c in _exception_classes() if not issubclass(c, MmlabError))
    assert stray == []


@pytest.mark.parametrize(("error", "code", "word"), [
    (ParamError("repeats", 0, "1..100"), 2, "error"),
    (CliError("-f x.yaml: No such file or directory"), 2, "error"),
    (Skipped("no memory cgroup here"), 0, "skipped"),
    (MachineBusy("pid 7 (mmlab) holds the machine lock"), 75, "busy"),
    (ExperimentFailed("oom-kill failed (a child hung)"), 1, "error"),
    (ChildTimeout("child silent for 5 s"), 1, "error"),
    (ChildDied("child exited early", -9), 1, "error"),
])
def test_cli_prints_one_line_with_the_errors_exit_code(monkeypatch, capsys, error, code, word):
    """Whatever mmlab error a command raises, `mmlab` exits with its code and says it on one line."""
    def fail(args):
        raise error

    monkeypatch.setattr(cli, "cmd_env", fail)
    assert cli.main(["env"]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"mmlab: {word}: ")
