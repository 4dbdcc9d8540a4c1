"""Notebooks execute under papermill at small parameters; the runner publishes and reports failures."""
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.notebook


def test_mlock_throughput_notebook_runs_with_papermill(tmp_path):
    import papermill

    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks/01-mlock-throughput.ipynb"), str(out),
                               parameters={"sizes": "1MiB,2MiB", "repeats": 2, "warmup": 0}, kernel_name="python3",
                               progress_bar=False, cwd=str(tmp_path))
    nb = nbformat.read(out, as_version=4)
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the notebook drew no figure"


def test_mmlab_run_publishes_html_and_an_index(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mmlab", "run", "01", "-p", "sizes", "1MiB", "-p", "repeats", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    index = Path(r.stdout.strip().splitlines()[-1].removeprefix("HTML index: "))
    assert index.exists()
    html = (index.parent / "01-mlock-throughput.html").read_text()
    assert "data:image/png;base64" in html or "image/png" in html
    assert "01-mlock-throughput.html" in index.read_text()


def test_a_failing_notebook_is_named_with_its_cell_and_the_others_still_run(tmp_path):
    bad = nbformat.v4.new_notebook()
    bad.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    bad.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                 nbformat.v4.new_code_cell("raise ValueError('broken on purpose')")]
    good = nbformat.v4.new_notebook()
    good.metadata = bad.metadata
    good.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell("x + 1")]
    nbformat.write(bad, tmp_path / "98-bad.ipynb")
    nbformat.write(good, tmp_path / "99-good.ipynb")
    r = subprocess.run([sys.executable, "-m", "mmlab", "run", str(tmp_path / "98-bad.ipynb"), str(tmp_path / "99-good.ipynb")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert "98-bad failed" in r.stderr and "ValueError" in r.stderr and "broken on purpose" in r.stderr
    assert "99-good ok" in r.stderr


def test_unknown_run_parameter_is_refused_before_anything_runs():
    r = subprocess.run([sys.executable, "-m", "mmlab", "run", "01", "-p", "no_such_param", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no_such_param" in r.stderr
