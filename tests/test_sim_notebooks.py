"""Notebooks 06 and 07 run under papermill at small parameters and draw figures (07 with an empty store)."""
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.notebook


def _run(tmp_path, name, parameters):
    import papermill

    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / name), str(out), parameters=parameters, kernel_name="python3",
                               progress_bar=False, cwd=str(tmp_path))
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    return outputs, [o for o in outputs if "image/png" in o.get("data", {})]


def test_06_draws_the_sweeps_and_the_oom_timelines(tmp_path):
    """06 at a small sweep draws its figures, the explorer's static default included."""
    _, images = _run(tmp_path, "06-simulated-before-after.ipynb",
                     {"vma_sizes": "256MiB,1GiB", "populated_fractions": "0,0.5,1", "oom_vma_bytes": "7GiB"})
    assert len(images) >= 4


def test_07_says_so_when_there_are_no_real_rows(tmp_path):
    """With an empty store 07 still runs to the end, says there is nothing to compare, and draws the 2009 check."""
    outputs, images = _run(tmp_path, "07-model-validation.ipynb", {"desktop_free_bytes": "1GiB"})
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "nothing to compare" in text and images
