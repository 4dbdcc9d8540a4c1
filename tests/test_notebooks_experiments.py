"""The 2009-scenario notebooks execute under papermill at tiny parameters, draw their figure and state
their findings from the data."""
from pathlib import Path

import nbformat
import pytest

from .conftest import needs_root

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.notebook, needs_root]

TINY = {
    "02-sigkill-during-mlock": ({"vma_bytes": "64MiB,2GiB", "populated_bytes": "8MiB", "repeats": 2, "warmup": 0},
                                # the verdict, either way: at 8 MiB noise may decide it; the physics
                                # itself is asserted at 128 MiB in test_exp_sigkill.py
                                "populated pages"),
    "03-munlock-partial": ({"vma_bytes": "8MiB,32MiB", "populated_fractions": "0,0.5", "repeats": 2, "warmup": 0},
                           "per populated page"),
    "04-oom-kill": ({"limit_bytes": "64MiB", "lock_bytes": "128MiB", "bystanders": 1, "bystander_bytes": "4MiB",
                     "repeats": 2, "warmup": 0}, "bystanders survive"),
    "05-prepatch-replay": ({"vma_bytes": "8MiB,16MiB", "repeats": 2, "warmup": 0}, "replayed pre-patch exit"),
    "08-file-mappings": ({"size_bytes": "1MiB", "repeats": 1, "warmup": 0, "sim_vma_bytes": "64MiB",
                          "sim_populated_bytes": "16MiB"}, "became anonymous copies (COW)"),
}


def outputs(nb, key):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if key in o.get("data", {})]


@pytest.mark.parametrize("name", list(TINY))
def test_notebook_runs_draws_and_states_findings_from_the_data(name, tmp_path):
    import papermill

    params, phrase = TINY[name]
    out = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(out), parameters=params,
                               kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    nb = nbformat.read(out, as_version=4)
    assert outputs(nb, "image/png"), "the notebook drew no figure"
    said = " ".join(o["data"]["text/markdown"] for o in outputs(nb, "text/markdown"))
    assert phrase in said


@pytest.mark.parametrize("name", list(TINY))
def test_parameters_cell_is_tagged_and_every_parameter_documented(name):
    """papermill finds the tagged parameters cell and each parameter has a type and a help comment."""
    import papermill

    declared = papermill.inspect_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"))
    assert set(TINY[name][0]) <= set(declared)
    assert all(p["inferred_type_name"] != "None" and p["help"] for p in declared.values())
