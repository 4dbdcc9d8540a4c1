"""Interactive explorers (ipywidgets) for the notebooks: the simulator live, stored real data as filters.

Each explorer first draws its default figure as an ordinary output, then shows the controls with an
empty output area that a moved knob fills. So the static HTML (where no kernel runs the widgets, and
the runner's template replaces the widget with a note) still shows a sensible figure, and a live
notebook does not show the default twice.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from mmlab.core.figure import pyplot
from mmlab.core.stats import measured_rows
from mmlab.core.units import PAGE_BYTES, format_bytes
from mmlab.sim.eras import RELEASED

KERNELS = tuple(e.name for e in RELEASED)


def _show(fig) -> None:
    from IPython.display import display

    plt = pyplot()
    display(fig)
    plt.close(fig)


def explorer(draw: Callable[..., object], controls: Mapping[str, object], defaults: Mapping[str, object],
             note: str = "", draw_default: bool = True) -> object:
    """Draw `draw(**defaults)` now (the static figure; skipped when the notebook drew it already), then
    return a box of `controls` whose changes redraw below it. `controls` maps draw()'s keyword names to
    ipywidgets."""
    import ipywidgets as w
    from IPython.display import Markdown, display

    if draw_default:
        _show(draw(**defaults))
    if note:
        display(Markdown(note))
    out = w.Output()

    def redraw(_change=None):
        with out:
            out.clear_output(wait=True)
            _show(draw(**{k: c.value for k, c in controls.items()}))

    for c in controls.values():
        c.observe(redraw, names="value")
    box = w.VBox([w.HBox(list(controls.values())[:3]), w.HBox(list(controls.values())[3:]), out])
    display(box)
    return box


# --- the simulator, live ---------------------------------------------------------------------------------

def sigkill_curve(vma_bytes: int, kernel: str, profile: str = "reference", steps: int = 11) -> pd.DataFrame:
    """Simulated kill-to-reap seconds (with the model interval) against populated fraction at one VMA size."""
    from mmlab import sim

    s = sim.SCENARIOS["sigkill-during-mlock"]
    frames = [s.run({"kernel": kernel, "profile": profile, "vma_bytes": vma_bytes,
                     "populated_bytes": int(vma_bytes * f) // PAGE_BYTES * PAGE_BYTES})
              for f in np.linspace(0, 1, steps)]
    df = pd.concat(frames, ignore_index=True)
    df["populated_fraction"] = df["populated_bytes"] / df["vma_bytes"]
    return df


def draw_sigkill(vma_mib: int = 1024, populated_pct: int = 25, kernel: str = "2.6.31", profile: str = "reference"):
    """Exit time after SIGKILL during mlock against the populated share, for the chosen kernel (bold)
    and the other modelled kernels (faint), the chosen point marked."""
    plt = pyplot()

    vma = int(vma_mib) << 20
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for k in KERNELS:
        d = sigkill_curve(vma, k, profile)
        main = k == kernel
        ax.plot(d["populated_fraction"] * 100, d["kill_to_reap_s"], lw=2.2 if main else 1, alpha=1 if main else 0.45,
                label=f"simulated {k}")
        if main:
            ax.fill_between(d["populated_fraction"] * 100, d["kill_to_reap_s_lo"], d["kill_to_reap_s_hi"], alpha=0.2)
            y = float(np.interp(populated_pct / 100, d["populated_fraction"], d["kill_to_reap_s"]))
            ax.plot([populated_pct], [y], "ko")
            ax.annotate(f"{y:.3g} s", (populated_pct, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("populated when SIGKILL arrives (% of VMA)")
    ax.set_ylabel("kill to reap (s, log)")
    ax.set_title(f"SIGKILL during mlock(), {format_bytes(vma)} VMA (model; band: its interval)", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def sigkill_explorer(profile: str = "reference", vma_mib: int = 1024, populated_pct: int = 25, kernel: str = "2.6.31"):
    """Knobs: VMA size, populated fraction, kernel era; the simulator answers live."""
    import ipywidgets as w

    controls = {
        "vma_mib": w.SelectionSlider(options=[2 ** k for k in range(6, 17)], value=vma_mib, description="VMA (MiB)"),
        "populated_pct": w.IntSlider(value=populated_pct, min=0, max=100, step=5, description="populated %"),
        "kernel": w.Dropdown(options=KERNELS, value=kernel, description="kernel era"),
        "profile": w.Dropdown(options=["reference", "desktop-2009", "host"], value=profile, description="profile"),
    }
    return explorer(draw_sigkill, controls, dict(vma_mib=vma_mib, populated_pct=populated_pct, kernel=kernel, profile=profile),
                    note="*Above: the default view. The controls redraw it in JupyterLab (`make lab`), not in the static report.*")


def era_explorer(kernels: Sequence[str], profile: str = "reference", vma_gib: float = 1.0,
                 populated_fraction: float = 0.25, writable: bool = True, mapping: str = "anon-private"):
    """Knobs: VMA size, populated share at SIGKILL, writable, mapping; every era in `kernels` is
    re-simulated and drawn side by side."""
    import ipywidgets as w

    from mmlab import sim
    from mmlab.sim import figures

    def draw(vma_gib, populated_fraction, writable, mapping):
        vma = int(vma_gib * (1 << 30)) // PAGE_BYTES * PAGE_BYTES
        rows = pd.concat([sim.SCENARIOS["sigkill-during-mlock"].run(dict(
            kernel=k, profile=profile, vma_bytes=vma, populated_bytes=int(vma * populated_fraction) // PAGE_BYTES * PAGE_BYTES,
            writable=writable, mapping=mapping)) for k in kernels], ignore_index=True)
        return figures.exit_by_era(rows, f"{vma_gib:g} GiB {mapping} {'rw' if writable else 'ro'}, "
                                         f"{populated_fraction:.0%} populated at SIGKILL")

    controls = {
        "vma_gib": w.FloatLogSlider(value=vma_gib, base=2, min=-4, max=10, step=1, description="VMA (GiB)"),
        "populated_fraction": w.FloatSlider(value=populated_fraction, min=0, max=1, step=0.05, description="populated"),
        "writable": w.Checkbox(value=writable, description="writable"),
        "mapping": w.Dropdown(options=["anon-private", "file-private", "file-shared"], value=mapping, description="mapping"),
    }
    return explorer(draw, controls, dict(vma_gib=vma_gib, populated_fraction=populated_fraction, writable=writable,
                                         mapping=mapping),
                    note="*Default view above. With a live kernel, move a control to redraw below.*")


def wakabayashi_explorer(free_mib: int = 1024, swap_mb_s: float = 50.0, fault_zero_us: float = 1.3,
                         draw_default: bool = False):
    """Knobs: the 2009 desktop's free memory, swap bandwidth and zero-fill fault cost; Wakabayashi's test
    re-simulated on that machine (the default is the stated desktop-2009 profile)."""
    import ipywidgets as w

    from mmlab.sim import figures, validate
    from mmlab.sim.profile import desktop_2009

    def draw(free_mib, swap_mb_s, fault_zero_us):
        prof = desktop_2009().replace(reclaim_ns=PAGE_BYTES / (swap_mb_s * 1e6) * 1e9, fault_zero_ns=fault_zero_us * 1e3)
        return figures.wakabayashi_bars(validate.wakabayashi(prof, int(free_mib) << 20))

    controls = {
        "free_mib": w.IntSlider(value=free_mib, min=256, max=1792, step=128, description="free (MiB)"),
        "swap_mb_s": w.FloatLogSlider(value=swap_mb_s, base=10, min=1, max=2.5, description="swap MB/s"),
        "fault_zero_us": w.FloatSlider(value=fault_zero_us, min=0.5, max=3, step=0.1, description="fault (us)"),
    }
    return explorer(draw, controls, dict(free_mib=free_mib, swap_mb_s=swap_mb_s, fault_zero_us=fault_zero_us),
                    draw_default=draw_default)


def draw_oom(limit_mib: int = 256, bystanders: int = 2, kernel: str = "2.6.31", profile: str = "reference",
             bystander_mib: int = 32):
    """Free memory over time in a simulated OOM: a victim mlocks twice the memory limit beside
    `bystanders`; kills marked; title says the outcome."""
    from mmlab import sim
    from mmlab.sim import oom

    plt = pyplot()

    limit, byb = int(limit_mib) << 20, int(bystander_mib) << 20
    free = max(limit - bystanders * byb, 8 << 20)
    values = {"kernel": kernel, "profile": profile, "ram_bytes": limit, "free_bytes": free, "bystanders": bystanders,
              "bystander_bytes": byb, "reserve_bytes": min(16 << 20, free // 8), "vma_bytes": 2 * limit}
    p = sim.SCENARIOS["oom-kill"].Params.from_mapping(values)
    rows = sim.SCENARIOS["oom-kill"].simulate(p)
    tl = oom.timeline(p)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    if "free_bytes" in tl and len(tl):
        ax.step(tl["time_s"], tl["free_bytes"] / (1 << 20), where="post", label="free memory (MiB)")
        kills = tl[tl["event"].astype(str).str.contains("kill", case=False)] if "event" in tl else tl.iloc[0:0]
        for _, k in kills.iterrows():
            ax.axvline(k["time_s"], color="#b42318" if k.get("role") == "bystander" else "#555", ls=":", lw=1)
    killed = int((~rows[rows["role"] == "bystander"]["survived"].astype(bool)).sum())
    ax.set_xlabel("time (s)")
    ax.set_ylabel("free memory (MiB)")
    ax.set_title(f"simulated {kernel}, limit {limit_mib} MiB: {rows['outcome'].iloc[0]}, "
                 f"{killed} of {bystanders} bystanders killed (dotted: kills)", fontsize=9)
    ax.grid(True, alpha=0.25)
    fig.tight_layout()
    return fig


def oom_explorer(profile: str = "reference", limit_mib: int = 256, bystanders: int = 2, kernel: str = "2.6.31"):
    """Knobs: memory limit, bystanders, kernel era; the OOM simulation answers live."""
    import ipywidgets as w

    controls = {
        "limit_mib": w.SelectionSlider(options=[64, 128, 256, 512, 1024, 2048], value=limit_mib, description="limit (MiB)"),
        "bystanders": w.IntSlider(value=bystanders, min=0, max=6, description="bystanders"),
        "kernel": w.Dropdown(options=KERNELS, value=kernel, description="kernel era"),
        "profile": w.Dropdown(options=["reference", "desktop-2009", "host"], value=profile, description="profile"),
    }
    return explorer(draw_oom, controls, dict(limit_mib=limit_mib, bystanders=bystanders, kernel=kernel, profile=profile),
                    note="*Above: the default view. The controls redraw it in JupyterLab (`make lab`), not in the static report.*")


# --- stored real data, as filters ------------------------------------------------------------------------

ALL = "(all)"


def filtered(rows: pd.DataFrame, choices: Mapping[str, object]) -> pd.DataFrame:
    """Rows matching every chosen filter value (`(all)` keeps everything)."""
    keep = pd.Series(True, index=rows.index)
    for col, v in choices.items():
        if v != ALL and col in rows:
            keep &= rows[col].astype(str) == str(v)
    return rows[keep]


def draw_measured(rows: pd.DataFrame, x: str, y: str, hue: str | None = None, title: str = "", **choices):
    """Measured rows after the filters: median per x (line) and every repeat (points), log y."""
    plt = pyplot()
    d = measured_rows(filtered(rows, choices))
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    if d.empty or y not in d:
        ax.text(0.5, 0.5, "no rows match these filters", ha="center", va="center", transform=ax.transAxes)
        return fig
    groups = d.groupby(hue, sort=True) if hue and hue in d else [("", d)]
    for name, g in groups:
        med = g.groupby(x)[y].median()
        line, = ax.plot(med.index, med.values, marker="o", label=f"{hue} {name} (median)" if hue else "median")
        ax.scatter(g[x], g[y], s=10, alpha=0.5, color=line.get_color())
    ax.set_xscale("log", base=2) if (d[x] > 0).all() and x.endswith("_bytes") else None
    ax.set_yscale("log") if (d[y] > 0).all() else None
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title((title or y) + " (measured; points: repeats)", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def measured_explorer(rows: pd.DataFrame, x: str, y: str, filters: Sequence[str], hue: str | None = None, title: str = ""):
    """Dropdown filters over stored real rows (e.g. run, VMA size, variant); default: everything."""
    import ipywidgets as w

    present = [f for f in filters if f in rows]
    controls = {f: w.Dropdown(options=[ALL, *sorted(rows[f].dropna().astype(str).unique())], value=ALL, description=f[:12])
                for f in present}

    def draw(**choices):
        return draw_measured(rows, x, y, hue, title, **choices)

    return explorer(draw, controls, {f: ALL for f in present},
                    note="*All stored rows above. With a live kernel, filter them with the controls below.*")
