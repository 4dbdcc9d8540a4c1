"""The published site's promise to its readers, checked in a real browser over any report folder:

    python -m mmlab.study.site_check [reports/<run>]     (default: the newest report)

Every page has a title naming it and (but the index) links to the index; no page is wider than a
1280x800 window; no code is visible by default; no file holds the kernel command line or the clone's
absolute path; no sentence about simulated figures calls an interval "CI"; the site is at most 3 MB.
Headless Chromium through Playwright (the `test` extras); prints one line per broken promise and exits 1.
"""
from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlparse

MAX_SITE_BYTES = 3_000_000
WINDOW = {"width": 1280, "height": 800}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TEXT_SUFFIXES = (".html", ".ipynb", ".csv", ".json", ".md", ".css")


def private_strings(site: Path, clone: Path) -> list[str]:
    """What must not be published: this kernel's command line and the absolute paths of the clone,
    of the folder holding it and of the report folder."""
    found = [str(clone), str(clone.resolve()), str(site.resolve())]
    if len(clone.parent.parts) > 2:
        found.append(str(clone.parent) + "/")
    try:
        found.append(Path("/proc/cmdline").read_text().strip())
    except OSError:
        pass
    return [s for s in found if len(s) > 4]


def leaks(site: Path, secrets: Iterable[str]) -> list[str]:
    """Files of the site holding any of `secrets` (pure apart from reading the files)."""
    secrets = list(secrets)
    out = []
    for f in sorted(site.rglob("*")):
        if f.is_file() and f.suffix in TEXT_SUFFIXES:
            text = f.read_text(errors="replace")
            if any(s in text for s in secrets):
                out.append(f"{f.relative_to(site)}: holds the kernel command line or an absolute path of this machine")
    return out


def site_bytes(site: Path) -> int:
    return sum(f.stat().st_size for f in site.rglob("*") if f.is_file())


def code_lines(text: str) -> list[str]:
    """Lines of a page's visible text that are code (`import x`, `from mmlab...`)."""
    return [s for s in (line.strip() for line in text.splitlines()) if s.startswith(("import ", "from mmlab"))]


def ci_about_simulation(paragraphs: Iterable[str]) -> list[str]:
    """Sentences that mention simulated figures and call an interval "CI"."""
    bad = []
    for para in paragraphs:
        for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9*])", para):
            if re.search(r"simulat", sentence, re.I) and re.search(r"\bCI\b", sentence):
                bad.append(sentence[:160])
    return bad


def page_problems(name: str, title: str, h1: str, hrefs: list[str], scroll_width: int, text: str,
                  paragraphs: list[str]) -> list[str]:
    """The reader's promises for one page, from what the browser saw of it. Pure."""
    out = []
    if not title or title == "Notebook":
        out.append(f"{name}: no title naming the page ({title!r})")
    elif name == "index.html" and not title.startswith("Index"):
        out.append(f"{name}: title {title!r} does not name the index")
    elif name != "index.html" and h1 and not title.startswith(h1.strip()):
        out.append(f"{name}: title {title!r} does not start with its heading {h1.strip()!r}")
    if name != "index.html" and "index.html" not in hrefs:
        out.append(f"{name}: no link to index.html")
    if scroll_width > WINDOW["width"]:
        out.append(f"{name}: {scroll_width} px wide in a {WINDOW['width']} px window")
    out += [f"{name}: code visible: {line[:80]}" for line in code_lines(text)]
    out += [f"{name}: 'CI' in a sentence about simulated figures: {s}" for s in ci_about_simulation(paragraphs)]
    return out


def _visit_all(page, index: Path) -> dict[str, dict]:
    seen: dict[str, dict] = {}
    todo = [index.resolve().as_uri()]
    page.set_viewport_size(WINDOW)
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:")) else r.abort())
    while todo:
        url = todo.pop(0)
        if url in seen:
            continue
        page.goto(url, wait_until="load")
        links = page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => [a.getAttribute('href'), a.href])")
        h1 = page.locator("h1")
        seen[url] = {"title": page.title(), "h1": h1.first.inner_text() if h1.count() else "",
                     "hrefs": [raw for raw, _ in links],
                     "scroll_width": page.evaluate("document.documentElement.scrollWidth"),
                     "text": page.evaluate("document.body.innerText"),
                     "paragraphs": page.evaluate("Array.from(document.querySelectorAll('p, li')).map(e => e.innerText)")}
        for _raw, resolved in links:
            target = urlparse(resolved)
            if target.scheme == "file" and target.path.endswith(".html") and Path(unquote(target.path)).exists():
                todo.append(f"file://{target.path}")
    return seen


def browse(index: Path, chromium: str, context=None) -> dict[str, dict]:
    """Every page reached from the index by relative links, as the browser saw it at 1280x800 (in
    `context`, a Playwright browser context, when one is open already)."""
    if context is not None:
        page = context.new_page()
        try:
            return _visit_all(page, index)
        finally:
            page.close()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=FLAGS)
        try:
            return _visit_all(browser.new_page(), index)
        finally:
            browser.close()


def check(site: Path, clone: Path | None = None, chromium: str | None = None,
          context=None) -> tuple[list[str], int, int]:
    """(problems, pages checked, site bytes) of the site in folder `site` (holding index.html)."""
    from mmlab.core.paths import PROJECT_DIR

    chromium = chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None and context is None:
        raise SystemExit("site_check: chromium is not installed (apt-get install chromium)")
    index = site / "index.html"
    if not index.exists():
        raise SystemExit(f"site_check: {site} holds no index.html (a report folder is reports/<run>)")
    problems = leaks(site, private_strings(site, clone or PROJECT_DIR))
    size = site_bytes(site)
    if size > MAX_SITE_BYTES:
        problems.append(f"site is {size / 1e6:.2f} MB, more than {MAX_SITE_BYTES / 1e6:.0f} MB")
    seen = browse(index, chromium, context)
    for url, v in seen.items():
        problems += page_problems(Path(urlparse(url).path).name, v["title"], v["h1"], v["hrefs"], v["scroll_width"],
                                  v["text"], v["paragraphs"])
    return problems, len(seen), size


def newest_report() -> Path:
    from mmlab.core.paths import reports_dir

    sites = sorted((d for d in reports_dir().glob("*") if (d / "index.html").exists()), key=lambda d: d.stat().st_mtime)
    if not sites:
        raise SystemExit(f"site_check: no report in {reports_dir()}; run `make report` first")
    return sites[-1]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    site = Path(argv[0]) if argv else newest_report()
    if site.is_file():
        site = site.parent
    try:
        import playwright.sync_api  # noqa: F401  (the browser driver comes with the test extras)
    except ImportError:
        print("site_check: playwright is not installed; run 'make check-site' (it installs the test extras)",
              file=sys.stderr)
        return 2
    problems, pages, size = check(site)
    for line in problems:
        print(line)
    print(f"site_check: {site.name}: {pages} pages, {size / 1e6:.2f} MB, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
