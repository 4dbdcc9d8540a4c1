"""Security of a root tool: no shell with user text, parameters injected into notebooks are data never
code, paths from parameters stay inside the project's folders, cgroup names are validated before the
janitor touches a group, and what mmlab writes is never group- or world-writable.
"""
from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import uuid
from pathlib import Path

import nbformat
import pandas as pd
import papermill
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mmlab
from mmlab.core import store
from mmlab.kernel import cgroup, machine_lock
from tests.conftest import needs_root
from tests.conftest_reliability import PYTHON, ROOT, earlier_run, mmlab_env, new_tag, one_line_error, scenario_names

pytestmark = pytest.mark.reliability
PACKAGE = ROOT / "mmlab"


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            yield node, owner, name


def test_package_never_runs_a_shell_or_evaluates_text():
    """No module of mmlab calls a shell (os.system, os.popen, shell=True, a command given as one string),
    eval/exec, pickle or yaml's unsafe loader: user text can never become a command or code."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node, owner, name in _calls(tree):
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if (owner, name) in {("os", "system"), ("os", "popen"), ("pickle", "loads"), ("pickle", "load"),
                                 ("yaml", "load"), ("yaml", "unsafe_load"), ("os", "execl"), ("os", "execlp")}:
                found.append(f"{where} {owner}.{name}")
            if name in ("eval", "exec", "compile") and not owner:
                found.append(f"{where} {name}")
            if any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                   for k in node.keywords):
                found.append(f"{where} shell=")
            if owner == "subprocess" or name == "Popen":
                if node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)):
                    found.append(f"{where} command as a string")
    assert found == []


@given(value=st.text(max_size=60) | st.sampled_from([
    "__import__('os').system('touch /tmp/pwned')", '"; import os; os.system("touch /tmp/pwned"); x = "',
    "'''\nimport os\n'''", '\\"; raise SystemExit #', "\x00\x1b[31m", "\udcff", "a\\", "\\\\\"\n"]))
@settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_papermill_injects_any_text_as_a_string_literal(value, ledger):
    """papermill writes `-p` values into the injected-parameters cell as literals: for any text, that
    cell is only assignments of constants, and each evaluates back to exactly the text given."""
    nb = papermill.iorw.load_notebook_node(str(ROOT / "notebooks" / "01-mlock-throughput.ipynb"))
    with ledger.bad_input():
        out = papermill.parameterize.parameterize_notebook(nb, {"sizes": value, "mappings": value})
        cell = next(c for c in out.cells if "injected-parameters" in c.metadata.get("tags", []))
        tree = ast.parse(cell.source)
        assigned = {}
        for stmt in tree.body:
            assert isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant), ast.dump(stmt)
            assigned[stmt.targets[0].id] = ast.literal_eval(stmt.value)
        assert assigned == {"sizes": value, "mappings": value}


PAYLOADS = ["__import__('os').system('touch {mark}')",
            "\"; import os; os.system('touch {mark}'); x = \"",
            "'''\nimport os; os.system('touch {mark}')\n'''",
            "\\\"; __import__('os').system('touch {mark}') #"]


def test_code_given_as_a_run_parameter_is_never_executed(tmp_path, ledger):
    """`mmlab run` with code as a parameter value: a validated parameter refuses it (exit 2, one line);
    an unvalidated text parameter arrives in the notebook as the very same string; nothing is executed."""
    marks = [tmp_path / f"pwned-{uuid.uuid4().hex}" for _ in PAYLOADS]
    payloads = [p.format(mark=m) for p, m in zip(PAYLOADS, marks)]
    for payload in payloads:
        with ledger.bad_input():
            r = subprocess.run([PYTHON, "-m", "mmlab", "run", "01", "-p", "sizes", payload], capture_output=True,
                               text=True, timeout=120, env=mmlab_env(new_tag()))
            assert r.returncode == 2 and "parameter sizes" in one_line_error(r.stderr), r.stderr
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nb.cells = [nbformat.v4.new_code_cell("\n".join(f"text{i}: str = 'plain'  # free text" for i in range(len(payloads))),
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import json\nprint(json.dumps([" + ", ".join(f"text{i}" for i in range(len(payloads))) + "]))")]
    path = tmp_path / "91-echo.ipynb"
    nbformat.write(nb, path)
    args = [a for i, p in enumerate(payloads) for a in ("-p", f"text{i}", p)]
    with ledger.bad_input():
        r = subprocess.run([PYTHON, "-m", "mmlab", "run", str(path), *args], capture_output=True, text=True,
                           timeout=300, env=mmlab_env(new_tag()))
        assert r.returncode == 0, r.stderr
        executed = nbformat.read(Path(r.stdout.strip().splitlines()[-1].removeprefix("HTML index: ")).parent / path.name,
                                 as_version=4)
        printed = json.loads(executed.cells[-1].outputs[0]["text"])
        assert printed == payloads
    assert not any(m.exists() for m in marks), "a parameter value was executed"


def test_yaml_parameter_file_cannot_construct_python_objects(tmp_path, ledger):
    """`-f params.yaml` is read with the safe loader: a python/object tag is a one-line error, not a call."""
    mark = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"sizes: !!python/object/apply:os.system ['touch {mark}']\n")
    with ledger.bad_input():
        r = subprocess.run([PYTHON, "-m", "mmlab", "experiment", "mlock-throughput", "-f", str(evil)],
                           capture_output=True, text=True, timeout=60, env=mmlab_env(new_tag()))
        assert r.returncode == 2 and "not valid YAML" in one_line_error(r.stderr), r.stderr
    assert not mark.exists()


def test_paths_from_parameters_stay_inside_the_project(tmp_path, isolated_store, ledger):
    """A path or folder name given on the command line that points outside the project's folders is
    refused with one line (exit 2) and nothing is created there: calibrate --out, run --run-id, a
    simulation's profile file."""
    outside = tmp_path / "outside"
    outside.mkdir()
    profile = outside / "profile.json"
    profile.write_text("{}")
    cases = [(["calibrate", "--out", str(outside / "written.json")], "--out"),
             (["run", "01", "--run-id", "../../../" + str(outside.relative_to("/")) + "/report"], "run-id"),
             (["run", "01", "--run-id", ".hidden"], "run-id")]
    if scenario_names():
        cases.append((["simulate", scenario_names()[0], "-p", "profile", str(profile)], "profile"))
    for argv, name in cases:
        with ledger.bad_input():
            r = subprocess.run([PYTHON, "-m", "mmlab", *argv], capture_output=True, text=True, timeout=120,
                               env=mmlab_env(new_tag()))
            assert r.returncode == 2, (argv, r.stderr)
            assert f"parameter {name}" in one_line_error(r.stderr), r.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["profile.json"]


def test_a_run_folder_cannot_make_load_read_outside_it(tmp_path, ledger):
    """A crafted run.json naming `../../secret` as an experiment is skipped with a warning; the parquet
    file it points to outside the runs folder is never read into the rows."""
    runs = tmp_path / "runs"
    earlier_run(runs)
    secret = pd.DataFrame({"experiment": ["secret"], "method": ["real"], "token": ["do-not-load"]})
    secret.to_parquet(tmp_path / "secret.parquet")
    crafted = runs / "20000101T000000.000Z-crafted"
    crafted.mkdir()
    (crafted / "run.json").write_text(json.dumps({"run_id": crafted.name, "experiments": ["../../secret"]}))
    with ledger.bad_input():
        with pytest.warns(UserWarning, match=crafted.name):
            df = mmlab.load(runs_dir=runs)
        assert "token" not in df and set(df["experiment"]) == {"earlier"}


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@needs_root
def test_janitor_touches_only_groups_named_exactly_as_mmlab_names_them():
    """Groups whose names merely resemble mmlab's (`mmlab-PID-N-x`, `xmmlab-PID-N`, non-ASCII digits) are
    left alone even when PID is dead; an exact `mmlab-PID-N` of a dead PID is removed."""
    h = cgroup.find_hierarchy()
    dead = _dead_pid()
    lookalikes = [h.parent / n for n in (f"mmlab-{dead}-0-keep", f"xmmlab-{dead}-0", "mmlab-\u0663\u0663-0", f"mmlab-{dead}-")]
    real = h.parent / f"mmlab-{dead}-7"
    made = []
    try:
        for d in [*lookalikes, real]:
            d.mkdir()
            made.append(d)
        stale = cgroup.stale_groups()
        assert real in stale and not any(d in stale for d in lookalikes)
        removed = cgroup.remove_stale()
        assert real in removed and not real.exists()
        assert all(d.exists() for d in lookalikes)
    finally:
        for d in made:
            if d.exists():
                d.rmdir()


def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.rglob("*")]}


def test_runs_are_written_0755_and_0644_even_under_umask_000(isolated_store, tmp_path, ledger):
    """With umask 000, a stored run's folder is 0755 and its files 0644, whether written by the command
    (`mmlab experiment`) or through the API (`store.save`); the lock file mmlab creates is 0644."""
    lock = tmp_path / "lock" / "mmlab-real.lock"
    lock.parent.mkdir()
    r = subprocess.run([PYTHON, "-m", "mmlab", "experiment", "mlock-throughput", "-p", "sizes", "1MiB", "-p", "warmup", "0",
                        "--repeats", "1", "--json"], capture_output=True, text=True, timeout=300,
                       env=mmlab_env(new_tag(), MMLAB_LOCK_FILE=str(lock)), preexec_fn=lambda: os.umask(0))
    assert r.returncode == 0, r.stderr
    old = os.umask(0)
    try:
        api_dir = store.save({"x": pd.DataFrame({"a": [1]})}, {"x": {}}, {"host_tag": "t"})
    finally:
        os.umask(old)
    cli_dir = next(d for d in store.run_dirs(isolated_store) if d != api_dir)
    for run_dir in (cli_dir, api_dir):
        modes = _modes(run_dir)
        assert modes.pop(".") == 0o755, modes
        assert modes and set(modes.values()) == {0o644}, modes
    assert stat.S_IMODE(lock.stat().st_mode) == 0o644


def test_machine_lock_refuses_a_planted_symlink(tmp_path, monkeypatch):
    """A lock path planted as a symlink (say to a file root must not touch) is refused, never followed:
    the target keeps its content and mode."""
    target = tmp_path / "precious"
    target.write_text("keep")
    target.chmod(0o600)
    link = tmp_path / "mmlab-real.lock"
    link.symlink_to(target)
    monkeypatch.setenv("MMLAB_LOCK_FILE", str(link))
    with pytest.raises(machine_lock.MachineBusy, match="symbolic link"):
        machine_lock.acquire(wait_s=0, quiet=True)
    assert target.read_text() == "keep" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not machine_lock.held()
