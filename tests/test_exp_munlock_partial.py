"""munlock-partial at small sizes: the partly populated VM_LOCKED states are what they claim, and
munlock() neither faults anything in nor frees anything, and costs what is populated."""
import os

import pytest

import mmlab
from mmlab.core.units import PAGE_BYTES
from mmlab.experiments import munlock_partial

from .conftest import MLOCKED_SLACK_BYTES, needs_root
from .test_exp_safety import groups_of, hold_machine, run_between_counts

MiB = 1 << 20
PAGE = PAGE_BYTES
pytestmark = needs_root


@pytest.fixture(scope="module")
def result():
    return run_between_counts("munlock-partial", vma_bytes="32MiB,256MiB", populated_fractions="0,0.5", repeats=2, warmup=0)


def rows(result, variant):
    d = result[0].rows
    return d[d["variant"] == variant]


def test_onfault_populates_exactly_the_requested_fraction(result):
    """mlock2(MLOCK_ONFAULT) populates nothing; MADV_POPULATE_WRITE then makes the fraction present."""
    d = rows(result, "onfault")
    assert ((d["populated_fraction"] - d["target_populated_fraction"]).abs() < 0.01).all()


def test_populated_pages_are_mlocked_while_the_range_is_locked(result):
    """System Mlocked rises by the populated bytes between before and the populated state, plus the
    probes populated in turns with them, which are locked too until each is timed."""
    d = rows(result, "onfault")
    rise = d["sys_mlocked_populated_bytes"] - d["sys_mlocked_before_bytes"]
    assert ((rise - d["populated_bytes"] - d["probe_held_bytes"]).abs() <= 64 * PAGE).all()


def test_cgroup_limit_mlock_gives_up_with_eagain_part_way(result):
    """In a v1 memory group with oom_kill_disable 1, mlock() returns EAGAIN having populated up to the limit."""
    d = rows(result, "cgroup-limit")
    assert len(d) and (d["lock_errno"] == "EAGAIN").all()
    assert ((d["populated_fraction"] > 0.2) & (d["populated_fraction"] < 0.9)).all()
    assert (d["populated_bytes"] <= d["cgroup_limit_bytes"]).all()


def test_munlock_faults_nothing_in_and_frees_nothing(result):
    """After munlock() the resident pages are exactly the populated ones: no unreached page was faulted
    in (the 2.6.31 behaviour) and none was freed."""
    d = result[0].rows
    # RSS read by the parent from /proc before and after the timed munlock(): unchanged within a few pages
    # (the child's own Python may touch a page or two between the reads), once the probes held at the first
    # read, unmapped after their timing, are counted out
    change = d["rss_after_bytes"] - d["rss_populated_bytes"] + d["probe_held_bytes"]
    assert (change.abs() <= 16 * PAGE).all()


def test_munlock_unlocks_every_populated_page(result):
    """System Mlocked after munlock() is back where it was before the range was locked."""
    d = result[0].rows
    assert ((d["sys_mlocked_after_bytes"] - d["sys_mlocked_before_bytes"]).abs() <= 64 * PAGE).all()


def test_munlock_of_an_untouched_range_is_cheap_whatever_its_size(result):
    """munlock() of a VM_LOCKED range with nothing populated takes well under a millisecond at 32 MiB and 256 MiB."""
    d = rows(result, "onfault")
    assert (d.loc[d["populated_bytes"] == 0, "munlock_s"] < 1e-3).all()


def test_munlock_cost_follows_the_populated_pages(result):
    """With half populated, the 256 MiB range (8x the pages) takes over 3x as long as the 32 MiB one."""
    d = rows(result, "onfault")
    half = d[d["target_populated_fraction"] == 0.5].groupby("vma_bytes")["munlock_s"].median()
    assert half[256 * MiB] > 3 * half[32 * MiB]


def test_nothing_is_left_behind(result):
    _, before, after = result
    assert abs(after - before) <= MLOCKED_SLACK_BYTES
    assert groups_of(os.getpid()) == []


def test_cgroup_limit_variant_is_skipped_with_the_reason_on_cgroup_v2(monkeypatch, isolated_store):
    """On cgroup v2 (no oom_kill_disable) the cgroup-limit variant is skipped and the rows say why; the
    stored run keeps the reason (Parquet drops DataFrame.attrs, so it travels in run.json)."""
    from mmlab.core import store
    from mmlab.kernel import cgroup

    monkeypatch.setattr(munlock_partial, "hierarchy", lambda: (cgroup.Hierarchy(2, cgroup.CGROUP_ROOT), ""))
    r = mmlab.experiment("munlock-partial", vma_bytes="4MiB", populated_fractions="0.5", repeats=1, warmup=0,
                         progress=False)
    assert set(r.rows["variant"]) == {"onfault"}
    assert "oom_kill_disable" in r.rows.attrs["skipped"]["cgroup-limit"]
    assert "skipped" in munlock_partial.findings(r.rows)
    stored = mmlab.load(runs=[r.run_dir.name])
    assert set(stored["variant"]) == {"onfault"}
    why = stored.attrs["skipped_parts"][r.run_dir.name]["munlock-partial"]["cgroup-limit"]
    assert why == r.rows.attrs["skipped"]["cgroup-limit"]
    assert "oom_kill_disable" in store.runs_table().set_index("run_id").at[r.run_dir.name, "skipped_parts"]


def test_warming_calls_leave_the_range_locked_for_the_timed_munlock(result):
    """The zero-length munlock() calls before the timed one are no-ops: with half the range populated the
    timed call still has every populated page to munlock, so it costs far more than one of them."""
    d = rows(result, "onfault")
    half = d[d["target_populated_fraction"] == 0.5]
    assert len(half) and (half["munlock_null_s"] > 0).all()
    assert (half["munlock_s"] > 20 * half["munlock_null_s"]).all()


def test_probes_are_populated_in_turns_with_the_target_in_both_variants(result):
    """A row with pages populated holds its two probes (2 x probe_bytes, fully populated) from the populate
    on, onfault and cgroup-limit alike; a row with nothing populated probes fresh VMAs, holding none then."""
    d = result[0].rows
    populated = d[d["target_populated_fraction"] > 0]
    assert set(populated["variant"]) == {"onfault", "cgroup-limit"}
    assert (populated["probe_layout"] == "interleaved").all()
    assert (populated["probe_held_bytes"] == 2 * populated["probe_bytes"]).all() and (populated["probe_bytes"] > 0).all()
    empty = d[d["target_populated_fraction"] == 0]
    assert len(empty) and (empty["probe_layout"] == "separate").all() and (empty["probe_held_bytes"] == 0).all()


def test_at_the_limit_the_probes_do_not_change_where_mlock_gives_up(result):
    """The group's limit makes room for the probes populated in turns with the target, so mlock() gives up
    where it does without probes, within a few pages of kernel bookkeeping."""
    with hold_machine():
        bare = mmlab.experiment("munlock-partial", vma_bytes="32MiB,256MiB", populated_fractions="0.5",
                                variants="cgroup-limit", repeats=2, warmup=0, probe_bytes=0, save=False,
                                progress=False).rows
    assert (bare["probe_skipped"] == "probe_bytes is 0").all()
    d = rows(result, "cgroup-limit")
    for vma, g in d.groupby("vma_bytes"):
        without = bare[bare["vma_bytes"] == vma]["populated_bytes"].median()
        assert abs(g["populated_bytes"].median() - without) <= 16 * PAGE, (vma, g["populated_bytes"].median(), without)


def test_probe_prices_the_same_work_as_the_timed_munlock(result):
    """Each row's probes (munlock() of a fully populated locked VMA, just before and just after) ran, and
    the geometric mean of their per-page costs times the row's populated pages is the row's munlock() time
    within 3x: the same operation per present page, so the model check can price the row at it."""
    d = rows(result, "onfault")
    assert d["probe_skipped"].isna().all() and (d["probe_munlock_ns_per_page"] > 0).all()
    centre = (d["probe_munlock_before_ns_per_page"] * d["probe_munlock_after_ns_per_page"]) ** 0.5
    assert ((centre - d["probe_munlock_ns_per_page"]).abs() < 1e-6).all()
    half = d[d["target_populated_fraction"] == 0.5]
    ratio = half["populated_pages"] * half["probe_munlock_ns_per_page"] * 1e-9 / half["munlock_s"]
    assert ratio.between(1 / 3, 3).all(), ratio.tolist()
