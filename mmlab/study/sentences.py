"""The summary in words: the three claims of the 2009 thread as the index states them, one sentence per
scenario for the summary page, the study's limitations and where its rows came from.

Every number is read from the estimates (nothing typed in), stated with the configuration it was
measured or simulated at, and with its kind: measured here, replayed here, or simulated on a named
machine profile. A clause never sets numbers of two configurations side by side. Pure functions.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from mmlab.sim import memory
from mmlab.study.estimates import CI, quoted_point
from mmlab.study.series import POINT, POST, PRE, REAL, REPLAY, Scenario
from mmlab.study.wording import fmt_s, fmt_size, fmt_x, interval_text, where


def _tables(est: pd.DataFrame, rat: pd.DataFrame):
    return est.set_index([*POINT, "series"]), rat.set_index([*POINT, "num", "den"])


def _time(e: pd.Series, profile: str, shown: str = "") -> str:
    interval = interval_text(e["kind"], e["lo_s"], e["hi_s"], e["n"], profile=profile)
    return f"{fmt_s(e['median_s'])} ({interval}{'; ' + shown if shown else ''})"


def _ratio(r: pd.Series, profile: str) -> str:
    text = interval_text(r["kind"], r["lo"], r["hi"], r["n"], fmt_x, profile)
    return f"{text}; {r['sides']}"


def sentence(scen: Scenario, est: pd.DataFrame, rat: pd.DataFrame, labels: dict[str, str], fraction: float,
             profile: str = "reference", kernels: tuple[str, str] = ("2.6.31", "2.6.32"),
             missing: Mapping[str, str] | None = None) -> str:
    """The scenario's findings in words for its section of the summary: the simulated before/after
    ratio, this kernel's measured time and the replay, each clause at one named configuration."""
    missing = missing or {}
    if est.empty:
        return f"**{scen.title}:** no rows to summarise."
    e_all, r_all = _tables(est, rat)
    parts = [f"**{scen.title}:**"]
    pt = quoted_point(est, fraction, (PRE, POST, REAL)) or quoted_point(est, fraction, (PRE, POST))
    if pt is not None:
        r = r_all.loc[(*pt, PRE, POST)]
        parts.append(f"simulated on the {profile} profile with {where(*pt)}, {scen.verb} {fmt_x(r['ratio'])} "
                     f"{'as long' if r['ratio'] >= 1 else 'the time'} before the patch as after it "
                     f"({kernels[0]}: {fmt_s(e_all.loc[(*pt, PRE), 'median_s'])}, "
                     f"{kernels[1]}: {fmt_s(e_all.loc[(*pt, POST), 'median_s'])}; {_ratio(r, profile)}).")
    gone = est[est["outcome"].fillna("").ne("") & (est["series"] == PRE)] if "outcome" in est else est.iloc[0:0]
    if not gone.empty:
        g0 = gone.sort_values(["vma_bytes", "point_bytes"]).iloc[-1]
        parts.append(f"With {where(int(g0['vma_bytes']), int(g0['point_bytes']))}, the simulated {kernels[0]} "
                     f"has no time: it needs more memory than the {profile} profile has ({memory.label(g0['outcome'])}).")
    real_pt = pt if pt is not None and (*pt, REAL) in e_all.index else quoted_point(est, fraction, (REAL,))
    if real_pt is not None:
        now = e_all.loc[(*real_pt, REAL)]
        parts.append(f"Measured on this kernel with {where(*real_pt)}, it took {_time(now, profile, shown_in(now))}.")
    else:
        parts.append(f"No measured rows on this kernel{': ' + missing[REAL] if missing.get(REAL) else ''}.")
    rp = quoted_point(est, fraction, (REPLAY, REAL))
    if rp is not None:
        r = r_all.loc[(*rp, REPLAY, REAL)]
        rep, now = e_all.loc[(*rp, REPLAY)], e_all.loc[(*rp, REAL)]
        parts.append(f"Replayed here with {where(*rp)}, the pre-patch work took {_time(rep, profile)}, "
                     f"{fmt_x(r['ratio'])} this kernel's measured {fmt_s(now['median_s'])} at the same point "
                     f"({_ratio(r, profile)}{'' if r['significant'] or r['kind'] != CI else ', not significant'}; "
                     f"{shown_in(rep, now)}).")
    elif quoted_point(est, fraction, (REPLAY,)) is not None:
        rp = quoted_point(est, fraction, (REPLAY,))
        rep = e_all.loc[(*rp, REPLAY)]
        parts.append(f"Replayed here with {where(*rp)}, the pre-patch work took {_time(rep, profile, shown_in(rep))}.")
    else:
        parts.append(f"No replay rows{': ' + missing[REPLAY] if missing.get(REPLAY) else ''}.")
    return " ".join(parts)


def oom_sentence(outcomes: pd.DataFrame, labels: dict[str, str], profile: str = "reference",
                 missing: Mapping[str, str] | None = None) -> str:
    """The OOM findings in words: bystanders killed before the patch, after it (simulated), and on
    this kernel (measured, with its number of trials)."""
    missing = missing or {}
    by = outcomes.set_index("series") if not outcomes.empty else pd.DataFrame()
    parts = ["**OOM kill with bystanders:**"]

    def told(s: str, who: str) -> str:
        r = by.loc[s]
        end = f" (modelled outcome: {r['outcome']})" if r["outcome"] else ""
        reap = ("the victim was never reaped" if not np.isfinite(r["victim_kill_to_reap_s"])
                else f"the victim was reaped {fmt_s(r['victim_kill_to_reap_s'])} after its kill")
        return f"{who}, {r['bystanders_killed']} of {r['bystanders']} bystanders were killed and {reap}{end}."

    if PRE in by.index:
        parts.append(told(PRE, f"Simulated on the {profile} profile before the patch ({labels[PRE]})"))
    if POST in by.index:
        parts.append(told(POST, f"After it ({labels[POST]})"))
    if REAL in by.index:
        r = by.loc[REAL]
        trials = f"{r['trials']} trial{'s' if r['trials'] != 1 else ''}"
        parts.append(f"Measured on this kernel in a memory cgroup ({trials}), {r['bystanders_killed']} of "
                     f"{r['bystanders']} bystanders were killed; the victim's kill to reap took "
                     f"{fmt_s(r['victim_kill_to_reap_s'])} ({interval_text(r['kind'], r['lo_s'], r['hi_s'], r['n'])}; "
                     f"{shown_in(r)}).")
    else:
        parts.append(f"No measured rows on this kernel{': ' + missing[REAL] if REAL in missing else ''}.")
    return " ".join(parts)


# --- the index: three claims, answer first ----------------------------------------------------------

def _link(text: str, page: str, anchor: str) -> str:
    return f"[{text}]({page}#{anchor})"


def shown_in(*estimates: pd.Series) -> str:
    """Markdown links to the detailed pages the estimates' measured rows are shown on (`source`:
    notebook names), e.g. `shown in [05-prepatch-replay](05-prepatch-replay.html)`; "" for models."""
    pages = sorted({s.strip() for e in estimates for s in str(e.get("source") or "").split(",") if s.strip()})
    return ("shown in " + " and ".join(f"[{p}]({p}.html)" for p in pages)) if pages else ""


def _refs(details: str, *estimates: pd.Series) -> str:
    """`(shown in [05-...](05-....html), [details](00-summary.html#x))`."""
    inner = ", ".join(t for t in (shown_in(*estimates), details) if t)
    return f"({inner})" if inner else ""


def claim_exit(est: pd.DataFrame, rat: pd.DataFrame, profile: str, page: str, anchor: str) -> str:
    """Claim 1 of the thread (Wakabayashi): a SIGKILL during mlock() made the exit slow, because the
    exit's munlock faulted in every page mlock had not reached. Quoted at the one point where the
    replay and this kernel's exit are both measured; the models where nothing was measured."""
    e_all, r_all = _tables(est, rat)
    head = "**1 · A SIGKILL during mlock() made the exit slow.**"
    rp = quoted_point(est, 0.25, (REPLAY, REAL))
    if rp is not None:
        r = r_all.loc[(*rp, REPLAY, REAL)]
        rep, now = e_all.loc[(*rp, REPLAY)], e_all.loc[(*rp, REAL)]
        return (f"{head} Replayed here, the pre-patch exit's work for {where(*rp)} took "
                f"{fmt_s(rep['median_s'])}, {fmt_x(r['ratio'])} this kernel's measured exit, "
                f"{fmt_s(now['median_s'])}; ratio {_ratio(r, profile)} "
                f"{_refs(_link('details', page, anchor), rep, now)}.")
    pt = quoted_point(est, 0.25, (PRE, POST))
    if pt is None:
        return f"{head} No rows to quote."
    r = r_all.loc[(*pt, PRE, POST)]
    return (f"{head} Simulated on the {profile} profile for {where(*pt)}, the 2.6.31 exit took {fmt_x(r['ratio'])} "
            f"as long as 2.6.32's ({_ratio(r, profile)}) {_link('details', page, anchor)}.")


def claim_munlock(est: pd.DataFrame, rat: pd.DataFrame, profile: str, page: str, anchor: str) -> str:
    """Claim 2 (Wakabayashi, Kamezawa): munlock() of a range mlock never finished faulted in, even
    COWed, every page it had not reached. Quoted where the replay and this kernel's munlock are both
    measured; else at the replay's point beside the post-patch model, saying so."""
    e_all, r_all = _tables(est, rat)
    head = "**2 · munlock() faulted in every page mlock had not reached.**"
    rp = quoted_point(est, 0.25, (REPLAY, REAL))
    if rp is not None:
        rep, now, r = e_all.loc[(*rp, REPLAY)], e_all.loc[(*rp, REAL)], r_all.loc[(*rp, REPLAY, REAL)]
        return (f"{head} Replayed here, munlock() of {where(*rp)} done the pre-patch way (faulting in the "
                f"{fmt_size(rp[0] - rp[1])} never reached) took {_time(rep, profile)}, {fmt_x(r['ratio'])} this "
                f"kernel's measured munlock() of the same range, {_time(now, profile)}; ratio {_ratio(r, profile)} "
                f"{_refs(_link('details', page, anchor), rep, now)}.")
    rp = quoted_point(est, 0.25, (REPLAY, POST))
    if rp is not None:
        rep = e_all.loc[(*rp, REPLAY)]
        return (f"{head} Replayed here, munlock() of {where(*rp)} done the pre-patch way (faulting in the "
                f"{fmt_size(rp[0] - rp[1])} never reached) took {_time(rep, profile, shown_in(rep))}. No munlock() "
                f"was measured on this kernel at that point; 2.6.32 simulated there on the {profile} profile takes "
                f"{fmt_s(e_all.loc[(*rp, POST), 'median_s'])} {_refs(_link('details', page, anchor))}.")
    pt = quoted_point(est, 0.25, (PRE, POST))
    if pt is None:
        return f"{head} No rows to quote."
    r = r_all.loc[(*pt, PRE, POST)]
    return (f"{head} Simulated on the {profile} profile for {where(*pt)}, 2.6.31's munlock() took {fmt_x(r['ratio'])} "
            f"as long as 2.6.32's ({_ratio(r, profile)}) {_link('details', page, anchor)}.")


def claim_oom(outcomes: pd.DataFrame, sim_values: Mapping[str, object], profile: str, page: str, anchor: str,
              kernels: tuple[str, str] = ("2.6.31", "2.6.32")) -> str:
    """Claim 3 (Hugh Dickins): after an OOM kill, the dying mlocker's exit ate the reserves and
    innocent bystanders were killed too. Simulated with this machine's measured memory cgroup; this
    kernel's measured trials beside it."""
    head = "**3 · An OOM-killed mlocker's exit got bystanders killed.**"
    by = outcomes.set_index("series") if not outcomes.empty else pd.DataFrame()
    if PRE not in by.index or POST not in by.index:
        return f"{head} No simulated outcome to quote."
    pre, post = by.loc[PRE], by.loc[POST]
    setup = f"RAM {fmt_size(sim_values['ram_bytes'])}, {sim_values['bystanders']} bystanders" if "ram_bytes" in sim_values else "its default machine"
    text = (f"{head} Simulated on the {profile} profile ({setup}; one run each), {kernels[0]} killed "
            f"{pre['bystanders_killed']} of {pre['bystanders']} bystanders and {kernels[1]} killed {post['bystanders_killed']}")
    if REAL in by.index:
        r = by.loc[REAL]
        text += (f", while measured here in a memory cgroup, this kernel killed {r['bystanders_killed']} of "
                 f"{r['bystanders']} over {r['trials']} trial{'s' if r['trials'] != 1 else ''}")
        return text + f" {_refs(_link('details', page, anchor), r)}."
    return text + f" {_link('details', page, anchor)}."


def limitations(env: Mapping[str, object], guest: bool, profile: str) -> str:
    """What the study cannot tell, as a Markdown list: the measuring machine's confounders (read from
    its environment), what is simulated, and what the 2009 machine facts assumed."""
    items = []
    cpus = env.get("cpu_count")
    box = "a virtual machine guest" if guest else "this machine"
    items.append(f"Measured on {box} with {cpus} CPUs, shared with other work while the report ran: timings are "
                 "medians over repeats, and a repeat that lost its CPU shows as an outlier.")
    if str(env.get("page_reporting", "")).startswith("on"):
        items.append("Free page reporting is on: the guest hands freed memory back to its host, so the next first "
                     "touch of it is several times slower; notebooks pause before timed first touches.")
    if str(env.get("damon", "")).startswith("on"):
        items.append(f"DAMON is running ({env['damon']}): it may page out memory behind an experiment's back.")
    level = env.get("console_loglevel")
    if isinstance(level, int) and level > 3 and env.get("consoles") not in (None, "none"):
        items.append(f"The kernel writes KERN_ERR messages to its console ({env['consoles']}, console_loglevel {level}): "
                     "an OOM victim writes the OOM killer's 'Killed process' line there itself before it can exit, "
                     "which on a serial console takes milliseconds (`oom_kill_to_exit_s`).")
    if env.get("cgroup_version") == "v1" or "v1" in str(env.get("memory_cgroup_detail", "")):
        items.append("OOM kills are measured inside a cgroup-v1 memory cgroup (its limit plays the machine's RAM): "
                     "a memcg OOM, not the global OOM killer and reserves of the 2009 thread.")
    items.append(f"Pre- and post-patch kernels (2.6.31, 2.6.32) are simulated, priced by the {profile} machine "
                 "profile fitted on this kernel's measurements; their spread is the model range (profile low–high), "
                 "not a confidence interval. The replay re-does the pre-patch work on today's kernel, whose fault "
                 "path is not 2.6.31's.")
    items.append("The 2009 figures (18.8 s before, 2.5 s after, 2,000,000,000 bytes) come from a machine whose RAM "
                 "and CPU the thread does not give; the desktop-2009 profile assumes them (notebook 07).")
    return "\n".join(f"- {i}" for i in items)


def provenance(stored: pd.DataFrame, missing: Mapping[str, str]) -> str:
    """Markdown: which run each experiment's rows come from, and what is missing and why."""
    lines = []
    if "experiment" in stored and len(stored):
        for name, g in stored.groupby("experiment", sort=True):
            runs = ", ".join(f"`{r}`" for r in sorted(g["run_id"].dropna().astype(str).unique())) if "run_id" in g else "?"
            lines.append(f"- **{name}**: {len(g)} rows ({', '.join(sorted(g['method'].dropna().unique()))}) from {runs}")
    for name, why in missing.items():
        lines.append(f"- **{name}**: missing ({why}); the summary goes on without it")
    return "\n".join(lines) or "No measured rows: only simulated series are shown."
