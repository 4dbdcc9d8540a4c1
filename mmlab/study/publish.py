"""The executed notebooks as a static site for readers: nbconvert's lab template, extended.

nbconvert is already how the notebooks are converted, so the site keeps its machinery rather than a
second builder (Jupyter Book/Sphinx would add a dozen packages and a theme's fonts and scripts to a
site that must stay small and work offline). Its template is extended, not replaced: the shared style
sheet is linked once per site instead of 256 KB inlined per page; code sits in a closed `<details>`
(open with `mmlab run --show-code`); prompts go; every page gets a title naming its notebook, a
contents list, links to the index and its neighbours, and links to its executed `.ipynb` and the
tidy data of the runs it made. Preprocessors drop what readers should not see: bare reprs,
warnings on stderr, and private facts of the publishing machine (kernel command line, host name,
absolute paths), from the HTML and from the shipped notebooks alike.
"""
from __future__ import annotations

import html
import os
import re
import shutil
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nbconvert.preprocessors import Preprocessor

STYLE_FILE = "site.css"
TITLE_SUFFIX = "mmlab report"

TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- set m = resources.mmlab -%}
{%- block header -%}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{{ m.title | e }} · """ + TITLE_SUFFIX + """</title>
<link rel="stylesheet" href="{{ m.style }}">
</head>
{%- endblock header -%}
{%- block body_header -%}
<body class="mmlab-page">
{{ m.nav_top }}
<main>
{{ m.intro }}
{%- endblock body_header -%}
{% block body_footer %}
</main>
{{ m.nav_bottom }}
</body>
{% endblock body_footer %}
{% block in_prompt %}{% endblock in_prompt %}
{% block empty_in_prompt %}{% endblock empty_in_prompt %}
{% block output_area_prompt %}{% endblock output_area_prompt %}
{% block input_group -%}
<details class="mmlab-code"{{ ' open' if m.show_code else '' }}><summary>code</summary>
{{ super() }}
</details>
{%- endblock input_group %}
{% block data_widget_view scoped %}<p class="mmlab-widget-note">The controls of this explorer need a live kernel: open the notebook in JupyterLab (<code>make lab</code>); above is its default view.</p>{% endblock data_widget_view %}
{% block footer %}
</html>
{% endblock footer %}
"""

# One small style sheet for every page: readable width, tables that scroll inside their box rather
# than widen the page, images never wider than the text, code folded.
SITE_CSS = """
:root { --fg: #1f2328; --muted: #57606a; --line: #d0d7de; --accent: #0969da; }
* { box-sizing: border-box; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); margin: 0 auto;
       max-width: 72rem; padding: 0 1.2rem 3rem; }
main { min-width: 0; }
a { color: var(--accent); }
h1 { font-size: 1.7rem; line-height: 1.25; } h2 { font-size: 1.35rem; margin-top: 2rem; } h3 { font-size: 1.1rem; }
a.anchor-link { display: none; }
nav.mmlab-nav { display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; padding: .6rem 0; border-bottom: 1px solid var(--line);
                font-size: .92rem; }
nav.mmlab-nav.bottom { border-bottom: 0; border-top: 1px solid var(--line); margin-top: 2rem; }
nav.mmlab-nav .next { margin-left: auto; }
.mmlab-meta { font-size: .92rem; color: var(--muted); }
nav.mmlab-toc { font-size: .9rem; margin: .8rem 0 1.2rem; }
nav.mmlab-toc ol { display: inline; margin: 0; padding: 0; }
nav.mmlab-toc li { display: inline; }
nav.mmlab-toc li + li::before { content: " · "; color: var(--muted); }
nav.mmlab-toc > ol::before { content: ""; }
nav.mmlab-toc strong { margin-right: .5rem; }
details.mmlab-code { margin: .4rem 0; }
details.mmlab-code > summary { cursor: pointer; color: var(--muted); font-size: .75rem; width: max-content; }
details.mmlab-code:not([open]) { margin: 0; line-height: 1.2; }
details.mmlab-code pre, .highlight pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; font-size: .82rem; }
.jp-OutputArea-output, .jp-RenderedHTML, .mmlab-scroll { max-width: 100%; overflow-x: auto; }
pre { white-space: pre-wrap; word-break: break-word; }
img { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: .88rem; margin: .6rem 0 1.2rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { font-weight: 600; background: #f6f8fa; }
table.mmlab-facts td, table.mmlab-facts th { text-align: left; }
.mmlab-widget-note { font-size: .85rem; color: var(--muted); border-left: 3px solid var(--line); padding: .2rem .6rem; }
.mmlab-claims li { margin-bottom: .8rem; }
.mmlab-kind { font-size: .8rem; color: var(--muted); white-space: nowrap; }
figure { margin: 1rem 0; } figcaption { font-size: .88rem; color: var(--muted); }
td.ok { color: #1a7f37; } td.fail { color: #b42318; }
.jp-RenderedText pre, .jp-OutputArea-output pre { background: none; padding: 0; }
"""


@dataclass
class Page:
    """One published notebook: its file names in the site and what it links to."""

    stem: str
    title: str
    html: str | None
    ipynb: str | None
    data: list[str] = field(default_factory=list)  # site-relative paths of its tidy data (Parquet, CSV)


# --- private facts of the publishing machine -----------------------------------------------------------

def private_strings(env: Mapping[str, object] | None = None, dirs: Iterable[Path] = ()) -> dict[str, str]:
    """What must not be published, each mapped to what a reader sees instead: absolute folders of this
    clone (runs and reports folders to their site-relative names), the home folder, the kernel command
    line, the host name (its host tag stays). Longest first, so a folder inside another goes first."""
    from mmlab.core import paths

    env = dict(env or {})
    out: dict[str, str] = {}
    named = {paths.runs_dir(): "data/runs", paths.reports_dir(): "reports", paths.PROJECT_DIR: "."}
    for d, shown in named.items():
        for form in {str(d), str(Path(d).resolve())}:
            out[form] = shown
    for d in dirs:
        out[str(d)] = "."
    home = os.path.expanduser("~")
    if len(home) > 1:
        out[home.rstrip("/") + "/"] = "~/"
    cmdline = str(env.get("kernel_cmdline") or "")
    if not cmdline:
        try:
            cmdline = Path("/proc/cmdline").read_text().strip()
        except OSError:
            cmdline = ""
    if cmdline:
        out[cmdline] = "(kernel command line not published)"
    host = socket.gethostname()
    if len(host) >= 4:
        out[host] = str(env.get("host_tag") or "this-host")
    return dict(sorted(out.items(), key=lambda kv: -len(kv[0])))


def scrub(text: str, private: Mapping[str, str]) -> str:
    """`text` with every private string replaced by its public form."""
    for secret, shown in private.items():
        if secret and secret in text:
            text = text.replace(secret, shown)
    return text


class Scrub(Preprocessor):
    """Replace private strings in every cell's source and outputs (text, HTML, Markdown)."""

    def __init__(self, private: Mapping[str, str], **kw):
        super().__init__(**kw)
        self.private = dict(private)

    def preprocess_cell(self, cell, resources, index):
        cell.source = scrub(cell.source, self.private)
        for out in cell.get("outputs", []):
            if "text" in out:
                out.text = scrub(out.text if isinstance(out.text, str) else "".join(out.text), self.private)
            for mime, value in list(out.get("data", {}).items()):
                if mime.startswith("text/") or mime.endswith(("json", "javascript")):
                    out.data[mime] = scrub(value if isinstance(value, str) else "".join(value), self.private) \
                        if not isinstance(value, dict) else value
        return cell, resources


def smaller_png(b64: str) -> str:
    """A figure re-encoded with an adaptive 256-colour palette: line plots lose nothing a reader sees
    and shrink about threefold, which keeps the whole site, notebooks included, under 3 MB."""
    import base64
    import io

    from PIL import Image

    raw = base64.b64decode(b64)
    try:
        img = Image.open(io.BytesIO(raw)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    except OSError:
        return b64
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode() if out.tell() < len(raw) else b64


class DropStderr(Preprocessor):
    """Drop what cells wrote to stderr: warnings and waiting notes that name this machine's processes,
    their command lines and paths (another clone holding the machine lock, say). Kept out of the
    shipped notebooks too; errors that stop a notebook are reported by the runner."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", [])
                            if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
        return cell, resources


class ShrinkFigures(Preprocessor):
    """Every PNG output, alone or embedded in HTML, through `smaller_png`."""

    def preprocess_cell(self, cell, resources, index):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data:
                data["image/png"] = smaller_png("".join(data["image/png"]).replace("\n", ""))
            if "text/html" in data:
                data["text/html"] = re.sub(r'(src="data:image/png;base64,)([^"]+)"',
                                           lambda m: f'{m.group(1)}{smaller_png(m.group(2))}"', "".join(data["text/html"]))
        return cell, resources


_REPR = re.compile(r"^(<[^>]*>|\[<[^>]*>(, <[^>]*>)*\]|[\w.]+Params\(.*\)|Text\(.*\))$", re.S)


class ReaderView(Preprocessor):
    """Drop what a reader of the study need not see: warnings on stderr, and results that are only a
    Python repr (a parameter object, `<Figure ...>`, `[<matplotlib ...>]`) with nothing richer beside."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        keep = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                continue
            if out.get("output_type") == "execute_result" and set(out.get("data", {})) <= {"text/plain"}:
                continue
            data = out.get("data", {})
            if set(data) == {"text/plain"} and _REPR.match(str(data["text/plain"]).strip()):
                continue
            keep.append(out)
        cell.outputs = keep
        return cell, resources


_CITED = ((r"(?<![\w/\[])(`?)((?:\.\./)?(?:shared/)?kernel-history(?:\.md)?)\1", "kernel-history.md"),
          (r"(?<![\w/\[])(`?)((?:\.\./)?(?:shared/)?MEASURING(?:\.md)?)\1", "MEASURING.md"))
COMMIT_URL = "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id={}"


class CiteSources(Preprocessor):
    """Link what the Markdown cites: the background documents shipped in `sources/`, and kernel commit
    ids (12 hex digits in parentheses or backquotes) to the kernel's git web view."""

    def __init__(self, shipped: Iterable[str] = (), **kw):
        super().__init__(**kw)
        self.shipped = {Path(s).name: s for s in shipped}

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "markdown":
            return cell, resources
        text = cell.source
        for rx, name in _CITED:
            if name in self.shipped:
                text = re.sub(rx, lambda m, n=name: f"[{m.group(2)}]({self.shipped[n]})", text)
        text = re.sub(r"\((`?)([0-9a-f]{12})\1\)", lambda m: f"([{m.group(2)}]({COMMIT_URL.format(m.group(2))}))", text)
        cell.source = text
        return cell, resources


# --- page furniture ------------------------------------------------------------------------------------

def title_of(nb) -> str:
    """The notebook's title: its first Markdown heading (`# 02 · SIGKILL during mlock()` gives
    `02 · SIGKILL during mlock()`), else its file name."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if m:
                return re.sub(r"[`*]", "", m.group(1)).strip()
    return nb.metadata.get("title") or "notebook"


def nav(index: str, prev: Page | None, nxt: Page | None, where: str = "top") -> str:
    esc = html.escape
    parts = [f'<a class="home" href="{esc(index)}">&#8962; Index</a>']
    if prev is not None and prev.html:
        parts.append(f'<a class="prev" rel="prev" href="{esc(prev.html)}">&larr; {esc(prev.title)}</a>')
    if nxt is not None and nxt.html:
        parts.append(f'<a class="next" rel="next" href="{esc(nxt.html)}">{esc(nxt.title)} &rarr;</a>')
    return f'<nav class="mmlab-nav {where}" aria-label="site">{" ".join(parts)}</nav>'


def downloads(page: Page) -> str:
    """The links that let a reader redo the page: its executed notebook and its data."""
    esc = html.escape
    items = []
    if page.ipynb:
        items.append(f'<a href="{esc(page.ipynb)}" download>executed notebook (.ipynb)</a>')
    for d in page.data:
        items.append(f'<a href="{esc(d)}">{esc(Path(d).parent.name + "/" + Path(d).name)}</a>')
    if not items:
        return ""
    return '<p class="mmlab-meta">Download: ' + " · ".join(items) + "</p>"


_HEADING = re.compile(r'<h([23]) id="([^"]+)">(.*?)(?:<a class="anchor-link".*?</a>)?</h\1>', re.S)


def contents(body: str) -> str:
    """A one-line contents list of the page's sections (h2), linked by the ids nbconvert gives them."""
    heads = [(int(lv), hid, re.sub(r"<[^>]+>", "", text).strip()) for lv, hid, text in _HEADING.findall(body)]
    if len(heads) < 2:
        return ""
    items = []
    for lv, hid, text in heads:
        if lv == 3:
            continue  # the list stays one line: sections only
        items.append(f'<li><a href="#{html.escape(hid)}">{html.escape(text)}</a></li>')
    return f'<nav class="mmlab-toc" aria-label="contents"><strong>Contents:</strong><ol>{"".join(items)}</ol></nav>'


def exporter():
    """nbconvert's HTML exporter with the site template (lab, without CDN scripts or inlined CSS)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"mmlab_site.html.j2": TEMPLATE})],
                        template_file="mmlab_site.html.j2", exclude_input_prompt=True, exclude_output_prompt=True)


def render(nb, page: Page, prev: Page | None, nxt: Page | None, show_code: bool, private: Mapping[str, str],
           index: str = "index.html", sources: Sequence[str] = ()) -> str:
    """One notebook page: reader's view of the cells, furniture around them, private facts scrubbed."""
    nb, _ = ReaderView().preprocess(nb, {})
    nb, _ = CiteSources(sources).preprocess(nb, {})
    nb, _ = Scrub(private).preprocess(nb, {})
    placeholder = "<!--mmlab-contents-->"
    resources = {"mmlab": {"title": page.title, "style": STYLE_FILE, "show_code": show_code,
                           "nav_top": nav(index, prev, nxt, "top"), "nav_bottom": nav(index, prev, nxt, "bottom"),
                           "intro": placeholder}}
    body, _ = exporter().from_notebook_node(nb, resources=resources)
    intro = downloads(page) + contents(body)
    body = body.replace(placeholder, "", 1)
    # the furniture goes under the page's own title, so the title is the first thing read
    body = re.sub(r"(<h1 [^>]*>.*?</h1>)", lambda m: m.group(1) + intro, body, count=1, flags=re.S) \
        if re.search(r"<h1 ", body) else body.replace("<main>", "<main>" + intro, 1)
    return scrub(body, private)


def write_style(out_dir: Path) -> Path:
    """The site's one style sheet, with pygments' colours for the (folded) code."""
    from pygments.formatters import HtmlFormatter

    css = SITE_CSS + HtmlFormatter(style="default").get_style_defs(".highlight")
    path = out_dir / STYLE_FILE
    path.write_text(css)
    return path


# --- data a reader can download -----------------------------------------------------------------------

def ship_runs(run_dirs: Sequence[Path], out_dir: Path, private: Mapping[str, str]) -> list[str]:
    """Copy each run's tidy Parquet files into `data/<run-id>/` of the site, each beside a CSV twin
    for spreadsheet users, and its run.json scrubbed of private facts; the site-relative paths back."""
    import pandas as pd

    out = []
    for run in run_dirs:
        dest = out_dir / "data" / run.name
        dest.mkdir(parents=True, exist_ok=True)
        for pq in sorted(run.glob("*.parquet")):
            shutil.copy2(pq, dest / pq.name)
            pd.read_parquet(pq).to_csv(dest / (pq.stem + ".csv"), index=False)
            out += [f"data/{run.name}/{pq.name}", f"data/{run.name}/{pq.stem}.csv"]
        meta = run / "run.json"
        if meta.exists():
            (dest / "run.json").write_text(scrub(meta.read_text(), private))
    return out


def ship_sources(out_dir: Path, sources: Iterable[Path]) -> list[str]:
    """Copy the cited background documents (kernel history, measuring notes) into `sources/`."""
    out = []
    for src in sources:
        if src.is_file():
            (out_dir / "sources").mkdir(exist_ok=True)
            shutil.copy2(src, out_dir / "sources" / src.name)
            out.append(f"sources/{src.name}")
    return out


def site_bytes(out_dir: Path) -> int:
    return sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())


# --- the index: answer first -------------------------------------------------------------------------

THREAD = (  # the 2009 thread and the fix, as cited by kernel-history.md (Message-IDs on lore)
    ("Wakabayashi, mm: make munlock fast when mlock is canceled by sigkill (2009-08-23)",
     "https://lore.kernel.org/linux-mm/82e12e5f0908220954p7019fb3dg15f9b99bb7e55a8c@mail.gmail.com/"),
    ("Hugh Dickins on the OOM case (2009-08-25)",
     "https://lore.kernel.org/linux-mm/Pine.LNX.4.64.0908250947400.2872@sister.anvils/"),
    ("Hugh Dickins, mm: munlock use follow_page (2009-09-07)",
     "https://lore.kernel.org/linux-mm/Pine.LNX.4.64.0909072227140.15430@sister.anvils/"),
    ("commit 408e82b78bcc, Linux 2.6.32",
     "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=408e82b78bcc"),
)
PUBLIC_FACTS = ("host_tag", "kernel_release", "kernel_version", "machine", "cpu_model", "cpu_count", "page_size_bytes",
                "mem_total_bytes", "mem_available_bytes", "swap_total_bytes", "overcommit_memory", "thp_enabled",
                "thp_defrag", "damon", "page_reporting", "rlimit_memlock_soft_bytes", "rlimit_memlock_hard_bytes",
                "cap_ipc_lock", "cgroup_version", "memory_cgroup", "memory_cgroup_detail", "python_version",
                "mmlab_version", "git_commit")


def public_environment(env: Mapping[str, object]) -> list[tuple[str, str]]:
    """The environment a reader needs, sizes with units: no kernel command line, user or host name."""
    from mmlab.study.wording import fmt_size

    rows = []
    for k in PUBLIC_FACTS:
        if k not in env:
            continue
        v = env[k]
        if k.endswith("_bytes") and isinstance(v, int):
            v = "unlimited" if v >= (1 << 61) or v < 0 else fmt_size(v)
        rows.append((k.removesuffix("_bytes").replace("_", " "), str(v)))
    for name, info in (env.get("experiments") or {}).items():
        rows.append((f"experiment {name}", ("can run" if info["can_run"] else "cannot run") + f": {info['detail']}"))
    return rows


def tagged_outputs(nb, tag: str, out_dir: Path, prefix: str) -> str:
    """The outputs of the summary's cells tagged `tag` as HTML for the index, each PNG written to
    `figures/` and linked relatively (the index stays light)."""
    import base64

    from nbconvert.filters.markdown import markdown2html

    if nb is None:
        return ""
    parts: list[str] = []
    count = [0]

    def save(b64: str) -> str:
        count[0] += 1
        (out_dir / "figures").mkdir(exist_ok=True)
        name = f"{prefix}-{count[0]}.png"
        (out_dir / "figures" / name).write_bytes(base64.b64decode(b64))
        return f"figures/{name}"

    for cell in nb.cells:
        if cell.cell_type != "code" or tag not in cell.metadata.get("tags", []):
            continue
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if "text/html" in data:
                parts.append(re.sub(r'src="data:image/png;base64,([^"]+)"', lambda m: f'src="{save(m.group(1))}"',
                                    "".join(data["text/html"])))
            elif "image/png" in data:
                parts.append(f'<img alt="{tag} figure" src="{save(data["image/png"])}">')
            elif "text/markdown" in data:
                parts.append(markdown2html("".join(data["text/markdown"])))
    return "\n".join(parts)


def write_index(out_dir: Path, run_id: str, pages: Sequence[Page], status: Sequence[tuple[str, bool, str, float]],
                env: Mapping[str, object], parameters: Mapping[str, object], summary_nb=None,
                sources: Sequence[str] = (), wall_s: float | None = None, private: Mapping[str, str] = {}) -> Path:
    """The landing page, answer first: the three claims with their evidence, one figure per claim,
    details, limitations; then the pages, the sources, the environment (once per site) and the
    parameters. `status` is (name, ok, error, wall_s) per notebook."""
    esc = html.escape
    first = next((p for p in pages if p.html), None)
    claims = tagged_outputs(summary_nb, "claims", out_dir, "claim")
    details = tagged_outputs(summary_nb, "headline", out_dir, "summary")
    limits = tagged_outputs(summary_nb, "limitations", out_dir, "limits")
    by_name = {p.stem: p for p in pages}
    rows = []
    for name, ok, error, wall in status:
        p = by_name.get(name)
        link = f'<a href="{esc(p.html)}">{esc(p.title)}</a>' if p and p.html else esc(name)
        nb = f'<a href="{esc(p.ipynb)}" download>.ipynb</a>' if p and p.ipynb else ""
        state = "ok" if ok else f"failed: {esc(scrub(error or '', private))}"
        rows.append(f'<tr><td>{link}</td><td class="{"ok" if ok else "fail"}">{state}</td>'
                    f"<td>{wall:.0f} s</td><td>{nb}</td></tr>")
    data_links = sorted({d for p in pages for d in p.data})
    data_html = ("<p>Tidy data of every run this report made (one row per measurement, units in column names), "
                 "as Parquet and CSV: " + ", ".join(f'<a href="{esc(d)}">{esc(d.removeprefix("data/"))}</a>'
                                                     for d in data_links) + ".</p>") if data_links else ""
    src = "".join(f'<li><a href="{esc(s)}">{esc(Path(s).name)}</a> (shipped with this site)</li>' for s in sources)
    src += "".join(f'<li><a href="{esc(u)}">{esc(t)}</a></li>' for t, u in THREAD)
    env_html = "\n".join(f"<tr><th>{esc(k)}</th><td>{esc(scrub(v, private))}</td></tr>" for k, v in public_environment(env))
    params_html = "\n".join(f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in parameters.items()) \
        or "<tr><td>the defaults of each notebook (their parameters cells)</td></tr>"
    total = f" The whole run took {wall_s:.0f} s." if wall_s is not None else ""
    answer = (f'<section id="answer"><h2>The answer</h2><div class="mmlab-claims">{claims}</div></section>' if claims
              else "<p>The summary did not run; its claims are missing.</p>")
    nav_top = nav("index.html", None, first, "top").replace('<a class="home" href="index.html">&#8962; Index</a> ', "")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Index · {TITLE_SUFFIX} {esc(run_id)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{STYLE_FILE}">
</head><body class="mmlab-index">
{nav_top}
<main>
<h1>What it costs to munlock after an interrupted mlock(): the 2009 thread, checked on Linux {esc(str(env.get("kernel_release", "")))}</h1>
<p class="mmlab-meta">Run <code>{esc(run_id)}</code> on host <code>{esc(str(env.get("host_tag", "")))}</code>.
Each number says what it is: <em>measured here</em> on this machine's kernel, <em>replayed here</em> (the pre-patch
kernel's work re-done on this kernel), or <em>simulated</em> by the kernel models on a named machine profile.</p>
<nav class="mmlab-toc" aria-label="contents"><strong>Contents:</strong><ol>
<li><a href="#answer">The answer</a></li><li><a href="#details">Details</a></li><li><a href="#limitations">Limitations</a></li>
<li><a href="#pages">Pages</a></li><li><a href="#sources">Sources</a></li><li><a href="#environment">Environment</a></li>
<li><a href="#parameters">Parameters</a></li></ol></nav>
{answer}
<section id="details"><h2>Details</h2>{details or "<p>No details: the summary did not run.</p>"}
{f'<p><a href="{esc(first.html)}">The whole summary, with every point and series.</a></p>' if first else ""}</section>
<section id="limitations"><h2>Limitations</h2>{limits or "<p>See the summary.</p>"}</section>
<section id="pages"><h2>Pages</h2>
<table class="mmlab-facts"><tr><th>page</th><th>status</th><th>wall time</th><th>notebook</th></tr>
{chr(10).join(rows)}
</table><p class="mmlab-meta">{total.strip()}</p>
{data_html}</section>
<section id="sources"><h2>Sources</h2><ul>{src}</ul></section>
<section id="environment"><h2>Environment</h2>
<p class="mmlab-meta">The machine every page ran on (shown once here; a page says only what differed for it).</p>
<div class="mmlab-scroll"><table class="mmlab-facts">{env_html}</table></div></section>
<section id="parameters"><h2>Parameters</h2><table class="mmlab-facts">{params_html}</table></section>
</main>
</body></html>
"""
    index = out_dir / "index.html"
    index.write_text(scrub(page, private))
    return index


def build(out_dir: Path, run_id: str, executed: Sequence[tuple[str, Path | None]], status, run_dirs: Mapping[str, Sequence[Path]],
          env: Mapping[str, object], parameters: Mapping[str, object], show_code: bool = False,
          wall_s: float | None = None, sources: Iterable[Path] = ()) -> Path:
    """The whole site from executed notebooks (listing order, summary first): one page per notebook,
    its scrubbed `.ipynb` and data beside it, one style sheet, the cited sources, and the index."""
    import nbformat

    private = private_strings(env, [out_dir])
    write_style(out_dir)
    books = {}
    pages = []
    for stem, path in executed:
        nb = None
        if path is not None and path.exists():
            # the shipped notebook is the scrubbed one, metadata too (papermill records its paths there)
            nb = nbformat.reads(scrub(path.read_text(), private), as_version=4)
            nb, _ = DropStderr().preprocess(nb, {})
            nb, _ = ShrinkFigures().preprocess(nb, {})
            nbformat.write(nb, path)
        books[stem] = nb
        data = ship_runs(run_dirs.get(stem, ()), out_dir, private)
        pages.append(Page(stem, title_of(nb) if nb is not None else stem, f"{stem}.html" if nb is not None else None,
                          path.name if nb is not None else None, data))
    srcs = ship_sources(out_dir, sources)
    shown = [p for p in pages if p.html]
    for i, p in enumerate(shown):
        prev = shown[i - 1] if i > 0 else None
        nxt = shown[i + 1] if i + 1 < len(shown) else None
        nb = nbformat.from_dict(books[p.stem])
        (out_dir / p.html).write_text(render(nb, p, prev, nxt, show_code, private, sources=srcs))
    summary = next((books[p.stem] for p in pages if p.stem.startswith("00-") and books[p.stem] is not None), None)
    return write_index(out_dir, run_id, pages, status, env, parameters, summary, srcs, wall_s, private)
