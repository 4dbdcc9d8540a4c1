"""The package's layers, read from the source with `ast`: imports only go down, with no cycles.

Every `import` and `from ... import` counts, including those inside functions (a lazy import is still a
dependency). The layer order is stated here, lowest first; a module may import its own layer (without
cycles) or any layer below, never one above and never a sibling at the same rank:

    core  <  kernel  <  experiments, sim  <  study  <  cli (and __main__)

The package root `mmlab/__init__.py` is the public facade (`load`, `experiment`, `summary`): it sits
above every layer and may import any of them, lazily, so importing `mmlab` stays cheap for the child
processes. No module imports the root, and only the command line's own entry (`__main__`) imports cli.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mmlab"

# rank of each layer; two different layers of equal rank must not import each other
LAYERS: dict[str, int] = {
    "mmlab.core": 0,
    "mmlab.kernel": 1,
    "mmlab.experiments": 2,
    "mmlab.sim": 2,
    "mmlab.study": 3,
    "mmlab.cli": 4,
    "mmlab": 5,  # the facade
}
SAME_LAYER = {"mmlab.__main__": "mmlab.cli"}  # `python -m mmlab` is the command line
CLI_IMPORTERS = {"mmlab.__main__"}


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = ("mmlab",) + f.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


MODULES = _modules()


def _resolve(name: str) -> str:
    """The mmlab module a dotted name refers to: itself if it is a module, else its longest module prefix
    (`from mmlab.core.params import ParamError` depends on mmlab.core.params)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports(module: str) -> set[str]:
    """The mmlab modules that `module` imports anywhere in its source."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from mmlab import experiments` imports the submodule; `from mmlab import __version__` the root
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found |= {_resolve(n) for n in names if n == "mmlab" or n.startswith("mmlab.")}
    return found - {module}


def layer(module: str) -> str:
    module = SAME_LAYER.get(module, module)
    return max((k for k in LAYERS if module == k or module.startswith(k + ".")), key=len)


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_is_in_a_layer():
    """Each module of the package belongs to one named layer (a new top-level module needs a rank)."""
    assert {m for m in MODULES if layer(m) == "mmlab" and m != "mmlab"} == set()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down(module):
    """A module imports only its own layer or layers of lower rank."""
    mine = layer(module)
    up = sorted(d for d in GRAPH[module] if layer(d) != mine and LAYERS[layer(d)] >= LAYERS[mine])
    assert up == [], f"{module} ({mine}) imports from its own rank or above: {up}"


def test_only_the_entry_point_imports_cli():
    """The library never depends on its command line."""
    assert sorted(m for m, deps in GRAPH.items() if "mmlab.cli" in deps and m not in CLI_IMPORTERS) == []


def test_nothing_imports_the_facade():
    """The root package is the public face on top; modules inside import the layer that holds the code."""
    assert sorted(m for m, deps in GRAPH.items() if "mmlab" in deps) == []


def test_no_import_cycles():
    """The module graph, counting imports inside functions, has no cycle."""
    state: dict[str, int] = {}
    cycles = []

    def visit(m, stack):
        state[m] = 1
        for d in sorted(GRAPH[m]):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_the_reader_sees_imports_inside_functions():
    """The graph holds lazy imports: cli reaches the study's runner only inside a function."""
    assert "mmlab.study.runner" in GRAPH["mmlab.cli"]


CHILD_MODULES = sorted({m.group(1) for f in (PACKAGE / "experiments").glob("*.py")
                        for m in re.finditer(r'"(mmlab\.experiments\.\w+):\w+"', f.read_text())})


@pytest.mark.parametrize("module", CHILD_MODULES)
def test_an_experiments_child_loads_neither_numpy_nor_pandas(module):
    """A child's own start and teardown are inside what the experiments time (an exit's fixed cost, a
    probe's moment): a child that loaded pandas took 6 ms to exit instead of 1, and 0.7 s to start instead
    of 0.15. Importing the module a child runs (as `python -m mmlab.kernel.child` does) loads neither."""
    code = f"import sys, mmlab.kernel.child, {module}; print(sorted({{'numpy', 'pandas'}} & set(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", f"{module} loads {r.stdout.strip()} in the child"
