"""The published site in a real browser (Debian's headless Chromium): every page loads without console
errors, every image is drawn, every link resolves, and nothing is fetched from the network.

Skipped with the reason when Chromium or Playwright is missing locally; under CI (CI=true) a missing
browser fails instead, so a broken `.ci/run` install shows up. A screenshot of the index is kept in
tests/artifacts/ (git-ignored).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

pytestmark = pytest.mark.notebook

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _need(ok: bool, why: str) -> None:
    if ok:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why} (CI must have it: .ci/run installs Debian's chromium)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A small report: the summary (simulated series only, no real run), notebook 01 at 1 MiB, compare."""
    d = tmp_path_factory.mktemp("browser")
    env = {**os.environ, "MMLAB_REPORTS_DIR": str(d / "reports"), "MMLAB_RUNS_DIR": str(d / "runs")}
    r = subprocess.run([sys.executable, "-m", "mmlab", "run", "00-summary", "01-mlock-throughput", "compare",
                        "-p", "run_missing", "false", "-p", "sizes", "1MiB", "-p", "repeats", "2", "-p", "warmup", "0"],
                       capture_output=True, text=True, timeout=400, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return Path(r.stdout.strip().splitlines()[-1].removeprefix("HTML index: "))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _need(CHROMIUM is not None, "chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "playwright (Python) is not installed: pip install -e '.[test]'")
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh --user-data-dir
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                   args=FLAGS, viewport={"width": 1280, "height": 900})
        yield ctx
        ctx.close()


def visit(ctx, url: str) -> dict:
    """Open one page offline; what the console said, what was requested off the machine, the images
    and the links."""
    page = ctx.new_page()
    errors, remote = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r):
        if r.request.url.startswith(("file:", "data:")):
            r.continue_()
        else:
            remote.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(url, wait_until="load")
    images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src').slice(0, 80), i.complete && i.naturalWidth > 0])")
    links = page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => [a.getAttribute('href'), a.href])")
    anchors = set(page.evaluate("Array.from(document.querySelectorAll('[id],[name]')).map(e => e.id || e.getAttribute('name'))"))
    out = {"page": page, "errors": errors, "remote": remote, "images": images, "links": links, "anchors": anchors}
    return out


@pytest.fixture(scope="module")
def pages(site, browser):
    """Every page of the site, starting at the index and following its relative links."""
    seen, todo, out = set(), [site.as_uri()], {}
    while todo:
        url = todo.pop(0)
        if url in seen:
            continue
        seen.add(url)
        v = visit(browser, url)
        out[url] = v
        for _raw, resolved in v["links"]:
            target = urlparse(resolved)
            if target.scheme == "file" and target.path.endswith(".html") and Path(unquote(target.path)).exists():
                todo.append(f"file://{target.path}")
    ARTIFACTS.mkdir(exist_ok=True)
    out[site.as_uri()]["page"].screenshot(path=str(ARTIFACTS / "index.png"), full_page=True)
    return out


def test_every_notebook_page_is_reached_from_the_index(site, pages):
    """The index links each notebook's HTML, summary first."""
    names = sorted(Path(urlparse(u).path).name for u in pages)
    assert names == ["00-summary.html", "01-mlock-throughput.html", "compare.html", "index.html"]


def test_no_page_logs_a_console_error(pages):
    """No script error or failed load on any page (dead widget managers, CDN scripts and broken
    images all log here)."""
    assert {u: v["errors"] for u, v in pages.items() if v["errors"]} == {}


def test_no_page_requests_anything_off_the_machine(pages):
    """Offline: no CDN script, font or image is requested."""
    assert {u: v["remote"] for u, v in pages.items() if v["remote"]} == {}


def test_every_image_is_drawn(site, pages):
    """Every <img> loaded and has a width; the index shows the summary's headline figures."""
    broken = {u: [src for src, ok in v["images"] if not ok] for u, v in pages.items()}
    assert {u: b for u, b in broken.items() if b} == {}
    assert len(pages[site.as_uri()]["images"]) >= 3


def test_every_link_resolves(pages):
    """Relative links point at files in the folder, in-page anchors at elements; nothing absolute
    points into this machine's file system."""
    bad = []
    for u, v in pages.items():
        for raw, resolved in v["links"]:
            p = urlparse(resolved)
            if raw.startswith("#"):
                if raw[1:] and raw[1:] not in v["anchors"]:
                    bad.append((u, raw))
            elif p.scheme == "file":
                if raw.startswith(("/", "file:")) or not Path(unquote(p.path)).exists():
                    bad.append((u, raw))
    assert bad == []


def test_static_widgets_show_a_figure_and_a_note_not_a_dead_control(site, pages):
    """In the static summary each explorer has its default figure drawn and a note where the controls were."""
    page = pages[(site.parent / "00-summary.html").as_uri()]["page"]
    notes = page.locator(".mmlab-widget-note").count()
    assert notes >= 2 and page.locator(".jupyter-widgets").count() == 0


# --- what a reader of the published study is promised ----------------------------------------------------

def _text(page) -> str:
    return page.evaluate("document.body.innerText")


def test_every_page_has_a_title_naming_it(site, pages):
    """A browser tab names the page: the index as the index, a notebook page by its own heading."""
    for u, v in pages.items():
        page = v["page"]
        title = page.title()
        assert title and title != "Notebook", u
        if Path(urlparse(u).path).name == "index.html":
            assert title.startswith("Index"), title
        else:
            assert title.startswith(page.locator("h1").first.inner_text().strip()), (u, title)


def test_every_page_but_the_index_links_to_it(site, pages):
    """From any page a reader gets back to the index (and the index leads on to the summary)."""
    for u, v in pages.items():
        hrefs = [raw for raw, _ in v["links"]]
        if Path(urlparse(u).path).name == "index.html":
            assert "00-summary.html" in hrefs
        else:
            assert "index.html" in hrefs, u


def test_no_page_is_wider_than_a_1280_px_window(pages):
    """Wide tables scroll inside their box and figures shrink: the page itself never scrolls sideways."""
    widths = {u: v["page"].evaluate("document.documentElement.scrollWidth") for u, v in pages.items()}
    assert {u: w for u, w in widths.items() if w > 1280} == {}


def test_no_code_is_visible_by_default(pages):
    """Code is folded away: the visible text of a page holds no `import` or `from mmlab` line."""
    for u, v in pages.items():
        lines = [line.strip() for line in _text(v["page"]).splitlines()]
        assert not [line for line in lines if line.startswith(("import ", "from mmlab"))], u


def _private() -> list[str]:
    secrets = [str(ROOT), str(ROOT.resolve())]
    try:
        cmdline = Path("/proc/cmdline").read_text().strip()
    except OSError:
        cmdline = ""
    return [s for s in secrets + [cmdline] if len(s) > 4]


def test_nothing_private_is_published(site):
    """No file of the site (pages, shipped notebooks, data, run facts) holds the kernel command line
    or the absolute path of the clone, of the folder holding it, or of the report folder."""
    secrets = _private() + [str(site.parent)] + ([str(ROOT.parent) + "/"] if len(ROOT.parent.parts) > 2 else [])
    leaks = {}
    for f in site.parent.rglob("*"):
        if f.is_file() and f.suffix in (".html", ".ipynb", ".csv", ".json", ".md", ".css"):
            text = f.read_text(errors="replace")
            hit = [s for s in secrets if s in text]
            if hit:
                leaks[f.name] = hit
    assert leaks == {}


def test_no_sentence_about_simulated_figures_calls_an_interval_ci(pages):
    """A model's spread is its model range: a sentence of running text that mentions a simulation
    never says "CI"."""
    import re

    bad = []
    for u, v in pages.items():
        paras = v["page"].evaluate("Array.from(document.querySelectorAll('p, li')).map(e => e.innerText)")
        for para in paras:
            for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9*])", para):
                if re.search(r"simulat", sentence, re.I) and re.search(r"\bCI\b", sentence):
                    bad.append((Path(urlparse(u).path).name, sentence[:160]))
    assert bad == []


def test_the_site_is_at_most_3_mb(site):
    """Shared style sheet once, figures as PNG: the whole folder stays small enough to mail or host."""
    size = sum(f.stat().st_size for f in site.parent.rglob("*") if f.is_file())
    assert size <= 3_000_000, f"{size / 1e6:.2f} MB"


def test_each_page_links_its_executed_notebook(site, pages):
    """A reader can redo a page: it links its executed .ipynb, which is in the folder."""
    for u, v in pages.items():
        name = Path(urlparse(u).path).name
        if name == "index.html":
            continue
        hrefs = [raw for raw, _ in v["links"]]
        assert name.replace(".html", ".ipynb") in hrefs, name


def test_the_site_checker_finds_the_contract_kept(site, browser):
    """`python -m mmlab.study.site_check` (run after `make report` on the full site) checks the same
    promises as this file; on this small site it visits every page and finds nothing broken."""
    from mmlab.study import site_check

    problems, pages, size = site_check.check(site.parent, clone=ROOT, chromium=CHROMIUM, context=browser)
    assert problems == [] and pages == 4 and 0 < size <= site_check.MAX_SITE_BYTES
