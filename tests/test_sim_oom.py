"""oom-kill simulated: outcomes per era of a victim that mlocks beyond free memory."""
import pytest

from mmlab.core.params import ParamError
from mmlab.sim import SCENARIOS
from mmlab.sim.oom import OomParams, timeline

S = SCENARIOS["oom-kill"]
SMALL = {"ram_bytes": "2GiB", "free_bytes": "1GiB", "vma_bytes": "2GiB", "bystander_bytes": "128MiB"}


def run(kernel, **extra):
    return S.run({**SMALL, "kernel": kernel, **extra})


def test_2631_victim_abandons_its_vma_and_bystanders_die():
    """Released 2.6.31: the invisible dying victim faults in its unreached pages until a TIF_MEMDIE
    allocation fails (VM_FAULT_OOM, munlock gives up the VMA); meanwhile the OOM killer takes bystanders."""
    df = run("2.6.31")
    assert df.outcome.iloc[0] == "bystander-killed"
    assert (~df[df.role == "bystander"].survived).any()
    tl = timeline(OomParams(**SMALL, kernel="2.6.31"))
    assert (tl.event == "vma_abandoned").any()


def test_2631_rc_victim_loops_through_the_oom_killer_until_none_is_left_and_panics():
    """2.6.31-rc1..rc4: the failed TIF_MEMDIE allocation retries via out_of_memory, which kills every
    bystander; with nothing killable left, __out_of_memory panics."""
    df = run("2.6.31-rc")
    assert df.outcome.iloc[0] == "panic"
    assert not df[df.role == "bystander"].survived.any()


def test_mmotm_ksm_variant_hangs_with_the_victim_never_reaped():
    """Hugh Dickins' August 2009 mmotm (KSM's ksm_test_exit in the fault path): the exit fault never
    installs a pte, GUP retries forever, the victim never goes."""
    df = run("2.6.31-mmotm")
    assert df.outcome.iloc[0] == "hung"
    assert df[df.role == "victim"].kill_to_reap_s.isna().all()


def test_3_12_holds_off_kills_while_4_9_and_4_19_kill_a_bystander():
    """3.12: the TIF_MEMDIE victim holds off further kills for its whole exit, every bystander lives;
    4.9 (reaper sets MMF_OOM_SKIP) and 4.19 (exit_mmap sets it first) let the next OOM kill a bystander."""
    assert run("3.12").outcome.iloc[0] == "recovered"
    for k in ("4.9", "4.19"):
        df = run(k)
        assert df.outcome.iloc[0] == "bystander-killed", k
        assert df.era.iloc[0] != run("3.12").era.iloc[0]
    assert run("4.9").era.iloc[0] != run("4.19").era.iloc[0]


def test_4_9_reaper_skips_the_mlocked_vma_and_frees_nothing_of_the_victim():
    """4.6-5.17 reapers skip VM_LOCKED VMAs: the victim's reaper pass frees 0 bytes."""
    tl = timeline(OomParams(**SMALL, kernel="4.9"))
    passes = tl[(tl.event == "oom_reaper") & (tl.role == "victim")]
    assert len(passes) == 1 and "reaped 0 bytes" in passes.detail.iloc[0]


def test_no_killable_task_is_a_panic():
    """OOM with nothing left to kill panics ("Out of memory and no killable processes...")."""
    assert run("2.6.31-rc", bystanders=0).outcome.iloc[0] == "panic"


@pytest.mark.parametrize("kernel", ["5.18", "6.18"])
def test_518_recovers_with_every_bystander_alive(kernel):
    """5.18+: the victim is chosen, exits without faulting anything, every bystander survives."""
    df = run(kernel)
    assert df.outcome.iloc[0] == "recovered"
    assert df[df.role == "bystander"].survived.all()
    assert not df[df.role == "victim"].survived.iloc[0]


def test_2631_victim_faults_pages_during_exit_and_518_none():
    """Exit faults: > 0 pages on 2.6.31, none on 5.18+."""
    assert run("2.6.31").query("role == 'victim'").exit_pages_faulted.iloc[0] > 0
    assert run("6.18").query("role == 'victim'").exit_pages_faulted.iloc[0] == 0


def test_2631_victim_is_chosen_by_total_vm_even_when_smaller_in_rss():
    """badness() counts total_vm: the mlocker is killed first though a bystander has more RSS."""
    df = S.run({"kernel": "2.6.31", "ram_bytes": "4GiB", "free_bytes": "1GiB", "vma_bytes": "2GiB",
                "bystanders": 1, "bystander_bytes": "1536MiB"})
    first = df.sort_values("start_to_kill_s").iloc[0]
    assert first.role == "victim"


def test_518_kills_a_bystander_larger_than_what_the_victim_populated():
    """oom_badness counts RSS: a bystander bigger than the victim's populated part dies first (MEASURING.md)."""
    df = S.run({"kernel": "6.18", "ram_bytes": "4GiB", "free_bytes": "1GiB", "vma_bytes": "3GiB",
                "bystanders": 1, "bystander_bytes": "1536MiB"})
    assert not df[df.role == "bystander"].survived.iloc[0]


def test_simulation_is_deterministic():
    """Ties resolve by (time, priority, sequence): two runs give identical rows."""
    a, b = run("2.6.31"), run("2.6.31")
    assert a.equals(b)


def test_timeline_records_kills_and_memory():
    """The timeline has the OOM kills in time order and free memory at each event."""
    tl = timeline(OomParams(**SMALL, kernel="2.6.31"))
    kills = tl[tl.event == "oom_kill"]
    assert len(kills) >= 2 and kills.time_s.is_monotonic_increasing
    assert (tl.free_bytes >= 0).all()


def test_victim_that_fits_in_free_memory_is_a_clear_error():
    """No OOM without a victim bigger than free memory: rejected naming vma_bytes."""
    with pytest.raises(ParamError, match="parameter vma_bytes"):
        S.run({**SMALL, "vma_bytes": "256MiB"})


def test_bystanders_that_do_not_fit_in_ram_are_a_clear_error():
    """free memory plus bystanders beyond RAM is rejected naming free_bytes."""
    with pytest.raises(ParamError, match="parameter free_bytes"):
        S.run({**SMALL, "bystanders": 20})
