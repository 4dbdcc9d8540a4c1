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


def show_environment(env: dict | None = None) -> pd.DataFrame:
    """Display the environment table (in a notebook) and return it."""
    table = environment_table(env)
    try:
        from IPython.display import display

        with pd.option_context("display.max_colwidth", 120, "display.max_rows", 200):
            display(table)
    except ImportError:
        print(table.to_string())
    return table


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
    say(f"**{result.name}**: {len(result.rows)} rows (method = {methods}), stored in `{result.run_dir}`.")
    return True
