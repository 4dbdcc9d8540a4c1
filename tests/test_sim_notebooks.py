"""Notebooks 06, 07 and 08 run under papermill at small parameters and draw figures (07 with an empty store,
08 without a real run)."""
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


def test_08_without_a_real_run_simulates_every_era_from_the_reference_costs(tmp_path):
    """08 with run_real false says it did not measure and still draws the era comparisons (two mappings,
    complete and interrupted mlock) from the shipped per-page costs."""
    outputs, images = _run(tmp_path, "08-file-mappings.ipynb", {"run_real": False, "sim_vma_bytes": "64MiB",
                                                                 "sim_populated_bytes": "16MiB"})
    said = " ".join(o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {}))
    assert "Not run here" in said and len(images) == 4
