"""What a reader of the published study sees of a notebook, as nbconvert preprocessors: private facts
of the publishing machine replaced (kernel command line, host name, absolute paths), bare reprs and
stderr dropped, figures re-encoded small, cited documents and commits linked.
"""
from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path

from nbconvert.preprocessors import Preprocessor


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


PALETTE_COLOURS = 64


def smaller_png(b64: str) -> str:
    """A figure re-encoded with an adaptive 64-colour palette: line plots and bands lose nothing a reader
    sees and shrink about threefold, which keeps the whole site, notebooks included, under 3 MB."""
    import base64
    import io

    from PIL import Image

    raw = base64.b64decode(b64)
    try:
        img = Image.open(io.BytesIO(raw)).convert("RGB").quantize(colors=PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT)
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


def _silent(cell) -> bool:
    return cell.cell_type == "code" and not cell.get("outputs")


class ReaderView(Preprocessor):
    """Drop what a reader of the study need not see: warnings on stderr, and results that are only a
    Python repr (a parameter object, `<Figure ...>`, `[<matplotlib ...>]`) with nothing richer beside."""

    def preprocess(self, nb, resources):
        """The cells as below, then each run of code cells that show nothing joined into one, so the reader
        meets one folded block of set-up code, not a row of empty toggles before the answer."""
        nb, resources = super().preprocess(nb, resources)
        cells = []
        for cell in nb.cells:
            prev = cells[-1] if cells else None
            if _silent(cell) and prev is not None and _silent(prev):
                prev.source = prev.source.rstrip() + "\n\n" + cell.source
                continue
            cells.append(cell)
        nb.cells = cells
        return nb, resources

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
