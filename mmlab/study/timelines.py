"""The OOM kill as a timeline: the kernel's own events (traced oom-kill rows) beside the simulated eras.

Everything is on one axis, milliseconds since the victim's mlock() began: the real rows carry their
`k_*` phases on that origin (mmlab.experiments.traced), and the simulator starts its clock at mlock().
Events are mapped to one vocabulary so a real tracepoint and the simulator's step it corresponds to
share a name and a marker:

| step           | real (tracepoint)                          | simulated (sim.oom event)        |
|----------------|--------------------------------------------|----------------------------------|
| limit          | first vmscan:mm_vmscan_memcg_reclaim_begin | first alloc_stall                |
| kill           | oom:mark_victim (SIGKILL just before)      | oom_kill                         |
| exit begins    | sched:sched_process_exit                   | exit_mm                          |
| memory freed   | mmap:exit_mmap (end of the teardown)       | last unmap_progress              |
| reaper         | oom:finish_task_reaping                    | oom_reaper                       |
| gone           | sched:sched_process_free                   | reaped                           |
"""
from __future__ import annotations

import math

import pandas as pd

# real phase column -> (step, label)
REAL_STEPS: tuple[tuple[str, str, str], ...] = (
    ("k_limit_s", "limit", "memcg reclaim at the limit (first)"),
    ("k_oom_invoked_s", "oom report", "OOM report begins (printk)"),
    ("k_signal_generate_s", "kill", "SIGKILL generated"),
    ("k_mark_victim_s", "kill", "oom:mark_victim"),
    ("k_signal_deliver_s", "exit begins", "SIGKILL delivered"),
    ("k_sched_process_exit_s", "exit begins", "sched_process_exit (do_exit)"),
    ("k_wake_reaper_s", "reaper", "oom:wake_reaper"),
    ("k_start_task_reaping_s", "reaper", "oom:start_task_reaping"),
    ("k_finish_task_reaping_s", "reaper", "oom:finish_task_reaping"),
    ("k_exit_mmap_s", "memory freed", "mmap:exit_mmap (teardown done)"),
    ("k_sched_process_free_s", "gone", "sched_process_free"),
)
USER_STEPS: tuple[tuple[str, str], ...] = (("start_to_kill_s", "user space sees the kill (oom_kill count)"),
                                           ("start_to_exit_s", "user space sees the exit (pidfd)"))
STEP_ORDER = ("limit", "oom report", "kill", "exit begins", "reaper", "memory freed", "gone")
_SIM_STEPS = {"alloc_stall": "limit", "oom_kill": "kill", "exit_mm": "exit begins", "oom_reaper": "reaper",
              "reaped": "gone"}
_MARKERS = {"limit": "|", "oom report": "x", "kill": "X", "exit begins": "o", "reaper": "s", "memory freed": "D",
            "gone": "*"}


def traced_victims(rows: pd.DataFrame) -> pd.DataFrame:
    """Victim rows with kernel events, measured repeats only (warm-ups too if nothing else was traced)."""
    if "k_mark_victim_s" not in rows:
        return rows.iloc[0:0]
    d = rows[(rows["role"] == "victim") & rows["k_mark_victim_s"].notna()]
    if "warmup" in d and (~d["warmup"].astype(bool)).any():
        d = d[~d["warmup"].astype(bool)]
    return d


def typical_repeat(rows: pd.DataFrame) -> int | None:
    """The measured, traced repeat whose victim's kernel teardown (SIGKILL to exit_mmap) is the median one."""
    d = traced_victims(rows)
    if d.empty:
        return None
    d = d.sort_values("k_kill_to_exit_mmap_s")
    return int(d["repeat"].iloc[(len(d) - 1) // 2])


def _proc_label(role: str, pid: int, n: int) -> str:
    return "victim" if role == "victim" else f"bystander {n}"


def real_events(rows: pd.DataFrame, repeat: int | None = None) -> pd.DataFrame:
    """Tidy events of one traced oom-kill repeat (default: the typical one): source, process, role, pid,
    step, event, time_ms (since mlock()), and `kernel` True for tracepoints, False for user-space marks."""
    repeat = typical_repeat(rows) if repeat is None else repeat
    if repeat is None:
        return pd.DataFrame(columns=["source", "process", "role", "pid", "step", "event", "time_ms", "kernel"])
    d = rows[rows["repeat"] == repeat]
    if "run_id" in d and d["run_id"].nunique() > 1:
        d = d[d["run_id"] == d["run_id"].iloc[-1]]
    out, n = [], 0
    for _, r in d.sort_values(["role", "pid"], ascending=[False, True]).iterrows():
        if r["role"] != "victim":
            n += 1
        proc = _proc_label(r["role"], int(r["pid"]), n)
        for col, step, label in REAL_STEPS:
            t = r.get(col)
            if t is not None and not (isinstance(t, float) and math.isnan(t)):
                out.append({"source": "real", "process": proc, "role": r["role"], "pid": int(r["pid"]),
                            "step": step, "event": label, "time_ms": float(t) * 1e3, "kernel": True})
        for col, label in USER_STEPS:
            t = r.get(col)
            if t is not None and not (isinstance(t, float) and math.isnan(t)):
                out.append({"source": "real", "process": proc, "role": r["role"], "pid": int(r["pid"]),
                            "step": "user space", "event": label, "time_ms": float(t) * 1e3, "kernel": False})
    return pd.DataFrame(out).sort_values("time_ms", ignore_index=True) if out else real_events(rows.iloc[0:0])


def simulated_events(tl: pd.DataFrame) -> pd.DataFrame:
    """The simulator's timelines (sim.oom.timeline, several kernels) in the same vocabulary."""
    out = []
    for _kernel, g in tl.groupby("kernel", sort=False):
        era = g["era"].iloc[0]
        done = g[g["event"] == "outcome"]
        outcome = str(done["detail"].iloc[-1]) if len(done) else None
        g = g[g["pid"] > 0]
        names = {}
        for _, e in g.iterrows():
            pid = int(e["pid"])
            names.setdefault(pid, "victim" if e["role"] == "victim" else f"bystander {pid - 1}")
        for pid, p in g.groupby("pid"):
            seen: set[str] = set()
            for _, e in p.iterrows():
                step = _SIM_STEPS.get(e["event"])
                if step and (step not in seen or step == "kill"):
                    seen.add(step)
                    out.append({"source": f"simulated {era}", "process": names[pid], "role": e["role"], "pid": pid,
                                "step": step, "event": e["event"], "time_ms": float(e["time_s"]) * 1e3, "kernel": True,
                                "outcome": outcome})
            unmaps = p[p["event"] == "unmap_progress"]
            if len(unmaps):
                out.append({"source": f"simulated {era}", "process": names[pid], "role": p["role"].iloc[0], "pid": pid,
                            "step": "memory freed", "event": "last unmap_progress",
                            "time_ms": float(unmaps["time_s"].iloc[-1]) * 1e3, "kernel": True, "outcome": outcome})
    return pd.DataFrame(out)


def simulate_like(rows: pd.DataFrame, kernels: tuple[str, ...] = ("2.6.31", "2.6.32", "3.12", "6.18"),
                  profile: str = "reference") -> pd.DataFrame:
    """Simulated timelines of the real run's scenario, as the summary simulates it
    (series.oom_sim_values: the group's limit as the machine's RAM, its bystanders, the victim's mlock)."""
    from mmlab.sim.oom import OomParams, timeline
    from mmlab.study.series import oom_sim_values

    v = oom_sim_values(rows, {})
    return pd.concat([timeline(OomParams(kernel=k, profile=profile, chunk_bytes=1 << 20, **v)) for k in kernels],
                     ignore_index=True)


def _panel(ax, ev: pd.DataFrame, procs: list[str], colors: dict) -> None:
    ys = {p: i for i, p in enumerate(procs)}
    for step, g in ev[ev["kernel"]].groupby("step", sort=False):
        ax.scatter(g["time_ms"], [ys[p] for p in g["process"]], marker=_MARKERS.get(step, "o"), s=55,
                   color=colors[step], label=step, zorder=3, alpha=0.85)
    user = ev[~ev["kernel"]]
    if len(user):
        ax.scatter(user["time_ms"], [ys[p] - 0.3 for p in user["process"]], marker="^", s=35,
                   facecolors="none", edgecolors="black", label="user space (parent)", zorder=3)
    for p, g in ev[ev["kernel"]].groupby("process"):
        if len(g) > 1:
            ax.hlines(ys[p], g["time_ms"].min(), g["time_ms"].max(), color="grey", lw=1, alpha=0.5, zorder=1)
    ax.set_yticks(range(len(procs)), procs)
    ax.set_ylim(-0.7, len(procs) - 0.4)
    ax.grid(axis="x", alpha=0.3)


def _colors() -> dict:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {s: cmap(i) for i, s in enumerate(STEP_ORDER)}


def plot_real(ev: pd.DataFrame, title: str = "oom-kill (real): the kernel's own timeline of one OOM kill"):
    """One traced OOM kill, one line per event (kernel order, the parent's own marks last), a marker
    per process it concerns, at ms since mlock(); the time is written beside each marker."""
    import matplotlib.pyplot as plt

    colors = _colors()
    ev = ev.copy()
    labels = list(dict.fromkeys(ev[ev["kernel"]].sort_values("time_ms")["event"])) + \
        list(dict.fromkeys(ev[~ev["kernel"]]["event"]))
    ys = {lab: i for i, lab in enumerate(labels[::-1])}
    procs = list(dict.fromkeys(ev.sort_values("role", ascending=False)["process"]))
    markers = dict(zip(procs, ["o", "s", "D", "^", "v", "P"]))
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.38 * len(labels)))
    for _, e in ev.iterrows():
        c = colors.get(e["step"], "black")
        ax.scatter(e["time_ms"], ys[e["event"]], marker=markers[e["process"]], s=50, zorder=3,
                   color=c if e["kernel"] else "none", edgecolors=c if e["kernel"] else "black")
        ax.annotate(f"{e['time_ms']:.1f}", (e["time_ms"], ys[e["event"]]), xytext=(6, -3), textcoords="offset points",
                    fontsize=7)
    for p, m in markers.items():
        ax.scatter([], [], marker=m, color="grey", label=p)
    ax.set_yticks(list(ys.values()), list(ys.keys()), fontsize=8)
    ax.set_xlabel("time since the victim's mlock() began (ms)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", title="process", title_fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def align(ev: pd.DataFrame, on: str = "kill") -> pd.DataFrame:
    """Times shifted, per source, so that the victim's first `on` step is at 0."""
    out = []
    for _, g in ev.groupby("source", sort=False):
        t0 = g[(g["role"] == "victim") & (g["step"] == on)]["time_ms"].min()
        out.append(g.assign(time_ms=g["time_ms"] - (t0 if pd.notna(t0) else 0.0)))
    return pd.concat(out, ignore_index=True) if out else ev


def plot_beside_simulated(real: pd.DataFrame, sim: pd.DataFrame, on: str | None = "kill",
                          title: str = "oom-kill: this kernel, traced (real), beside the simulated eras"):
    """The real kernel timeline on top, one panel per simulated era below, on one shared time axis:
    ms since the victim's mlock() began, or, with `on`, since the victim's first event of that step
    (default the kill), so the order and timing of what follows can be compared."""
    import matplotlib.pyplot as plt

    ev = pd.concat([real, sim], ignore_index=True)
    if on:
        ev = align(ev, on)
    sources = list(dict.fromkeys(ev["source"]))
    procs = sorted(set(ev["process"]), key=lambda p: (p != "victim", p))[::-1]
    colors = _colors()
    fig, axes = plt.subplots(len(sources), 1, figsize=(10, 0.9 + (0.45 * len(procs) + 0.5) * len(sources)),
                             sharex=True, squeeze=False)
    for ax, src in zip(axes[:, 0], sources):
        g = ev[ev["source"] == src]
        _panel(ax, g, procs, colors)
        outcome = g["outcome"].dropna().iloc[0] if "outcome" in g and g["outcome"].notna().any() else ""
        name = "real: this kernel's tracepoints" if src == "real" else src
        ax.set_title(f"{name}{': ' + outcome if outcome else ''}", fontsize=9, loc="left")
    axes[-1, 0].set_xlabel(f"time since the victim's {on} (ms)" if on else "time since the victim's mlock() began (ms)")
    handles: dict = {}
    for ax in axes[:, 0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    axes[0, 0].legend(handles.values(), handles.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def reaper_summary(rows: pd.DataFrame) -> dict:
    """What the traced repeats say about the OOM reaper and the victim's own exit (measured, warm-ups
    excluded): repeats traced, repeats where the reaper ran, median ms from mark_victim to the end of
    exit_mmap (and how much of do_exit..exit_mmap was on a CPU), to sched_process_free, to the reaper's
    finish, and the bytes the reaper took where it ran."""
    d = traced_victims(rows) if "role" in rows else rows.iloc[0:0]
    if d.empty:
        return {"traced_repeats": 0}
    ran = d[d["k_start_task_reaping_s"].notna()]

    def med(s: pd.Series) -> float:
        return float(s.median() * 1e3) if len(s.dropna()) else float("nan")

    oncpu = d["k_exit_to_exit_mmap_oncpu_s"] if "k_exit_to_exit_mmap_oncpu_s" in d else pd.Series(dtype=float)
    return {"traced_repeats": len(d), "reaper_ran": len(ran),
            "mark_to_exit_mmap_ms": med(d["k_exit_mmap_s"] - d["k_mark_victim_s"]),
            "exit_to_exit_mmap_oncpu_ms": med(oncpu),
            "mark_to_free_ms": med(d["k_sched_process_free_s"] - d["k_mark_victim_s"]),
            "mark_to_reaper_done_ms": med(ran["k_finish_task_reaping_s"] - ran["k_mark_victim_s"]),
            "user_kill_to_reap_ms": med(d["kill_to_reap_s"]),
            "user_kill_lag_ms": med(d["start_to_kill_s"] - d["k_mark_victim_s"]),
            "reaped_bytes": float(ran["k_reaped_bytes"].median()) if len(ran) else 0.0}


def reaper_sentence(stored: pd.DataFrame) -> str:
    """One sentence for the summary: what this kernel's tracepoints say about the OOM reaper in the
    stored oom-kill rows (measured), or that none were traced."""
    rows = stored[stored["experiment"] == "oom-kill"] if "experiment" in stored else stored
    s = reaper_summary(rows)
    n = s["traced_repeats"]
    if not n:
        return "No traced oom-kill rows: this kernel's OOM reaper is not measured here."
    if s["reaper_ran"]:
        did = (f"the OOM reaper ran in {s['reaper_ran']} of {n} traced repeats, done a median "
               f"{s['mark_to_reaper_done_ms']:.1f} ms after `mark_victim`, reaping {s['reaped_bytes'] / (1 << 20):.0f} MiB")
    else:
        did = (f"the OOM reaper ran in none of {n} traced repeats: it is queued 2 s after the kill and skips a "
               "victim whose own exit has already freed its memory")
    oncpu = s["exit_to_exit_mmap_oncpu_ms"]
    oncpu_s = f" ({oncpu:.1f} ms of its teardown on a CPU)" if math.isfinite(oncpu) else ""
    return (f"This kernel's tracepoints (measured, {n} traced repeats, medians): {did}; the victim's own exit "
            f"ended `exit_mmap` {s['mark_to_exit_mmap_ms']:.1f} ms after `mark_victim`{oncpu_s} and the task was "
            f"freed {s['mark_to_free_ms']:.1f} ms after it.")


def kernel_timeline(rows: pd.DataFrame):
    """(figure or None, a sentence): notebook 04's real timeline of the typical traced repeat, or why
    there is none (tracing was off or could not run: the rows' own reason)."""
    repeat = typical_repeat(rows)
    if repeat is None:
        why = rows["trace_skipped"].dropna().iloc[0] if "trace_skipped" in rows and rows["trace_skipped"].notna().any() \
            else "the rows carry no kernel events"
        return None, f"No kernel timeline: not traced ({why})."
    n = len(traced_victims(rows))
    ev = real_events(rows, repeat)
    fig = plot_real(ev, f"oom-kill (real): the kernel's own timeline of repeat {repeat}")
    return fig, (f"Repeat {repeat}, the median SIGKILL-to-`exit_mmap` of {n} traced repeats. Filled markers are "
                 "tracepoints, open ones what the parent saw from user space; time since the victim's mlock() began.")


def stored_traced_oom(host_tag: str | None = None) -> pd.DataFrame:
    """The newest stored oom-kill run with kernel events (of this host when given), or no rows."""
    from mmlab.core import store

    rows = store.load(experiment="oom-kill")
    if rows.empty or "k_mark_victim_s" not in rows:
        return rows.iloc[0:0]
    if host_tag is not None and "env.host_tag" in rows:
        rows = rows[rows["env.host_tag"] == host_tag]
    traced = rows[rows["k_mark_victim_s"].notna()]
    if traced.empty:
        return traced
    return rows[rows["run_id"] == traced["run_id"].max()]


def beside_simulated(rows: pd.DataFrame, kernels: tuple[str, ...], profile: str, on: str | None = "kill"):
    """(figure or None, a sentence): notebook 06's real kernel timeline beside the eras simulated for
    the same scenario (the run's limit, lock and bystanders), or why there is none."""
    if rows.empty or typical_repeat(rows) is None:
        return None, ("No traced real OOM kill is stored for this host (notebook 04 stores one when it can trace: "
                      "root and tracefs), so only the simulated timelines are shown above.")
    real = real_events(rows)
    sim = simulated_events(simulate_like(rows, tuple(kernels), profile))
    fig = plot_beside_simulated(real, sim, on=on)
    r = rows.iloc[0]
    run = f" (run {r['run_id']})" if "run_id" in rows else ""
    v = rows[(rows["repeat"] == typical_repeat(rows)) & (rows["role"] == "victim")].iloc[0]
    oncpu = v.get("k_exit_to_exit_mmap_oncpu_s", float("nan"))
    teardown = (f" There, from `do_exit` to the end of `exit_mmap` took {v['k_exit_to_exit_mmap_s'] * 1e3:.1f} ms, "
                f"{oncpu * 1e3:.1f} ms of it on a CPU (sched_switch): the rest the victim was off the CPU, which "
                "the simulator does not model." if pd.notna(oncpu) else "")
    return fig, (f"The real panel is the typical traced repeat of the newest stored oom-kill run{run}: "
                 f"limit {int(r['limit_bytes']) >> 20} MiB, mlock of {int(r['lock_bytes']) >> 20} MiB, "
                 f"{int(r['bystanders'])} bystanders of {int(r['bystander_bytes']) >> 20} MiB. The eras are simulated "
                 f"for that scenario with the `{profile}` profile, as the summary simulates it (the limit as the machine's RAM); "
                 f"times are since each victim's kill.{teardown}")
