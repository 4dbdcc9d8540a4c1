"""`mmlab run`: execute the notebooks with papermill and publish them as a static HTML site.

Each notebook runs in its own kernel (so an experiment gone wrong cannot take the runner down), gets
only the `-p` parameters it declares (papermill's own inspection), and is converted to HTML by
nbconvert with its plots embedded. A failing notebook is reported by name and failing cell; the others
still run; the exit code says whether all passed. Notebooks run one at a time: real experiments would
disturb each other's timings.

Every value is checked before anything runs: against the type papermill infers from the notebook's
parameters cell and, where the notebook names one (`# mmlab: validate=experiment:NAME`,
`scenario:NAME` or `module:Class` in that cell), against the package's parameter class. The summary
(`00-*`) is listed first but runs last, so it summarises the data this report just stored. The site
works offline: nbconvert's template is stripped of CDN scripts (require.js, MathJax, mermaid, the
widget manager), figures are embedded, links are relative, and a widget shows a note under the
default figure the notebook drew before it, not a dead control.
"""
from __future__ import annotations

import base64
import html
import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmlab.core import paths
from mmlab.core.errors import CliError
from mmlab.core.params import ParamError, Params, Spec, coerce

SUMMARY_PREFIX = "00-"
HEADLINE_TAG = "headline"

# nbconvert's lab template without anything fetched from a CDN; widget views become a note.
OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block html_head_js %}{% endblock html_head_js %}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block html_head_js_mathjax %}{% endblock html_head_js_mathjax %}
{% block html_head_js_mermaidjs %}{% endblock html_head_js_mermaidjs %}
{% block data_widget_view scoped %}<div class="mmlab-widget-note" style="font-size:85%;color:#555;border-left:3px solid #ccc;padding:.2em .6em">Interactive controls: open this notebook in JupyterLab (<code>make lab</code>) to turn the knobs; the figure above is the default view.</div>{% endblock data_widget_view %}
{% block footer %}
</html>
{% endblock footer %}
"""


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


def validate(notebooks: Sequence[Path], declared: Mapping[Path, dict], parameters: Mapping[str, object]) -> dict[Path, dict]:
    """Each notebook's own parameters, typed and checked, before anything runs: an unknown name, a
    value of the wrong type or outside a parameter class's range is a ParamError naming the notebook."""
    unknown = [k for k in parameters if not any(k in d for d in declared.values())]
    if unknown:
        known = sorted({k for d in declared.values() for k in d})
        raise CliError(f"parameter {unknown[0]} is declared by none of the notebooks; known: {', '.join(known)}")
    out = {}
    for nb in notebooks:
        own = {}
        classes = validators(nb) if any(k in declared[nb] for k in parameters) else []
        for k, v in parameters.items():
            if k not in declared[nb]:
                continue
            try:
                own[k] = typed(k, declared[nb][k].get("inferred_type_name", "None"), v)
                for cls in classes:
                    spec = cls.specs().get(k)
                    if spec is not None:
                        coerce(k, spec, own[k])
                        break
            except ParamError as e:
                raise CliError(f"{e} (notebook {nb.stem})") from None
        out[nb] = own
    return out


def execution_order(notebooks: Sequence[Path]) -> list[Path]:
    """The run order: the summary (`00-*`) last, after the notebooks whose data it summarises."""
    return sorted(notebooks, key=lambda nb: nb.name.startswith(SUMMARY_PREFIX))


def _failing_cell(exc: Exception) -> str:
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    cell = getattr(exc, "exec_count", None)
    where = f"cell {cell}" if cell is not None else "a cell"
    return f"{where} raised {ename}: {evalue}".strip()


def exporter(hide_code: bool):
    """nbconvert's HTML exporter with the offline template (no CDN), optionally without code cells."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"mmlab_offline.html.j2": OFFLINE_TEMPLATE})],
                        template_file="mmlab_offline.html.j2", exclude_input=hide_code,
                        exclude_input_prompt=hide_code, exclude_output_prompt=hide_code)


def execute(nb: Path, out_dir: Path, parameters: Mapping[str, object], hide_code: bool,
            progress: bool = False) -> NotebookResult:
    import nbformat
    import papermill

    out_nb = out_dir / nb.name
    t0 = time.monotonic()
    error = None
    try:
        papermill.execute_notebook(str(nb), str(out_nb), parameters=dict(parameters), cwd=str(paths.NOTEBOOKS_DIR),
                                   kernel_name="python3", progress_bar=progress, log_output=False,
                                   request_save_on_cell_execute=False)
    except Exception as e:  # any notebook failure is reported by name, the rest still run
        error = _failing_cell(e)
    wall = time.monotonic() - t0
    html_name = None
    if out_nb.exists():
        body, _ = exporter(hide_code).from_notebook_node(nbformat.read(out_nb, as_version=4))
        html_name = nb.stem + ".html"
        (out_dir / html_name).write_text(body)
    return NotebookResult(nb.stem, error is None, wall, html_name, error, dict(parameters))


def _env_rows() -> list[tuple[str, str]]:
    from mmlab.kernel import env
    from mmlab.study import report

    return env.table(report.environment())


def headline_html(executed: Path, out_dir: Path) -> str:
    """The summary's cells tagged `headline` as HTML for the landing page: generated sentences,
    tables and figures; each figure written to `figures/` and linked relatively (the page stays light
    and the folder works from any static host)."""
    import nbformat
    from nbconvert.filters.markdown import markdown2html

    if not executed.exists():
        return ""
    book = nbformat.read(executed, as_version=4)
    fig_dir = out_dir / "figures"
    parts: list[str] = []
    count = [0]

    def save(b64: str) -> str:
        count[0] += 1
        fig_dir.mkdir(exist_ok=True)
        name = f"summary-{count[0]}.png"
        (fig_dir / name).write_bytes(base64.b64decode(b64))
        return f"figures/{name}"

    for cell in book.cells:
        if cell.cell_type != "code" or HEADLINE_TAG not in cell.metadata.get("tags", []):
            continue
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if "text/html" in data:
                parts.append(re.sub(r'src="data:image/png;base64,([^"]+)"', lambda m: f'src="{save(m.group(1))}"',
                                    data["text/html"]))
            elif "image/png" in data:
                parts.append(f'<img alt="summary figure" style="max-width:100%" src="{save(data["image/png"])}">')
            elif "text/markdown" in data:
                parts.append(markdown2html(data["text/markdown"]))
    return "\n".join(parts)


def write_index(out_dir: Path, run_id: str, results: list[NotebookResult], env_rows: list[tuple[str, str]],
                parameters: Mapping[str, object], headline: str = "", hide_code: bool = False,
                wall_s: float | None = None) -> Path:
    """A landing page: the summary's headline, every notebook with its status and wall time, the
    parameters and the environment; relative links only."""
    esc = html.escape
    rows = []
    for r in results:
        link = f'<a href="{esc(r.html)}">{esc(r.name)}</a>' if r.html else esc(r.name)
        status = "ok" if r.ok else f"FAILED: {esc(r.error or '')}"
        rows.append(f"<tr><td>{link}</td><td class=\"{'ok' if r.ok else 'fail'}\">{status}</td>"
                    f"<td>{r.wall_s:.1f}</td></tr>")
    total = f"<p>Wall time of the whole run: {wall_s:.0f} s.</p>" if wall_s is not None else ""
    env_html = "\n".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in env_rows)
    params_html = "\n".join(f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in parameters.items()) \
        or "<tr><td>defaults of each notebook</td></tr>"
    summary = next((r for r in results if r.name.startswith(SUMMARY_PREFIX) and r.html), None)
    head = ""
    if headline:
        more = f' <a href="{esc(summary.html)}">Read the whole summary.</a>' if summary else ""
        head = f'<h2>Headline</h2>\n<div class="headline">{headline}</div>\n<p>{more}</p>'
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mmlab report {esc(run_id)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 80em; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }} th, td {{ text-align: left; padding: .25em .8em; border-bottom: 1px solid #ddd; vertical-align: top; }}
td.ok {{ color: #1a7f37; }} td.fail {{ color: #b42318; }} th {{ font-weight: 600; }}
.headline table {{ font-size: 85%; }} .headline img {{ max-width: 100%; }}
</style></head><body>
<h1>mmlab report</h1>
<p>Run <code>{esc(run_id)}</code>{" (code cells hidden)" if hide_code else ""}. Real figures are measured on this machine's kernel; replayed figures re-do
the pre-patch kernel's work on it; simulated figures come from the kernel models. Each notebook says which is which.</p>
{head}
<h2>Notebooks</h2>
<table><tr><th>notebook</th><th>status</th><th>wall time (s)</th></tr>
{chr(10).join(rows)}
</table>
{total}
<h2>Parameters</h2>
<table>{params_html}</table>
<h2>Environment</h2>
<table>{env_html}</table>
</body></html>
"""
    index = out_dir / "index.html"
    index.write_text(page)
    (out_dir / "run.json").write_text(json.dumps({
        "run_id": run_id, "parameters": {k: str(v) for k, v in parameters.items()}, "hide_code": hide_code,
        "wall_s": wall_s, "notebooks": [r.__dict__ for r in results]}, indent=1, default=str))
    return index


def main(names: Sequence[str], parameters: Mapping[str, object], hide_code: bool = False,
         run_id: str | None = None) -> int:
    from tqdm import tqdm

    from mmlab.core.store import new_run_id

    notebooks = discover(names)
    if not notebooks:
        raise CliError(f"no notebooks found in {paths.NOTEBOOKS_DIR}")
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    own = validate(notebooks, declared, parameters)
    run_id = run_id or new_run_id()
    out_dir = paths.reports_dir() / run_id
    out_dir.mkdir(parents=True, exist_ok=False)
    order = execution_order(notebooks)
    tty = sys.stderr.isatty()
    done: dict[Path, NotebookResult] = {}
    t0 = time.monotonic()
    bar = tqdm(total=len(order), desc="notebooks", unit="nb", file=sys.stderr, disable=not tty)
    for i, nb in enumerate(order, 1):
        bar.set_postfix_str(nb.stem)
        print(f"mmlab run [{i}/{len(order)}] {nb.stem} ... ({time.monotonic() - t0:.0f}s elapsed)", file=sys.stderr, flush=True)
        r = execute(nb, out_dir, own[nb], hide_code, progress=tty)
        print(f"mmlab run [{i}/{len(order)}] {nb.stem} {'ok' if r.ok else 'FAILED: ' + (r.error or '')} ({r.wall_s:.1f}s)",
              file=sys.stderr, flush=True)
        done[nb] = r
        bar.update()
    bar.close()
    results = [done[nb] for nb in notebooks]
    summary = next((nb for nb in notebooks if nb.name.startswith(SUMMARY_PREFIX)), None)
    headline = headline_html(out_dir / summary.name, out_dir) if summary is not None else ""
    index = write_index(out_dir, run_id, results, _env_rows(), parameters, headline, hide_code, time.monotonic() - t0)
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"mmlab run: notebook {r.name} failed: {r.error}", file=sys.stderr)
    print(f"HTML index: {index}")
    return 1 if failed else 0
