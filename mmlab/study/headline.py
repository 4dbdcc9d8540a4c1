"""The summary, one call per scenario: the measured rows it stands on, the simulator at the same points
for the pre- and post-patch kernels, and what the page shows (estimates, ratios, tables, sentences).

The jobs live in their own modules: `series` selects rows, `estimates` estimates, `wording` formats,
`sentences` words the findings, `summary_figures` draws, `evidence` gathers stored rows and runs the
small experiments that are missing. This module only joins them for the notebook.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pandas as pd

from mmlab.core import params as p
from mmlab.study import estimates as est_
from mmlab.study import sentences, series, summary_figures, wording
from mmlab.study.series import OOM_NAME, Scenario


@dataclasses.dataclass(frozen=True)
class SummaryParams(p.Params):
    """What 00-summary compares; everything else comes from stored rows and the simulator."""

    vma_bytes: int = p.size("256MiB", "VMA size simulated when no real rows are stored", lo=1 << 20, hi=1 << 44)
    populated_fractions: tuple = p.reals([0.25, 0.5, 0.75], "populated fractions simulated when no real rows are stored", 0.0, 1.0)
    headline_fraction: float = p.real(0.25, "the populated fraction the generated sentences quote (nearest available)", 0.0, 1.0)
    pre_kernel: str = p.text("2.6.31", "pre-patch kernel to simulate (before 408e82b78bcc)")
    post_kernel: str = p.text("2.6.32", "post-patch kernel to simulate")
    profile: str = p.text("reference", "simulator machine profile: reference | desktop-2009 | host | a .json path")
    run_missing: bool = p.flag(True, "run small real experiments when none are stored for this host")
    runs: str = p.text("", "run ids or folders to read real rows from; empty: newest stored runs of this host")

    def check(self) -> None:
        from mmlab.sim.sweeps import _check_profile

        _check_profile(self.profile)


@dataclasses.dataclass
class Summary:
    """Everything the summary shows for one scenario."""

    scenario: str
    rows: pd.DataFrame  # labelled rows of every series (measured and simulated)
    estimates: pd.DataFrame
    ratios: pd.DataFrame
    table: pd.DataFrame
    sentence: str
    focus: list = dataclasses.field(default_factory=list)  # VMA sizes the figure shows
    ratio_table: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    sim_values: dict = dataclasses.field(default_factory=dict)  # the OOM model's machine


def simulated(scenario: str, pts: Sequence[tuple[int, int]], kernels: Sequence[str], profile: str) -> pd.DataFrame:
    """The simulator's rows at each point for each kernel (deterministic, milliseconds per point)."""
    from mmlab import sim

    frames = [sim.SCENARIOS[scenario].run({**series.sim_values(scenario, v, b), "kernel": k, "profile": profile})
              for v, b in pts for k in kernels]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def summarise(scen: Scenario, stored: pd.DataFrame, prm: SummaryParams, this_kernel: str,
              missing: dict[str, str] | None = None) -> Summary:
    """Measured rows of the scenario, the simulator at the same points for the pre- and post-patch
    kernels, their estimates, ratios, tables and sentence."""
    kernels = (prm.pre_kernel, prm.post_kernel)
    measured = series.measured_for(scen.name, stored)
    measured = series.label(measured, *kernels) if not measured.empty else measured
    pts = series.points(measured, prm.vma_bytes, prm.populated_fractions)
    sim_rows = series.label(simulated(scen.name, pts, kernels, prm.profile), *kernels)
    rows = pd.concat([f for f in (measured, sim_rows) if not f.empty], ignore_index=True)
    est = est_.estimates(rows, scen)
    rat = est_.ratios(est)
    labels = series.series_labels(*kernels, this_kernel)
    return Summary(scen.name, series.prepared(rows, scen), est, rat, wording.table(est, labels, prm.profile),
                   sentences.sentence(scen, est, rat, labels, prm.headline_fraction, prm.profile, kernels, missing),
                   summary_figures.focus_vmas(est, prm.headline_fraction), wording.ratio_table(rat, prm.profile))


def summarise_oom(stored: pd.DataFrame, prm: SummaryParams, this_kernel: str,
                  missing: dict[str, str] | None = None) -> Summary:
    """The OOM scenario: measured trials, and the simulator with the same memory limit and bystanders."""
    from mmlab import sim

    kernels = (prm.pre_kernel, prm.post_kernel)
    measured = stored[stored["experiment"] == OOM_NAME] if "experiment" in stored else stored.iloc[0:0]
    measured = measured.assign(source=series.NOTEBOOK_OF[OOM_NAME]) if len(measured) else measured
    values = series.oom_sim_values(measured, {})
    frames = [sim.SCENARIOS[OOM_NAME].run({**values, "kernel": k, "profile": prm.profile}) for k in kernels]
    rows = series.label(pd.concat([f for f in (measured, *frames) if not f.empty], ignore_index=True), *kernels)
    out = est_.oom_outcomes(rows)
    labels = series.series_labels(*kernels, this_kernel)
    if not values and frames:
        values = {"ram_bytes": frames[0]["ram_bytes"].iloc[0], "bystanders": frames[0]["bystanders"].iloc[0]} \
            if {"ram_bytes", "bystanders"} <= set(frames[0]) else {}
    return Summary(OOM_NAME, rows, out, pd.DataFrame(), wording.oom_table(out, labels, prm.profile),
                   sentences.oom_sentence(out, labels, prm.profile, missing), sim_values=values)


def claims(s1: Summary, s2: Summary, s3: Summary, profile: str, page: str = "00-summary.html",
           kernels: tuple[str, str] = ("2.6.31", "2.6.32")) -> list[str]:
    """The three claims of the 2009 thread, one sentence each, linked to their sections of `page`."""
    return [sentences.claim_exit(s1.estimates, s1.ratios, profile, page, series.SIGKILL.anchor),
            sentences.claim_munlock(s2.estimates, s2.ratios, profile, page, series.MUNLOCK.anchor),
            sentences.claim_oom(s3.estimates, s3.sim_values, profile, page, series.OOM_ANCHOR, kernels)]
