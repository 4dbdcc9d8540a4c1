"""`mmlab run`: execute the notebooks with papermill and publish them as a static HTML site.

Each notebook runs in its own kernel (so an experiment gone wrong cannot take the runner down), gets
only the `-p` parameters it declares (papermill's own inspection), and is converted to HTML by
nbconvert with its plots embedded. A failing notebook is reported by name and failing cell; the others
still run; the exit code says whether all passed. Notebooks run one at a time: real experiments would
disturb each other's timings.
"""
from __future__ import annotations

import html
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from . import paths
from .cli import CliError


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


def _failing_cell(exc: Exception) -> str:
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    cell = getattr(exc, "exec_count", None)
    where = f"cell {cell}" if cell is not None else "a cell"
    return f"{where} raised {ename}: {evalue}".strip()


def execute(nb: Path, out_dir: Path, parameters: Mapping[str, object], hide_code: bool) -> NotebookResult:
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    out_nb = out_dir / nb.name
    t0 = time.monotonic()
    error = None
    try:
        papermill.execute_notebook(str(nb), str(out_nb), parameters=dict(parameters), cwd=str(paths.NOTEBOOKS_DIR),
                                   kernel_name="python3", progress_bar=False, log_output=False,
                                   request_save_on_cell_execute=False)
    except Exception as e:  # noqa: BLE001 - any notebook failure is reported by name, the rest still run
        error = _failing_cell(e)
    wall = time.monotonic() - t0
    html_name = None
    if out_nb.exists():
        exporter = HTMLExporter(exclude_input=hide_code, exclude_input_prompt=hide_code, exclude_output_prompt=hide_code)
        body, _ = exporter.from_notebook_node(nbformat.read(out_nb, as_version=4))
        html_name = nb.stem + ".html"
        (out_dir / html_name).write_text(body)
    return NotebookResult(nb.stem, error is None, wall, html_name, error, dict(parameters))


def _env_rows() -> list[tuple[str, str]]:
    from . import env

    return env.table(env.capture())


def write_index(out_dir: Path, run_id: str, results: list[NotebookResult], env_rows: list[tuple[str, str]],
                parameters: Mapping[str, object]) -> Path:
    """A landing page: every notebook with its status and wall time, the parameters and the environment."""
    esc = html.escape
    rows = []
    for r in results:
        link = f'<a href="{esc(r.html)}">{esc(r.name)}</a>' if r.html else esc(r.name)
        status = "ok" if r.ok else f"FAILED: {esc(r.error or '')}"
        rows.append(f"<tr><td>{link}</td><td class=\"{'ok' if r.ok else 'fail'}\">{status}</td>"
                    f"<td>{r.wall_s:.1f}</td></tr>")
    env_html = "\n".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in env_rows)
    params_html = "\n".join(f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in parameters.items()) \
        or "<tr><td>defaults of each notebook</td></tr>"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mmlab report {esc(run_id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }} th, td {{ text-align: left; padding: .25em .8em; border-bottom: 1px solid #ddd; vertical-align: top; }}
td.ok {{ color: #1a7f37; }} td.fail {{ color: #b42318; }} th {{ font-weight: 600; }}
</style></head><body>
<h1>mmlab report</h1>
<p>Run <code>{esc(run_id)}</code>. Real figures are measured on this machine's kernel; replayed figures re-do
the pre-patch kernel's work on it; simulated figures come from the kernel models. Each notebook says which is which.</p>
<h2>Notebooks</h2>
<table><tr><th>notebook</th><th>status</th><th>wall time (s)</th></tr>
{chr(10).join(rows)}
</table>
<h2>Parameters</h2>
<table>{params_html}</table>
<h2>Environment</h2>
<table>{env_html}</table>
</body></html>
"""
    index = out_dir / "index.html"
    index.write_text(page)
    (out_dir / "run.json").write_text(json.dumps({
        "run_id": run_id, "parameters": {k: str(v) for k, v in parameters.items()},
        "notebooks": [r.__dict__ for r in results]}, indent=1))
    return index


def main(names: Sequence[str], parameters: Mapping[str, object], hide_code: bool = False,
         run_id: str | None = None) -> int:
    from tqdm import tqdm

    from .store import new_run_id

    notebooks = discover(names)
    if not notebooks:
        raise CliError(f"no notebooks found in {paths.NOTEBOOKS_DIR}")
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    unknown = [k for k in parameters if not any(k in d for d in declared.values())]
    if unknown:
        known = sorted({k for d in declared.values() for k in d})
        raise CliError(f"parameter {unknown[0]} is declared by none of the notebooks; known: {', '.join(known)}")
    run_id = run_id or new_run_id()
    out_dir = paths.reports_dir() / run_id
    out_dir.mkdir(parents=True, exist_ok=False)
    results = []
    bar = tqdm(notebooks, desc="notebooks", unit="nb", file=sys.stderr, disable=not sys.stderr.isatty())
    for nb in bar:
        bar.set_postfix_str(nb.stem)
        own = {k: v for k, v in parameters.items() if k in declared[nb]}
        print(f"mmlab run: {nb.stem} ...", file=sys.stderr, flush=True)
        r = execute(nb, out_dir, own, hide_code)
        print(f"mmlab run: {nb.stem} {'ok' if r.ok else 'FAILED: ' + (r.error or '')} ({r.wall_s:.1f}s)",
              file=sys.stderr, flush=True)
        results.append(r)
    index = write_index(out_dir, run_id, results, _env_rows(), parameters)
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"mmlab run: notebook {r.name} failed: {r.error}", file=sys.stderr)
    print(f"HTML index: {index}")
    return 1 if failed else 0
