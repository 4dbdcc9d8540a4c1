"""What every notebook shows on top and around its figures: the environment, skips, provenance."""
from __future__ import annotations

import pandas as pd

from mmlab.kernel import env as _env


def environment() -> dict:
    """This machine's environment with whether each real experiment can run here."""
    from mmlab import experiments

    return _env.capture(experiments.availability())


def environment_table(env: dict | None = None) -> pd.DataFrame:
    """The environment as a two-column table (value strings with units) for the top of a notebook."""
    rows = _env.table(env or environment())
    return pd.DataFrame(rows, columns=["fact", "value"]).set_index("fact")


def environment_line(env: dict) -> str:
    """What a page says of its machine: the facts that may differ between pages of one report (memory
    available when it started) beside the kernel and host tag; the full table is on the site's index."""
    from mmlab.core.units import format_bytes

    avail = env.get("mem_available_bytes")
    mem = f", {format_bytes(avail)} available at its start" if isinstance(avail, int) else ""
    return (f"Ran on Linux {env.get('kernel_release', '?')}, host `{env.get('host_tag', '?')}`{mem}. "
            "The full environment is on the report's [index](index.html#environment).")


def show_environment(env: dict | None = None) -> str:
    """Say in one line which machine this page ran on (in a notebook) and return the line."""
    line = environment_line(env or _env.capture())
    say(line)
    return line


def is_guest(cpuinfo: str | None = None) -> bool:
    """Whether this machine is a virtual machine guest: the CPU reports the `hypervisor` flag."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    return any(line.startswith("flags") and " hypervisor" in line for line in cpuinfo.splitlines())


def say(markdown: str) -> None:
    """Display generated Markdown (sentences built from the data) in a notebook; print elsewhere."""
    try:
        from IPython.display import Markdown, display

        display(Markdown(markdown))
    except ImportError:
        print(markdown)


def show_result(result) -> bool:
    """Say where a run was stored or why it was skipped; True when there are rows to plot."""
    if result.skipped:
        say(f"**{result.name} skipped on this machine:** {result.skipped}")
        return False
    methods = ", ".join(f"{m}" for m in sorted(result.rows["method"].unique())) if "method" in result.rows else "real"
    where = f"run `{result.run_dir.name}`" if result.run_dir else "not stored"
    say(f"**{result.name}**: {len(result.rows)} rows (method = {methods}), {where}; its tidy data are linked at the top of this page.")
    return True


def show_table(df, fold: str | None = None) -> None:
    """Display a statistics or rows table for readers (units, words, no pids or empty rows: see
    `wording.readable`); nothing is returned, so a notebook cell does not echo it a second time.
    `fold`: the table starts folded under that summary line (long reference tables, such as sources)."""
    import html

    from mmlab.study.wording import readable

    table = readable(df)
    try:
        from IPython.display import HTML, display

        body = (f'<div class="mmlab-scroll" style="max-width:100%;overflow-x:auto">'
                f'{table.to_html(index=False, border=0)}</div>')
        if fold:
            body = f'<details class="mmlab-fold"><summary>{html.escape(fold)}</summary>{body}</details>'
        display(HTML(body))
    except ImportError:
        print(table.to_string(index=False))
