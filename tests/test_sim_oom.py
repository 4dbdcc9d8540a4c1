"""oom-kill simulated: outcomes per era of a victim that mlocks beyond free memory."""
import pytest

from mmlab.core.params import ParamError
from mmlab.sim import SCENARIOS
from mmlab.sim.oom import OomParams, timeline

S = SCENARIOS["oom-kill"]
SMALL = {"ram_bytes": "2GiB", "free_bytes": "1GiB", "vma_bytes": "2GiB", "bystander_bytes": "128MiB"}


def run(kernel, **extra):
    return S.run({**SMALL, "kernel": kernel, **extra})


@pytest.mark.parametrize("memdie_alloc", ["retry", "fail"])
def test_2631_hangs_or_kills_a_bystander(memdie_alloc):
    """2.6.31: the dying victim, invisible without ->mm, faults in its unreached pages; bystanders die or the box hangs."""
    df = run("2.6.31", memdie_alloc=memdie_alloc)
    assert df.outcome.iloc[0] in ("hung", "bystander-killed")
    assert (~df[df.role == "bystander"].survived).any()


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
