"""prepatch-replay at small sizes: the replay faults in what mlock never reached, costs more than the
modern exit, and at a memory cgroup limit meets an OOM kill or ENOMEM; its in-process probe does the same
work on its own pages and leaves the replay where it would be without it."""
import os

import pytest

import mmlab
from mmlab.core.units import PAGE_BYTES
from mmlab.experiments.prepatch_replay import kernel_at_least, probe_plan

from .conftest import needs_root
from .test_exp_safety import hold_machine

MiB = 1 << 20
PAGE = PAGE_BYTES
pytestmark = needs_root


@pytest.fixture(scope="module")
def rows():
    with hold_machine():
        return mmlab.experiment("prepatch-replay", vma_bytes="32MiB", populated_fraction=0.25, repeats=2, warmup=0, settle_s=0.0,
                                save=False, progress=False).rows


def setting(rows, name):
    return rows[rows["setting"] == name]


def test_every_row_is_a_replay(rows):
    assert set(rows["method"]) == {"replay"}


def test_on_free_memory_the_replay_faults_in_every_unreached_page(rows):
    """Every page mlock never reached is faulted in (mincore) and allocated (RSS), as 2.6.31's exit did."""
    d = setting(rows, "free")
    assert (d["outcome"] == "ok").all()
    assert (d["pages_faulted"] == d["unreached_pages"]).all()
    assert ((d["bytes_allocated"] - d["unreached_pages"] * PAGE).abs() <= 64 * PAGE).all()


def test_the_replay_goes_through_get_user_pages_on_this_kernel(rows):
    """On 5.14+ the fault-in is MADV_POPULATE_WRITE, one minor fault counted per page (GUP faults count)."""
    d = setting(rows, "free")
    assert (d["fault_method"] == ("populate-write" if kernel_at_least(5, 14) else "write-loop")).all()
    assert (d["minflt_replay"] >= d["pages_faulted"]).all()


def test_the_replayed_exit_costs_more_than_the_modern_exit(rows):
    """Faulting in three times the populated pages, then munlock and munmap, takes longer than the modern
    SIGKILL exit of a twin in the same state (which only frees the populated quarter)."""
    d = setting(rows, "free")
    assert d["replay_s"].median() > d["modern_kill_to_reap_s"].median()


def test_memory_handed_back_to_the_host_during_the_replay_is_recorded(rows):
    """Free page reporting's counter only grows: each completed replay row carries how much free memory the
    guest handed back to its host while it ran (NaN on kernels that do not export it)."""
    from mmlab.kernel import procfs

    d = rows[rows["outcome"] != "oom-killed"]
    if procfs.host_reported_kib() is None:
        assert d["host_reported_kib"].isna().all()
    else:
        assert (d["host_reported_kib"] >= 0).all()


def test_at_a_cgroup_limit_the_replay_is_oom_killed(rows):
    """With default OOM handling, the replay that allocates past the group's limit is SIGKILLed by the group."""
    d = setting(rows, "cgroup-oom")
    assert len(d) and (d["outcome"] == "oom-killed").all()
    assert (d["term_signal"] == 9).all() and (d["cgroup_oom_kills"] >= 1).all()


def test_with_oom_kill_disabled_the_replay_fails_with_enomem_part_way(rows):
    """With oom_kill_disable 1, get_user_pages gets ENOMEM at the limit: about half the unreached pages
    (the headroom) are faulted in, not all."""
    d = setting(rows, "cgroup-enomem")
    assert len(d) and (d["outcome"] == "ENOMEM").all()
    frac = d["pages_faulted"] / d["unreached_pages"]
    assert ((frac > 0.3) & (frac < 0.7)).all()


def test_the_write_loop_fallback_is_labelled_and_faults_every_page():
    """fault_method write-loop (the path for kernels before 5.14) is labelled so and faults in every unreached page."""
    d = mmlab.experiment("prepatch-replay", vma_bytes="8MiB", settings="free", fault_method="write-loop",
                         modern_exit=False, repeats=1, warmup=0, settle_s=0.0, save=False, progress=False).rows
    assert (d["fault_method"] == "write-loop").all()
    assert (d["pages_faulted"] == d["unreached_pages"]).all()


@pytest.mark.parametrize("release,expected", [("6.18.44-fc", True), ("5.14.0", True), ("5.13.19", False), ("4.4.0", False)])
def test_kernel_at_least_reads_the_release(release, expected):
    assert kernel_at_least(5, 14, release) is expected


# ------------------------------------------------------------------------------------- the in-row probe
PROBE = 16 * MiB  # the fixture's probe_bytes default


def test_each_replay_row_prices_its_probe_in_positive_finite_ns_per_page(rows):
    """Every row that ran to its end carries the probe's munlock, fault-in and munmap cost per page; an
    OOM-killed row still carries the munlock and fault-in, which ran before the kill."""
    import numpy as np

    done = rows[rows["outcome"] != "oom-killed"]
    killed = rows[rows["outcome"] == "oom-killed"]
    for part, d in [("munlock", rows), ("fault", rows), ("munmap", done)]:
        x = d[f"probe_{part}_ns_per_page"].astype(float)
        assert len(x) and np.isfinite(x).all() and (x > 0).all(), part
    assert len(killed) and killed["probe_munmap_ns_per_page"].isna().all()


def test_the_probe_faults_in_every_absent_page_of_its_own_even_at_the_limit(rows):
    """The group's limit leaves room for the probe's fault-in, so in every setting it faults in all its
    absent pages: three quarters of the probe at populated_fraction 0.25."""
    assert (rows["probe_fault_pages"] == PROBE * 3 // 4 // PAGE).all()
    assert (rows["probe_munlock_pages"] == PROBE // 4 // PAGE).all()


def test_the_probe_faults_in_turns_with_the_replay_and_its_faults_are_its_own(rows):
    """The probe's fault-in runs in turns with the replay's: on free memory beside all of it, at a limit
    beside the first three quarters of what the limit lets the replay fault in, so the probe is done before
    the limit stops the replay. The replay's minor-fault count is its own pages', not those plus the
    probe's three quarters."""
    assert len(rows) and (rows["probe_layout"] == "interleaved").all()
    free, limited = setting(rows, "free"), rows[rows["setting"] != "free"]
    assert (free["probe_span_bytes"] == free["unreached_pages"] * PAGE).all()
    room = (limited["unreached_pages"] * PAGE * limited["headroom_fraction"])
    assert len(limited) and ((limited["probe_span_bytes"] - room * 0.75).abs() <= PAGE).all()
    done = rows[rows["outcome"] != "oom-killed"]
    assert ((done["minflt_replay"] - done["pages_faulted"]) < done["probe_fault_pages"] / 2).all()


def test_the_replays_fault_in_splits_at_the_span_the_probe_ran_beside(rows):
    """On free memory the probe runs beside the whole fault-in, so the span's time is all of it; at a
    group's limit the replay goes on after the span up to the limit, which takes time too; the span's
    per-page cost is the probe's within 3x (the same fault, in turns)."""
    free = setting(rows, "free")
    assert len(free) and ((free["fault_span_s"] - free["fault_s"]).abs() < 1e-9).all()
    enomem = setting(rows, "cgroup-enomem")
    assert len(enomem) and (enomem["fault_span_s"] < enomem["fault_s"]).all()
    per = rows["fault_span_s"] * 1e9 / (rows["probe_span_bytes"] / PAGE) / rows["probe_fault_ns_per_page"]
    assert per.between(1 / 3, 3).all(), per.tolist()


def test_the_allocation_the_row_reports_is_the_replays_alone(rows):
    """bytes_allocated excludes the probe's fault-in, which ran in the same window: on free memory it is
    the unreached pages, not those plus three quarters of the probe."""
    d = setting(rows, "free")
    assert ((d["bytes_allocated"] - d["unreached_pages"] * PAGE).abs() <= 64 * PAGE).all()


def test_at_the_limit_the_probe_does_not_change_how_far_the_replay_gets(rows):
    """Without a probe, at the same headroom, the replay meets the same outcome in each cgroup setting and
    ENOMEM stops it at the same page count, within a few pages of kernel bookkeeping: the limit makes room
    for the probe's fault-in and the page tables it needs."""
    with hold_machine():
        bare = mmlab.experiment("prepatch-replay", vma_bytes="32MiB", populated_fraction=0.25, repeats=2, warmup=0,
                                settle_s=0.0, settings="cgroup-oom,cgroup-enomem", modern_exit=False, probe_bytes=0,
                                save=False, progress=False).rows
    assert bare["probe_fault_ns_per_page"].isna().all() and (bare["probe_skipped"] == "probe_bytes is 0").all()
    for name in ("cgroup-oom", "cgroup-enomem"):
        assert set(setting(bare, name)["outcome"]) == set(setting(rows, name)["outcome"]), name
    with_probe = setting(rows, "cgroup-enomem")["pages_faulted"].median()
    without = setting(bare, "cgroup-enomem")["pages_faulted"].median()
    assert abs(with_probe - without) <= 6, (with_probe, without)


@pytest.fixture
def probe_steps(monkeypatch):
    """The probe alone in a child, with the parent reading its /proc status between steps."""
    from mmlab.kernel import procfs
    from mmlab.kernel.child import Child

    from .conftest_reliability import ROOT

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    steps = {}
    with hold_machine(), Child("tests.replay_probe_targets:probe_steps", timeout_s=60, size=PROBE,
                               populated_fraction=0.25) as c:
        for step in ("built", "munlocked", "faulted", "unmapped"):
            msg = c.expect(step)
            steps[step] = {**msg, **procfs.status(c.pid)}
            c.reply()
        c.expect("done")
    return steps


def test_the_probes_munlock_leaves_its_pages_present_and_unlocked(probe_steps):
    """munlock() of the probe drops VmLck by the probe's whole size and unlocks its present pages
    without freeing them: a quarter of the probe present before and after."""
    built, unlocked = probe_steps["built"], probe_steps["munlocked"]
    assert built["VmLck"] - unlocked["VmLck"] == PROBE
    assert built["resident_bytes"] == unlocked["resident_bytes"] == PROBE // 4
    assert unlocked["probe_munlock_pages"] == PROBE // 4 // PAGE


def test_the_probes_fault_in_and_munmap_allocate_and_free_its_pages(probe_steps):
    """The fault-in makes every probe page present (RSS up by the absent three quarters); munmap() frees
    them all (RSS down by the whole probe) and counts them."""
    unlocked, faulted, unmapped = probe_steps["munlocked"], probe_steps["faulted"], probe_steps["unmapped"]
    assert faulted["resident_bytes"] == PROBE and faulted["probe_fault_pages"] == PROBE * 3 // 4 // PAGE
    assert abs(faulted["VmRSS"] - unlocked["VmRSS"] - PROBE * 3 // 4) <= 64 * PAGE
    assert abs(faulted["VmRSS"] - unmapped["VmRSS"] - PROBE) <= 64 * PAGE
    assert unmapped["probe_munmap_pages"] == PROBE // PAGE


@pytest.mark.parametrize("lockable,expected", [(1 << 40, 16 * MiB), (4 * MiB + 100, 4 * MiB), (512 * 1024, 0)])
def test_the_probe_fits_what_rlimit_memlock_leaves(lockable, expected):
    """Without CAP_IPC_LOCK the probe can lock only what RLIMIT_MEMLOCK leaves beside the VMA: it shrinks
    to that in whole pages, and under the 1 MiB minimum it is skipped, saying why."""
    size, why = probe_plan(16 * MiB, lockable, 0.25)
    assert size == expected
    assert (why is None) if expected else "RLIMIT_MEMLOCK" in why


def test_a_probe_that_cannot_hold_absent_pages_is_skipped():
    """At populated_fraction 1 the replay faults nothing in, and a probe with no absent page has nothing to
    price: skipped, saying why, as is a probe of 0 bytes."""
    assert probe_plan(16 * MiB, 1 << 40, 1.0)[0] == 0
    assert probe_plan(0, 1 << 40, 0.25) == (0, "probe_bytes is 0")


def test_a_negative_probe_size_is_refused_in_one_line():
    from mmlab.core.params import ParamError
    from mmlab.experiments.prepatch_replay import ReplayParams

    with pytest.raises(ParamError, match="probe_bytes.*allowed"):
        ReplayParams.from_mapping({"probe_bytes": "-1MiB"})


def test_an_oom_killed_replays_time_leaves_the_probes_work_out(rows):
    """The parent times an OOM-killed replay up to the reap: of that wall time, what the probe's munlock()
    and fault-in took (timed in the child) is not the replay's, so replay_s is the wall time less at least
    the probe's fault-in, and still at least the replay's own munlock()."""
    d = setting(rows, "cgroup-oom")
    probe_s = (d["probe_fault_ns_per_page"] * d["probe_fault_pages"] + d["probe_munlock_ns_per_page"] * d["probe_munlock_pages"]) * 1e-9
    assert len(d) and (d["replay_wall_s"] - d["replay_s"] >= probe_s * 0.99).all()
    assert (d["replay_s"] >= d["munlock_s"]).all() and (d["munlock_s"] > 0).all()
