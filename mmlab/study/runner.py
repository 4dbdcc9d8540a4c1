"""`mmlab run`: execute the notebooks with papermill and publish them as a static HTML site.

Each notebook runs in its own kernel (so an experiment gone wrong cannot take the runner down), gets
only the `-p` parameters it declares (papermill's own inspection); when all have run, `publish`
turns them into a site for readers. A failing notebook is reported by name and failing cell; the others
still run; the exit code says whether all passed. Notebooks run one at a time: real experiments would
disturb each other's timings.

Every value is checked before anything runs: against the type papermill infers from the notebook's
parameters cell and, where the notebook names one (`# mmlab: validate=experiment:NAME`,
`scenario:NAME` or `module:Class` in that cell), against the package's parameter class. The summary
(`00-*`) is listed first but runs last, so it summarises the data this report just stored. The
terminal gets one line per notebook; kernels talk over IPC sockets, not TCP.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmlab.core import paths
from mmlab.core.errors import CliError
from mmlab.core.params import ParamError, Params, Spec, coerce

SUMMARY_PREFIX = "00-"

# nbconvert's lab template without anything fetched from a CDN; widget views become a note.
@dataclass
class NotebookResult:
    name: str
    ok: bool
    wall_s: float
    html: str | None
    error: str | None = None
    parameters: dict = field(default_factory=dict)


def discover(names: Sequence[str] = ()) -> list[Path]:
    """Notebooks to run: the named ones (name, stem or path), else every `NN-*.ipynb` in notebooks/, in order."""
    available = sorted(paths.NOTEBOOKS_DIR.glob("[0-9][0-9]-*.ipynb"))
    if not names:
        return available
    out = []
    for n in names:
        p = Path(n)
        if p.suffix == ".ipynb" and p.exists():
            out.append(p.resolve())
            continue
        match = [a for a in sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb")) if a.stem == n or a.name == n or a.stem.startswith(n)]
        if not match:
            raise CliError(f"notebook {n!r} not found; available: {', '.join(a.stem for a in available)}")
        out.append(match[0])
    return out


def declared_parameters(nb: Path) -> dict[str, dict]:
    import papermill

    return papermill.inspect_notebook(str(nb))


_VALIDATE_RE = re.compile(r"#\s*mmlab:\s*validate\s*=\s*(.+)$", re.M)
_USES_RE = (re.compile(r"""experiments\.get\(\s*["']([\w-]+)["']"""), re.compile(r"""mmlab\.experiment\(\s*["']([\w-]+)["']"""))
_SIM_RE = re.compile(r"""SCENARIOS\[\s*["']([\w-]+)["']\s*\]""")


def _params_class(ref: str) -> type[Params]:
    """`experiment:NAME`, `scenario:NAME` or `package.module:Class` -> the Params class it names."""
    import importlib

    kind, _, name = ref.strip().partition(":")
    if kind == "experiment":
        from mmlab import experiments

        return experiments.get(name).Params
    if kind == "scenario":
        from mmlab import sim

        return sim.SCENARIOS[name].Params
    return getattr(importlib.import_module(kind), name)


def validators(nb: Path) -> list[type[Params]]:
    """The parameter classes that check a notebook's values: those its parameters cell names
    (`# mmlab: validate=experiment:NAME, scenario:NAME, module:Class`), else the experiments and
    scenarios its code builds parameters for."""
    import nbformat

    book = nbformat.read(nb, as_version=4)
    code = [c.source for c in book.cells if c.cell_type == "code"]
    pcell = next((c.source for c in book.cells if "parameters" in c.metadata.get("tags", [])), "")
    refs = [r for m in _VALIDATE_RE.findall(pcell) for r in re.split(r"[,\s]+", m) if r]
    if not refs:
        text = "\n".join(code)
        refs = [f"experiment:{n}" for rx in _USES_RE for n in rx.findall(text)] + [f"scenario:{n}" for n in _SIM_RE.findall(text)]
    out = []
    for r in dict.fromkeys(refs):
        try:
            out.append(_params_class(r))
        except (ImportError, AttributeError, KeyError, ParamError):
            continue  # a module not (yet) present: type checks still apply
    return out


_TYPES = {"int": Spec("integer", "a whole number"), "float": Spec("real", "a number"), "bool": Spec("flag", "true or false")}


def typed(name: str, declared_type: str, value: object) -> object:
    """The value as the notebook declares it (`repeats: int = 3` gets 3, not "3"); ParamError if it
    cannot be. A list for a `str` parameter becomes comma-separated text (YAML lists of sizes)."""
    if declared_type in _TYPES:
        return coerce(name, _TYPES[declared_type], value)
    if declared_type == "str":
        if isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        return str(value)
    return value


def _cell_default(name: str, info: Mapping[str, object]) -> object:
    """A parameter's default as its parameters cell writes it (papermill gives the source text)."""
    import ast

    try:
        return ast.literal_eval(str(info.get("default")))
    except (ValueError, SyntaxError):
        return None


def validate(notebooks: Sequence[Path], declared: Mapping[Path, dict], parameters: Mapping[str, object]) -> dict[Path, dict]:
    """Each notebook's own parameters, typed and checked, before anything runs: an unknown name, a
    value of the wrong type, outside its parameter class's range, or failing the class's cross-field
    checks (built as the notebook builds it: the cell's defaults with these values on top) is a
    CliError naming the notebook."""
    unknown = [k for k in parameters if not any(k in d for d in declared.values())]
    if unknown:
        known = sorted({k for d in declared.values() for k in d})
        raise CliError(f"parameter {unknown[0]} is declared by none of the notebooks; known: {', '.join(known)}")
    out = {}
    for nb in notebooks:
        own = {}
        try:
            classes = validators(nb) if any(k in declared[nb] for k in parameters) else []
            for k, v in parameters.items():
                if k in declared[nb]:
                    spec = next((c.specs()[k] for c in classes if k in c.specs()), None)
                    if spec is not None:
                        coerce(k, spec, v)  # a bad value is named with the class's range, not just its type
                    own[k] = typed(k, declared[nb][k].get("inferred_type_name", "None"), v)
            for cls in classes:
                specs = cls.specs()
                if not any(k in specs for k in own):
                    continue
                values = {k: _cell_default(k, info) for k, info in declared[nb].items() if k in specs}
                values = {k: v for k, v in values.items() if v is not None}
                cls.from_mapping({**values, **{k: v for k, v in own.items() if k in specs}})
        except ParamError as e:
            raise CliError(f"{e} (notebook {nb.stem})") from None
        out[nb] = own
    return out


def kernel_name(nb: Path) -> str:
    """The Jupyter kernel a notebook asks for (its kernelspec metadata)."""
    import nbformat

    return nbformat.read(nb, as_version=4).metadata.get("kernelspec", {}).get("name", "python3")


def check_kernels(notebooks: Sequence[Path]) -> None:
    """Every kernel the notebooks ask for is installed here; else one line saying how to get it."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    ksm = KernelSpecManager()
    for name in dict.fromkeys(kernel_name(nb) for nb in notebooks):
        try:
            ksm.get_kernel_spec(name)
        except NoSuchKernel:
            have = ", ".join(sorted(ksm.find_kernel_specs())) or "none"
            raise CliError(f"the notebooks ask for the Jupyter kernel {name!r}, which is not installed here "
                           f"(installed: {have}); install ipykernel in this environment: "
                           f"{sys.executable} -m pip install ipykernel") from None


def kernel_environment() -> None:
    """What notebook kernels inherit: the runs and reports folders as absolute paths (a kernel starts in
    the notebooks folder, which may be inside a wheel), and, when HOME is not writable (an ordinary user
    under a root's environment), private Jupyter, IPython and Matplotlib folders instead of HOME's."""
    import os
    import tempfile

    os.environ["MMLAB_RUNS_DIR"] = str(paths.runs_dir())
    os.environ["MMLAB_REPORTS_DIR"] = str(paths.reports_dir())
    if not os.access(Path.home(), os.W_OK):
        base = Path(tempfile.mkdtemp(prefix="mmlab-home-"))
        for var, sub in (("JUPYTER_RUNTIME_DIR", "jupyter-runtime"), ("IPYTHONDIR", "ipython"),
                         ("MPLCONFIGDIR", "matplotlib"), ("JUPYTER_CONFIG_DIR", "jupyter-config")):
            os.environ.setdefault(var, str(base / sub))


def execution_order(notebooks: Sequence[Path]) -> list[Path]:
    """The run order: the summary (`00-*`) last, after the notebooks whose data it summarises."""
    return sorted(notebooks, key=lambda nb: nb.name.startswith(SUMMARY_PREFIX))


def _failing_cell(exc: Exception) -> str:
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    cell = getattr(exc, "exec_count", None)
    where = f"cell {cell}" if cell is not None else "a cell"
    return f"{where} raised {ename}: {evalue}".strip()


def _kernel_config(ipc_dir: Path):
    """Kernels on IPC sockets in a private folder: no TCP port is opened for the kernel (so it has no
    cause to warn about unencrypted TCP on every notebook) and nothing is left behind. The kernel's
    own log stays quiet below CRITICAL: jupyter_client interrupts every kernel it shuts down, which
    the kernel logs as an error; a notebook's real errors reach the runner through its cells.
    nbclient still makes, owns and shuts down the kernel manager."""
    from traitlets.config import Config

    return Config({"KernelManager": {"transport": "ipc", "ip": str(ipc_dir / "kernel")},
                   "NotebookClient": {"extra_arguments": ["--IPKernelApp.log_level=CRITICAL"]}})


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """File descriptor 2 goes to `path` for the block, and so does the stderr of the kernel started in it:
    a kernel shutting down can log from its own ZMQ callbacks ("ERROR:tornado.general: Uncaught exception
    in ZMQStream callback" was seen once on a loaded host) straight onto the terminal, in the middle of the
    progress line. A notebook's real errors reach the runner through its cells, not through that stream."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "wb") as f:
            os.dup2(f.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def execute(nb: Path, out_dir: Path, parameters: Mapping[str, object], progress: bool = False) -> NotebookResult:
    """Run one notebook with papermill into `out_dir`; its failure is recorded by failing cell."""
    import tempfile

    import papermill

    out_nb = out_dir / nb.name
    t0 = time.monotonic()
    error = None
    with tempfile.TemporaryDirectory(prefix="mmlab-kernel-") as tmp:
        ipc = Path(tmp)
        log = ipc / "kernel-stderr.log"
        try:
            with _stderr_to(log):
                papermill.execute_notebook(str(nb), str(out_nb), parameters=dict(parameters), cwd=str(paths.NOTEBOOKS_DIR),
                                           kernel_name=kernel_name(nb), progress_bar=progress, log_output=False,
                                           request_save_on_cell_execute=False, config=_kernel_config(ipc))
        except Exception as e:  # any notebook failure is reported by name, the rest still run
            error = _failing_cell(e)
            said = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.exists() else []
            if said:  # a kernel that died says why here (the cells cannot)
                error += f" (kernel's last words: {said[-1].strip()[:200]})"
    wall = time.monotonic() - t0
    return NotebookResult(nb.stem, error is None, wall, nb.stem + ".html" if out_nb.exists() else None, error,
                          dict(parameters))


def _run_dirs() -> set[Path]:
    d = paths.runs_dir()
    return {p for p in d.iterdir() if p.is_dir()} if d.is_dir() else set()


def sources() -> list[Path]:
    """The background documents the notebooks cite (kernel history, measuring notes), as shipped with
    mmlab in `data/sources/`, so that a report from a wheel or any clone links them."""
    return sorted(paths.SOURCES_DIR.glob("*.md"))


@contextlib.contextmanager
def _collection(run_id: str) -> Iterator[None]:
    """Every run the notebooks store meanwhile belongs to this report's collection (store.COLLECTION_ENV),
    so the model check can price each collection at its own calibration runs."""
    from mmlab.core.store import COLLECTION_ENV

    before = os.environ.get(COLLECTION_ENV)
    os.environ[COLLECTION_ENV] = run_id
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(COLLECTION_ENV, None)
        else:
            os.environ[COLLECTION_ENV] = before


def main(names: Sequence[str], parameters: Mapping[str, object], show_code: bool = False,
         run_id: str | None = None) -> int:
    from mmlab.core.store import new_run_id
    from mmlab.study import publish, reader_view, report, site_index

    kernel_environment()
    notebooks = discover(names)
    if not notebooks:
        raise CliError(f"no notebooks found in {paths.NOTEBOOKS_DIR}")
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    own = validate(notebooks, declared, parameters)
    check_kernels(notebooks)
    run_id = run_id or new_run_id()
    out_dir = paths.reports_dir() / run_id
    out_dir.mkdir(parents=True, exist_ok=False)
    order = execution_order(notebooks)
    done: dict[Path, NotebookResult] = {}
    made: dict[str, list[Path]] = {}
    t0 = time.monotonic()
    with _collection(run_id):
        for i, nb in enumerate(order, 1):
            # one line per notebook: its place, name, then (when it ends) its result and wall time
            print(f"mmlab run [{i}/{len(order)}] {nb.stem}", end="", file=sys.stderr, flush=True)
            before = _run_dirs()
            try:
                r = execute(nb, out_dir, own[nb])
            except BaseException:
                print(file=sys.stderr, flush=True)  # end the progress line: the interrupt message gets its own
                raise
            made[nb.stem] = sorted(_run_dirs() - before)
            print(f" {'ok' if r.ok else 'FAILED: ' + (r.error or '')} ({r.wall_s:.1f}s, {time.monotonic() - t0:.0f}s in all)",
                  file=sys.stderr, flush=True)
            done[nb] = r
    results = [done[nb] for nb in notebooks]
    wall = time.monotonic() - t0
    executed = [(nb.stem, out_dir / nb.name if (out_dir / nb.name).exists() else None) for nb in notebooks]
    status = [(r.name, r.ok, r.error or "", r.wall_s) for r in results]
    environment = report.environment()
    site = publish.build(out_dir, executed, made, environment, show_code, sources())
    index = site_index.write_index(out_dir, run_id, site.pages, status, environment, parameters, site.summary,
                                   site.sources, wall, site.private)
    facts = json.dumps({"run_id": run_id, "parameters": {k: str(v) for k, v in parameters.items()}, "show_code": show_code,
                        "wall_s": wall, "notebooks": [r.__dict__ for r in results]}, indent=1, default=str)
    (out_dir / "run.json").write_text(reader_view.scrub(facts, reader_view.private_strings(environment, [out_dir])))
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"mmlab run: notebook {r.name} failed: {r.error}", file=sys.stderr)
    size = publish.site_bytes(out_dir)
    print(f"mmlab run: site {size / 1e6:.1f} MB in {out_dir.name}/", file=sys.stderr)
    print(f"HTML index: {index}")
    return 1 if failed else 0
