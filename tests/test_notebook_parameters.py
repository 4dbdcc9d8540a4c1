"""Notebook parameters: each is declared once, in its parameter class (default, range, meaning); the
notebook's parameters cell repeats it typed and commented, and these tests keep the two in step."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from mmlab.core import paths
from mmlab.core.errors import CliError
from mmlab.core.params import coerce
from mmlab.study import runner

NOTEBOOKS = sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb"))
KINDS = {"str": {"size", "sizes", "reals", "integers", "choice", "choices", "text"}, "int": {"integer"},
         "float": {"real", "seconds"}, "bool": {"flag"}}


def _declared(nb: Path) -> dict:
    return runner.declared_parameters(nb)


def _spec(nb: Path, name: str):
    for cls in runner.validators(nb):
        if name in cls.specs():
            return cls, cls.specs()[name]
    return None, None


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_is_typed_and_commented(nb):
    """papermill --help-notebook shows a type and a comment for every parameter."""
    for name, info in _declared(nb).items():
        assert info["inferred_type_name"] in KINDS, f"{nb.stem}: {name} has no type"
        assert info["help"].strip(), f"{nb.stem}: {name} has no comment"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_has_its_class_and_the_class_default(nb):
    """Each parameter belongs to the parameter class that checks the notebook, with a type that holds the
    class's kind and the class's default as its value."""
    for name, info in _declared(nb).items():
        cls, spec = _spec(nb, name)
        assert spec is not None, f"{nb.stem}: {name} is in no parameter class"
        assert spec.kind in KINDS[info["inferred_type_name"]], f"{nb.stem}: {name} is {info['inferred_type_name']}, class says {spec.kind}"
        cell = coerce(name, spec, ast.literal_eval(info["default"]))
        default = cls.__dataclass_fields__[name].default
        assert cell == default, f"{nb.stem}: {name} = {cell!r} in the cell, {default!r} in {cls.__name__}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_bad_number_is_refused_before_anything_runs(nb):
    """`-p NAME bogus` and `-p NAME -5` for every numeric parameter are refused by the pre-run check."""
    declared = _declared(nb)
    for name, info in declared.items():
        _, spec = _spec(nb, name)
        if info["inferred_type_name"] in ("int", "float") or spec.kind in ("size", "sizes", "reals", "integers"):
            for bad in ("bogus", "-5"):
                with pytest.raises(CliError, match=rf"parameter {name}:.*allowed"):
                    runner.validate([nb], {nb: declared}, {name: bad})


def test_the_command_line_refuses_a_bad_value_in_one_line_with_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mmlab", "run", "06", "-p", "oom_bystanders", "-5"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "oom_bystanders" in r.stderr and "from 0 to 64" in r.stderr
    assert not (tmp_path / "reports").exists()


def test_a_missing_kernel_is_one_line_saying_how_to_get_it(tmp_path):
    """A notebook asking for a kernel this environment lacks stops `mmlab run` before anything runs."""
    import json

    nb = json.loads((paths.NOTEBOOKS_DIR / "06-simulated-before-after.ipynb").read_text())
    nb["metadata"]["kernelspec"] = {"name": "no-such-kernel", "display_name": "None", "language": "python"}
    path = tmp_path / "06-x.ipynb"
    path.write_text(json.dumps(nb))
    with pytest.raises(CliError) as e:
        runner.check_kernels([path])
    assert "\n" not in str(e.value) and "no-such-kernel" in str(e.value) and "ipykernel" in str(e.value)
    runner.check_kernels(NOTEBOOKS)  # the project's own notebooks ask for a kernel that is here
