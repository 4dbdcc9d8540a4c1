"""Interactive explorers (ipywidgets) for the notebooks: the simulator live, stored real data as filters.

Each explorer draws its default figure as an ordinary output (so the static HTML, where no kernel runs the
widgets and the runner's template replaces the controls with a note, shows a sensible figure), then shows
the controls. A moved control redraws that same output in place (a display id), so a live notebook shows
one figure, never the default and a redrawn copy. A choice that cannot run here (a profile not calibrated,
a scenario the model refuses) puts one line where the figure was, never a traceback. Controls offer only
what can run on this machine, label themselves in full, and show sizes as sizes.
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
_STYLE = {"description_width": "initial"}  # labels in full, not cut to ipywidgets' default 90 px


def profiles() -> list[str]:
    """Machine profiles that can price a simulation here: `host` only once `mmlab calibrate` saved one."""
    from mmlab.sim.profile import NAMED, by_name

    out = []
    for name in NAMED:
        try:
            by_name(name)
        except Exception:  # not available here: not offered
            continue
        out.append(name)
    return out


def _figure_or_line(draw: Callable[..., object], values: Mapping[str, object]):
    """draw(**values), or one Markdown line saying why this choice cannot be drawn here."""
    from IPython.display import Markdown

    from mmlab.core.params import ParamError

    plt = pyplot()
    try:
        fig = draw(**values)
    except (ParamError, ValueError, KeyError) as e:
        plt.close("all")
        return Markdown(f"*Cannot draw this choice here: {' '.join(str(e).split())}*")
    plt.close(fig)
    return fig


def explorer(draw: Callable[..., object], controls: Mapping[str, object], defaults: Mapping[str, object],
             note: str = "", draw_default: bool = True) -> object:
    """Draw `draw(**defaults)` now (the static figure), then return a box of `controls` whose changes
    redraw that figure in place. `controls` maps draw()'s keyword names to ipywidgets. With
    `draw_default=False` (the notebook drew the default itself) a moved control draws in one place below."""
    import ipywidgets as w
    from IPython.display import Markdown, display

    handle = display(_figure_or_line(draw, defaults) if draw_default else Markdown(""), display_id=True)
    if note:
        display(Markdown(note))

    def redraw(_change=None):
        handle.update(_figure_or_line(draw, {k: c.value for k, c in controls.items()}))

    for c in controls.values():
        c.style = _STYLE
        if isinstance(c, (w.IntSlider, w.SelectionSlider)):
            c.layout.width = "340px"  # a full label leaves the track room
        c.observe(redraw, names="value")
    box = w.VBox([w.HBox(list(controls.values())[:3]), w.HBox(list(controls.values())[3:])])
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
    and the other modelled kernels (faint), the chosen point marked; where an exit runs the machine out
    of memory there is no time: a cross along the top, and the chosen point says what happened."""
    plt = pyplot()

    from mmlab import sim
    from mmlab.sim import memory

    vma = int(vma_mib) << 20
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for k in KERNELS:
        d = sigkill_curve(vma, k, profile)
        main = k == kernel
        line, = ax.plot(d["populated_fraction"] * 100, d["kill_to_reap_s"], lw=2.2 if main else 1,
                        alpha=1 if main else 0.45, label=f"simulated {k}")
        gone = d[~d["outcome"].isin(memory.FINISHED)]
        if len(gone):  # no time where the machine ran out of memory: crosses along the top, one row per kernel
            ax.scatter(gone["populated_fraction"] * 100, [0.98 - 0.04 * KERNELS.index(k)] * len(gone), marker="X",
                       s=30 if main else 15, alpha=1 if main else 0.45, color=line.get_color(),
                       transform=ax.get_xaxis_transform(), clip_on=False)
        if main:
            ax.fill_between(d["populated_fraction"] * 100, d["kill_to_reap_s_lo"], d["kill_to_reap_s_hi"], alpha=0.2)
            at = sim.SCENARIOS["sigkill-during-mlock"].run({"kernel": kernel, "profile": profile, "vma_bytes": vma,
                                                            "populated_bytes": int(vma * populated_pct / 100) // 4096 * 4096}).iloc[0]
            if at["outcome"] in memory.FINISHED:
                y = float(at["kill_to_reap_s"])
                ax.plot([populated_pct], [y], "ko")
                ax.annotate(f"{y:.3g} s", (populated_pct, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
            else:
                ax.annotate(f"{kernel} at {populated_pct}%: no time, {memory.label(at['outcome'])}",
                            (populated_pct, 0.8), xycoords=ax.get_xaxis_transform(), fontsize=8, color="#b42318",
                            ha="center", va="top")
    ax.set_yscale("log")
    ax.set_xlim(-2, 102)
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
        "vma_mib": w.SelectionSlider(options=[(format_bytes(2 ** k << 20), 2 ** k) for k in range(6, 17)], value=vma_mib,
                                     description="VMA size"),
        "populated_pct": w.IntSlider(value=populated_pct, min=0, max=100, step=5, description="populated when killed (%)"),
        "kernel": w.Dropdown(options=KERNELS, value=kernel, description="kernel era"),
        "profile": w.Dropdown(options=profiles(), value=profile if profile in profiles() else "reference",
                              description="machine profile"),
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
        "vma_gib": w.SelectionSlider(options=[(format_bytes(2.0 ** k * (1 << 30)), 2.0 ** k) for k in range(-4, 11)],
                                     value=min((2.0 ** k for k in range(-4, 11)), key=lambda g: abs(g - vma_gib)),
                                     description="VMA size"),
        "populated_fraction": w.FloatSlider(value=populated_fraction, min=0, max=1, step=0.05,
                                            description="populated when killed (share)"),
        "writable": w.Checkbox(value=writable, description="writable"),
        "mapping": w.Dropdown(options=["anon-private", "file-private", "file-shared"], value=mapping, description="mapping"),
    }
    return explorer(draw, controls, dict(vma_gib=vma_gib, populated_fraction=populated_fraction, writable=writable,
                                         mapping=mapping),
                    note="*Above: the default view. The controls redraw it in JupyterLab (`make lab`), not in the static report.*")


def wakabayashi_explorer(free_mib: int = 1024, swap_mb_s: float = 50.0, swap_mib: int = 2048,
                         fault_zero_us: float = 1.3, draw_default: bool = False):
    """Knobs: the 2009 desktop's free memory (+ clean page cache), swap bandwidth and size, and zero-fill
    fault cost; Wakabayashi's test re-simulated on that machine (the default is the stated desktop-2009
    profile). Too little swap for the pre-patch exit shows its outcome instead of a bar."""
    import ipywidgets as w

    from mmlab.sim import figures, validate
    from mmlab.sim.profile import desktop_2009

    def draw(free_mib, swap_mb_s, swap_mib, fault_zero_us):
        prof = desktop_2009()
        for knob, v in (("free_and_cache_MiB", free_mib), ("swap_MB_s", swap_mb_s), ("swap_MiB", swap_mib),
                        ("fault_zero_us", fault_zero_us)):
            prof = validate.KNOBS[knob][2](prof, v)
        return figures.wakabayashi_bars(validate.wakabayashi(prof))

    controls = {
        "free_mib": w.SelectionSlider(options=[(format_bytes(m << 20), m) for m in range(256, 1793, 128)],
                                      value=min(range(256, 1793, 128), key=lambda m: abs(m - free_mib)),
                                      description="free + cache"),
        "swap_mb_s": w.FloatLogSlider(value=swap_mb_s, base=10, min=1, max=2.5, description="swap MB/s"),
        "swap_mib": w.SelectionSlider(options=[(format_bytes(m << 20), m) for m in range(256, 4097, 256)],
                                      value=min(range(256, 4097, 256), key=lambda m: abs(m - swap_mib)),
                                      description="swap size"),
        "fault_zero_us": w.FloatSlider(value=fault_zero_us, min=0.5, max=3, step=0.1, description="zero-fill fault (µs)"),
    }
    return explorer(draw, controls, dict(free_mib=free_mib, swap_mb_s=swap_mb_s, swap_mib=swap_mib,
                                         fault_zero_us=fault_zero_us), draw_default=draw_default)


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
        "limit_mib": w.SelectionSlider(options=[(format_bytes(m << 20), m) for m in (64, 128, 256, 512, 1024, 2048)],
                                       value=limit_mib, description="memory limit"),
        "bystanders": w.IntSlider(value=bystanders, min=0, max=6, description="bystanders"),
        "kernel": w.Dropdown(options=KERNELS, value=kernel, description="kernel era"),
        "profile": w.Dropdown(options=profiles(), value=profile if profile in profiles() else "reference",
                              description="machine profile"),
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

    def options(col: str) -> list:
        values = sorted(rows[col].dropna().unique())
        label = format_bytes if col.endswith("_bytes") else str
        return [(ALL, ALL), *((label(v), str(v)) for v in values)]  # sizes shown as sizes; the value matches filtered()

    controls = {f: w.Dropdown(options=options(f), value=ALL, description=f.removesuffix("_bytes").replace("_", " "))
                for f in present}

    def draw(**choices):
        return draw_measured(rows, x, y, hue, title, **choices)

    return explorer(draw, controls, {f: ALL for f in present},
                    note="*All stored rows above. With a live kernel, filter them with the controls below; the figure redraws in place.*")
