"""Packaging: pyproject.toml is the one source of dependencies (environment.yml mirrors it), and a wheel
carries what mmlab reads at run time and runs from any folder."""
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r.replace(" ", "") for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted.update({_name(r): r.replace(" ", "") for r in extra})
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d): d.replace(" ", "") for d in env["dependencies"] if isinstance(d, str)}
    conda.pop("python", None)
    conda.pop("pip", None)
    assert conda == wanted


def test_notebooks_are_committed_without_outputs_and_with_a_parameters_cell():
    import nbformat

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs"
        assert any("parameters" in c.metadata.get("tags", []) for c in code), f"{path.name} has no parameters cell"


def _tracked_files() -> list[str]:
    import subprocess

    return subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True).stdout.split()


def _build_wheel(tmp_path: Path) -> Path:
    """A wheel built from a copy of the tracked files (what a clone or an sdist holds; no build folder in
    the source tree)."""
    import shutil
    import subprocess
    import sys

    import pytest

    files = _tracked_files()
    if not files:
        pytest.skip("not a git checkout")
    src = tmp_path / "src"
    for f in files:
        if (ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "wheel"), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return next((tmp_path / "wheel").glob("mmlab-*.whl"))


def test_the_shipped_sources_are_the_shared_documents_when_those_are_beside_the_project():
    """data/sources/ holds copies of the background documents the notebooks cite; where the shared
    originals sit beside the project, the copies must not have drifted from them."""
    shipped = {p.name: p.read_bytes() for p in (ROOT / "data" / "sources").glob("*.md")}
    assert set(shipped) == {"kernel-history.md", "MEASURING.md"}
    shared = next((d for d in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if d.is_dir()), None)
    if shared is None:
        pytest.skip("no shared/ folder beside the project: nothing to compare the shipped copies with")
    for name, text in shipped.items():
        assert (shared / name).read_bytes() == text, f"data/sources/{name} differs from {shared / name}"


def test_a_wheel_carries_what_mmlab_reads_at_run_time(tmp_path):
    """A wheel (not an editable install) holds the notebooks, the reference profile and dataset and the C
    reference program inside the package, where mmlab.core.paths looks when no source tree is beside it."""
    import zipfile

    names = set(zipfile.ZipFile(_build_wheel(tmp_path)).namelist())
    res = "mmlab/_resources/"
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        assert res + "notebooks/" + nb.name in names
    assert res + "data/reference/profile-reference.json" in names
    assert res + "benchmarks/mlock_ref.c" in names
    assert {res + "data/sources/kernel-history.md", res + "data/sources/MEASURING.md"} <= names
    reference_runs = [f for f in _tracked_files() if f.startswith("data/reference/runs/")]
    assert reference_runs and all(res + f in names for f in reference_runs)
    assert not any(n.startswith(("data/", "notebooks/")) for n in names)


def test_an_installed_wheel_runs_from_any_folder_and_writes_only_there(tmp_path):
    """mmlab installed from its wheel (not the source tree) simulates and runs notebook 06 from an empty
    folder: the report lands under that folder, nothing is written inside the installed package."""
    import os
    import subprocess
    import sys

    wheel = _build_wheel(tmp_path)
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    before = sorted(p for p in site.rglob("*") if "__pycache__" not in p.parts)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMLAB_")}
    env.update(PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run([sys.executable, "-c", "import mmlab, sys; print(mmlab.__file__)"], cwd=work, env=env,
                       capture_output=True, text=True)
    assert r.stdout.startswith(str(site)), r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "mmlab", "run", "06-simulated-before-after"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    index = r.stdout.strip().splitlines()[-1].removeprefix("HTML index: ")
    assert index.startswith(str(work / "reports")) and os.path.isfile(index)
    # the cited background documents travel with the report, wherever mmlab was installed from
    assert os.path.isfile(os.path.join(os.path.dirname(index), "sources", "kernel-history.md"))
    assert sorted(p for p in site.rglob("*") if "__pycache__" not in p.parts) == before
