"""The simulated kernel eras and their OOM kills as tables for readers: counts and roles in words,
sizes and times with units, behaviours named as the kernel's code does. Pure functions of the
simulator's frames.
"""
from __future__ import annotations

import pandas as pd

from mmlab.core.units import PAGE_BYTES
from mmlab.sim import era_facts, memory
from mmlab.study.wording import fmt_s, fmt_size


def _kernel(kernel: object, era: object) -> str:
    return str(kernel) if str(era) == str(kernel) else f"{kernel} ({era} era)"


def _faulted(pages: float) -> str:
    pages = int(pages) if pd.notna(pages) else 0
    return f"{fmt_size(pages * PAGE_BYTES)} ({pages:,} pages)" if pages else "nothing"


def oom_outcomes(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per simulated kernel: what its OOM path came to and when, how many of the bystanders it
    killed, and what the victim's exit faulted in. `rows` holds one row per killed process (the
    simulator's oom-kill rows) and the scenario's number of bystanders."""
    out = []
    for kernel, g in rows.groupby("kernel", sort=False):
        by = g[g["role"] == "bystander"]
        victim = g[g["role"] == "victim"]
        total = int(g["bystanders"].iloc[0]) if "bystanders" in g else len(by)
        killed = int((~by["survived"].astype(bool)).sum())
        out.append({"kernel": _kernel(kernel, g["era"].iloc[0]),
                    "outcome": memory.label(str(g["outcome"].iloc[0])).replace("-", " "),
                    "settled after": fmt_s(float(g["outcome_s"].iloc[0])),
                    "bystanders killed": f"{killed} of {total}",
                    "victim's exit faulted in": _faulted(victim["exit_pages_faulted"].iloc[0]) if len(victim) else "no victim"})
    return pd.DataFrame(out, columns=["kernel", "outcome", "settled after", "bystanders killed", "victim's exit faulted in"])


def oom_kills(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per process of the simulated OOM, named by its role (the victim, bystander 1, 2, ...):
    whether and when it was killed, how long until it was reaped, and what its exit faulted in."""
    out = []
    for kernel, g in rows.groupby("kernel", sort=False):
        n = 0
        for _, r in g.iterrows():
            if r["role"] == "bystander":
                n += 1
                who = f"bystander {n}"
            else:
                who = f"the {r['role']}"
            killed = not bool(r["survived"]) and pd.notna(r["start_to_kill_s"])
            out.append({"kernel": _kernel(kernel, r["era"]), "process": who,
                        "fate": f"killed at {fmt_s(float(r['start_to_kill_s']))}" if killed else "survived",
                        "kill to reap": fmt_s(float(r["kill_to_reap_s"])) if killed and pd.notna(r["kill_to_reap_s"]) else "",
                        "its exit faulted in": _faulted(r["exit_pages_faulted"]) if killed else ""})
    return pd.DataFrame(out, columns=["kernel", "process", "fate", "kill to reap", "its exit faulted in"])


def behaviours(table: pd.DataFrame) -> pd.DataFrame:
    """`eras.table(...)` with each behaviour's column named in words (`oom_reaper` -> `OOM reaper`)."""
    names = {k: v.split(" (")[0] if len(v) > 40 else v for k, v in era_facts.BEHAVIOURS.items()}
    return table.rename(columns={"era": "era", "versions": "kernel versions", **names})


def sources(table: pd.DataFrame) -> pd.DataFrame:
    """`eras.table(..., sources=True)` folded: one row per behaviour and value, with the eras that share
    it, what the kernel did and the source, instead of one row per era and behaviour."""
    key = ["behaviour", "value", "what the kernel did", "source"]
    folded = table.groupby(key, sort=False)["era"].agg(lambda e: ", ".join(dict.fromkeys(e))).reset_index()
    order = {b: i for i, b in enumerate(dict.fromkeys(table["behaviour"]))}
    folded = folded.sort_values("behaviour", key=lambda b: b.map(order), kind="stable")
    return folded.rename(columns={"era": "eras"})[["behaviour", "value", "eras", "what the kernel did", "source"]].reset_index(drop=True)
