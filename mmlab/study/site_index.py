"""The site's index, answer first: the three claims of the 2009 thread with one figure each, details,
limitations, then the pages, the sources, the environment (once per site) and the parameters.
"""
from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from mmlab.study.publish import STYLE_FILE, TITLE_SUFFIX, Page, nav
from mmlab.study.reader_view import scrub

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
                "thp_defrag", "damon", "page_reporting", "console_loglevel", "consoles", "rlimit_memlock_soft_bytes",
                "rlimit_memlock_hard_bytes", "cap_ipc_lock", "cgroup_version", "memory_cgroup", "memory_cgroup_detail", "python_version",
                "mmlab_version", "git_commit", "git_modified")


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
