"""The simulated OOM kill and the kernel eras as notebook 06 shows them: counts and roles, never pids."""
import pandas as pd
import pytest

from mmlab.sim import eras, sweeps
from mmlab.study import era_tables


@pytest.fixture(scope="module")
def oom_rows():
    rows, _ = sweeps.oom_side_by_side(sweeps.BeforeAfterParams.from_mapping({"kernels": "2.6.31,2.6.32,6.1"}))
    return rows


def test_outcomes_count_the_bystanders_killed_out_of_those_present(oom_rows):
    """2.6.31's dying victim is invisible to the OOM killer, which kills bystanders (kernel-history 4);
    the table counts them out of all bystanders, and 6.1 kills none."""
    t = era_tables.oom_outcomes(oom_rows).set_index("kernel")
    total = int(oom_rows["bystanders"].iloc[0])
    killed = {k: int((~g.loc[g.role == "bystander", "survived"].astype(bool)).sum()) for k, g in oom_rows.groupby("kernel")}
    assert killed["2.6.31"] > killed["6.1"] == 0
    assert t.loc["2.6.31", "bystanders killed"] == f"{killed['2.6.31']} of {total}"
    assert t.loc["6.1", "bystanders killed"] == f"0 of {total}"


def test_pre_patch_victim_exit_faults_in_its_unreached_pages_in_words(oom_rows):
    """The 2.6.31 victim's exit munlock faulted in the pages mlock never reached: a size with a unit and
    the page count; after the patch nothing."""
    t = era_tables.oom_outcomes(oom_rows).set_index("kernel")
    assert "GiB" in t.loc["2.6.31", "victim's exit faulted in"] and "pages)" in t.loc["2.6.31", "victim's exit faulted in"]
    assert t.loc["6.1", "victim's exit faulted in"] == "nothing"


def test_processes_are_named_by_role_and_no_pid_is_shown(oom_rows):
    """One row per process as `the victim`, `bystander 1`, ...; survivors say so; no pid column."""
    t = era_tables.oom_kills(oom_rows)
    assert not [c for c in t.columns if "pid" in c]
    assert len(t) == len(oom_rows)
    six = t[t["kernel"] == "6.1"]
    assert six["process"].iloc[0] == "the victim" and six["fate"].iloc[0].startswith("killed at ")
    assert (six["process"].iloc[1:] == [f"bystander {i}" for i in range(1, len(six))]).all()
    assert (six["fate"].iloc[1:] == "survived").all()


def test_era_sources_fold_eras_sharing_a_behaviour_and_source():
    """Each (behaviour, value, source) appears once with every era that shares it."""
    keys = ["exit_munlock", "oom_reaper"]
    long = eras.table(["2.6.31", "2.6.32", "6.1"], keys, sources=True)
    folded = era_tables.sources(long)
    assert len(folded) < len(long)
    assert set(", ".join(folded["eras"]).split(", ")) == set(long["era"])
    assert not folded.duplicated(["behaviour", "value", "what the kernel did", "source"]).any()
    assert isinstance(folded.index, pd.RangeIndex)
