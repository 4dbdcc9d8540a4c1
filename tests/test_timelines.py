"""The OOM kill's timelines: kernel events of a traced real run and the simulated eras in one vocabulary."""
from __future__ import annotations

import pandas as pd
import pytest

from mmlab.kernel import trace
from mmlab.study import timelines

from .conftest import FIXTURES, needs_root
from .test_trace import BYSTANDERS, ORIGIN_S, VICTIM


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """oom-kill rows as the experiment writes them, with the phases of the traced fixture."""
    ev = trace.parse((FIXTURES / "trace_oom_kill.txt").read_text())
    base = {"repeat": 1, "warmup": False, "limit_bytes": 256 << 20, "lock_bytes": 1 << 30, "bystanders": 2,
            "bystander_bytes": 32 << 20}
    k = trace.phases(ev, VICTIM, ORIGIN_S)
    out = [{**base, "role": "victim", "pid": VICTIM, "start_to_kill_s": k["k_mark_victim_s"] + 0.002,
            "start_to_exit_s": k["k_exit_mmap_s"] + 0.001, "kill_to_reap_s": 0.03, **k}]
    out += [{**base, "role": "bystander", "pid": b, "start_to_kill_s": float("nan"), "start_to_exit_s": float("nan"),
             "kill_to_reap_s": float("nan"), **trace.phases(ev, b, ORIGIN_S)} for b in BYSTANDERS]
    return pd.DataFrame(out)


def test_real_events_follow_the_kernels_order(rows):
    ev = timelines.real_events(rows)
    v = ev[(ev["process"] == "victim") & ev["kernel"]].sort_values("time_ms")
    steps = list(dict.fromkeys(v["step"]))
    assert steps == ["limit", "oom report", "kill", "exit begins", "memory freed", "gone"]
    assert set(ev[~ev["kernel"]]["event"]) == {label for _, label in timelines.USER_STEPS}


def test_survivors_have_no_kernel_events_in_the_oom_episode(rows):
    ev = timelines.real_events(rows)
    assert set(ev["process"]) == {"victim"}


def test_each_simulated_era_kills_its_victim_before_its_exit_frees_memory(rows):
    """The real run's scenario simulated: in every era the victim is killed, and where its memory is
    freed, that comes after the kill; each era is its own source, named for the era."""
    sim = timelines.simulated_events(timelines.simulate_like(rows, kernels=("2.6.31", "6.18")))
    assert set(sim["source"]) == {"simulated 2.6.31", "simulated 6.1"}
    for _, g in sim[sim["role"] == "victim"].groupby("source"):
        t = g.groupby("step")["time_ms"].min()
        assert "kill" in t and t["kill"] <= t["exit begins"]
        if "memory freed" in t:
            assert t["kill"] < t["memory freed"]


def test_aligning_on_the_kill_puts_each_victims_kill_at_zero(rows):
    sim = timelines.simulated_events(timelines.simulate_like(rows, kernels=("6.18",)))
    ev = timelines.align(pd.concat([timelines.real_events(rows), sim], ignore_index=True))
    kills = ev[(ev["role"] == "victim") & (ev["step"] == "kill")].groupby("source")["time_ms"].min()
    assert (kills.abs() < 1e-9).all() and len(kills) == 2


def test_reaper_summary_says_the_reaper_did_not_run(rows):
    s = timelines.reaper_summary(rows)
    assert s["traced_repeats"] == 1 and s["reaper_ran"] == 0 and s["reaped_bytes"] == 0
    assert 0 < s["mark_to_exit_mmap_ms"] < s["mark_to_free_ms"]


# ---------------------------------------------------------------------------------------- notebooks
def _markdown(tmp_path, name, parameters) -> str:
    import nbformat
    import papermill

    from .test_sim_notebooks import ROOT

    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / name), str(out), parameters=parameters, kernel_name="python3",
                               progress_bar=False, cwd=str(tmp_path))
    nb = nbformat.read(out, as_version=4)
    return " ".join(o["data"]["text/markdown"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
                    if "text/markdown" in o.get("data", {}))


@pytest.mark.notebook
def test_06_says_so_when_no_traced_oom_kill_is_stored(tmp_path):
    said = _markdown(tmp_path, "06-simulated-before-after.ipynb",
                     {"vma_sizes": "256MiB", "populated_fractions": "0,1", "oom_vma_bytes": "7GiB"})
    assert "No traced real OOM kill is stored" in said


@pytest.mark.notebook
@needs_root
def test_04_draws_the_kernels_timeline_and_states_its_figures(tmp_path):
    """04, traced at tiny sizes: the kernel timeline's caption and the kernel's figures in the findings."""
    said = _markdown(tmp_path, "04-oom-kill.ipynb", {"limit_bytes": "64MiB", "lock_bytes": "128MiB", "bystanders": 1,
                                                       "bystander_bytes": "4MiB", "repeats": 2, "warmup": 0})
    assert "SIGKILL-to-`exit_mmap` of 2 traced repeats" in said and "The kernel's own events (2 traced repeats" in said
