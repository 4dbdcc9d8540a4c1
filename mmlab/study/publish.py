"""The executed notebooks as a static site for readers: nbconvert's lab template, extended.

nbconvert is already how the notebooks are converted, so the site keeps its machinery rather than a
second builder (Jupyter Book/Sphinx would add a dozen packages and a theme's fonts and scripts to a
site that must stay small and work offline). Its template is extended, not replaced: the shared style
sheet is linked once per site instead of 256 KB inlined per page; code sits in a closed `<details>`
(open with `mmlab run --show-code`); prompts go; every page gets a title naming its notebook, a
contents list, links to the index and its neighbours, and links to its executed `.ipynb` and the
tidy data of the runs it made. The preprocessors of `reader_view` drop what readers should not see
(bare reprs, stderr, private facts of the publishing machine), from the HTML and from the shipped
notebooks alike; `site_index` writes the landing page.
"""
from __future__ import annotations

import html
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmlab.study.reader_view import CiteSources, DropStderr, ReaderView, Scrub, ShrinkFigures, private_strings, scrub

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
details.mmlab-fold { margin: .6rem 0; }
details.mmlab-fold > summary { cursor: pointer; color: var(--accent); }
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


@dataclass
class Site:
    """The published pages, ready for the index: their furniture, the summary notebook whose tagged
    cells the index quotes, the shipped sources and the private strings to keep out."""

    pages: list[Page]
    summary: object | None
    sources: list[str]
    private: dict[str, str]


def build(out_dir: Path, executed: Sequence[tuple[str, Path | None]], run_dirs: Mapping[str, Sequence[Path]],
          env: Mapping[str, object], show_code: bool = False, sources: Iterable[Path] = ()) -> Site:
    """Every page from executed notebooks (listing order, summary first): one page per notebook, its
    scrubbed `.ipynb` and data beside it, one style sheet and the cited sources; `site_index` then
    writes the index from what this returns."""
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
            # the page needs the widget state to place each explorer's note; the shipped file does not
            # (it only serves a live kernel, which rebuilds it)
            shipped = nbformat.from_dict(nb)
            shipped.metadata.pop("widgets", None)
            nbformat.write(shipped, path)
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
    return Site(pages, summary, srcs, private)
