"""prepatch-replay at small sizes: the replay faults in what mlock never reached, costs more than the
modern exit, and at a memory cgroup limit meets an OOM kill or ENOMEM."""
import pytest

import mmlab
from mmlab.core.units import PAGE_BYTES
from mmlab.experiments.prepatch_replay import kernel_at_least

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
