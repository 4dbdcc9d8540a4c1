"""sigkill-during-mlock simulated: pages faulted at exit per era, exit cost against unreached pages."""
import pytest

from mmlab.core.params import ParamError
from mmlab.sim import SCENARIOS

S = SCENARIOS["sigkill-during-mlock"]


def row(**values):
    return S.run(values).iloc[0]


def test_contract_2631_faults_196608_pages_for_1gib_with_256mib_populated():
    """1 GiB VMA, 256 MiB populated: 2.6.31 faults in the 768 MiB mlock never reached = 196608 pages."""
    r = row(kernel="2.6.31", vma_bytes="1GiB", populated_bytes="256MiB")
    assert r.exit_pages_faulted == 196608 and r.exit_bytes_allocated == 768 << 20


def test_contract_2632_faults_nothing():
    """Same point on 2.6.32: 0 pages faulted in at exit."""
    assert row(kernel="2.6.32", vma_bytes="1GiB", populated_bytes="256MiB").exit_pages_faulted == 0


def test_rows_sit_beside_real_ones():
    """Rows carry the real experiment's name and columns, method = simulated."""
    r = row(kernel="6.18")
    assert (r.experiment, r.method, r.era) == ("sigkill-during-mlock", "simulated", "6.1")
    assert r.kill_to_reap_s == r.exit_s and r.exit_s_lo <= r.exit_s <= r.exit_s_hi


def test_2631_read_only_vma_faults_nothing_at_exit():
    """A read-only anonymous VMA gets ZERO_PAGE at exit on 2.6.31: no page faulted or allocated."""
    r = row(kernel="2.6.31", writable=False)
    assert r.exit_pages_faulted == 0 and r.exit_bytes_allocated == 0


def test_2631_exit_cost_grows_with_unreached_pages():
    """On 2.6.31 the same populated size in a bigger VMA costs more: unreached pages are faulted in."""
    small = row(kernel="2.6.31", vma_bytes="1GiB", populated_bytes="256MiB").exit_s
    big = row(kernel="2.6.31", vma_bytes="8GiB", populated_bytes="256MiB").exit_s
    assert big > 5 * small


def _per_unreached_page_s(kernel):
    small = row(kernel=kernel, vma_bytes="1GiB", populated_bytes="256MiB")
    big = row(kernel=kernel, vma_bytes="8GiB", populated_bytes="256MiB")
    return (big.exit_s - small.exit_s) / (big.unreached_pages - small.unreached_pages)


@pytest.mark.parametrize("kernel", ["2.6.32", "3.12"])
def test_follow_page_eras_pay_only_a_walk_per_unreached_page(kernel):
    """2.6.32/3.12 follow_page each absent address: a walk, over 10x cheaper than 2.6.31's fault and zero."""
    assert 0 < _per_unreached_page_s(kernel) < _per_unreached_page_s("2.6.31") / 10


def test_518_exit_cost_does_not_grow_with_unreached_pages():
    """5.18+ has no munlock pass at exit: unreached pages cost nothing."""
    assert _per_unreached_page_s("6.18") == 0


def test_518_1tib_vma_exits_as_fast_as_1gib():
    """On 5.18+, a 1 TiB VMA and a 1 GiB one with the same populated size exit in the same time (MEASURING.md)."""
    a = row(kernel="6.18", vma_bytes="1TiB", populated_bytes="256MiB").exit_s
    b = row(kernel="6.18", vma_bytes="1GiB", populated_bytes="256MiB").exit_s
    assert abs(a - b) / b < 0.01


def test_2631_mlock_stops_at_the_kill_time():
    """Killed after t seconds, mlock has populated what it could in t at the profile's rate."""
    r = row(kernel="2.6.31", vma_bytes="4GiB", kill_at="time", kill_after_s=0.1)
    assert r.mlock_s <= 0.1 and 0 < r.populated_bytes < 4 << 30


def test_populated_beyond_vma_is_a_clear_error():
    """populated_bytes larger than vma_bytes is rejected naming populated_bytes."""
    with pytest.raises(ParamError, match="parameter populated_bytes"):
        row(vma_bytes="1GiB", populated_bytes="2GiB")


def test_unknown_profile_is_a_clear_error():
    """A profile that is neither a known name nor a .json path is rejected naming `profile`."""
    with pytest.raises(ParamError, match="parameter profile"):
        row(profile="laptop")


def test_bad_size_is_a_clear_error():
    """A size that does not parse is rejected with the allowed range."""
    with pytest.raises(ParamError, match="parameter vma_bytes.*allowed"):
        row(vma_bytes="lots")


def _exit_at_limit(kernel, oom_kill):
    from mmlab.sim import eras, profile, sigkill

    return sigkill.run(eras.era_for(kernel), profile.reference(), 16384, 4096, room_pages=6144, oom_kill=oom_kill)


def test_2631_exit_stopped_by_a_cgroup_limit_with_the_oom_killer_pays_one_oom_kill():
    """2.6.31 at a memory cgroup's limit: the pass faults the room and stops; with default OOM handling
    the group's OOM killer runs once, costing the kill (oom_kill_s, which includes the reclaim retries) and
    the victim's way from SIGKILL to do_exit (oom_kill_to_exit_s) where the same exit failing with ENOMEM
    costs only the reclaim retries (memcg_limit_s)."""
    from mmlab.sim import profile

    enomem, killed = _exit_at_limit("2.6.31", False), _exit_at_limit("2.6.31", True)
    assert enomem["exit_pages_faulted"] == killed["exit_pages_faulted"] == 6144
    assert (enomem["exit_oom_kills"], killed["exit_oom_kills"]) == (0, 1)
    ref = profile.reference()
    assert killed["exit_s"] - enomem["exit_s"] == pytest.approx(ref["oom_kill_s"] + ref["oom_kill_to_exit_s"]
                                                               - ref["memcg_limit_s"])


@pytest.mark.parametrize("kernel", ["2.6.32", "6.18"])
def test_later_eras_never_reach_the_limit_at_exit(kernel):
    """2.6.32+ allocate nothing at exit, so a limit never stops them and no OOM kill is priced."""
    r = _exit_at_limit(kernel, True)
    assert r["exit_pages_faulted"] == 0 and r["exit_oom_kills"] == 0


# --- file mappings: 2.6.31's exit munlock write-GUP on VM_WRITE (mm/mlock.c __mlock_vma_pages_range @ v2.6.31)
def _file_per_unreached_page_s(kernel, **values):
    small = row(kernel=kernel, vma_bytes="1GiB", populated_bytes="256MiB", **values)
    big = row(kernel=kernel, vma_bytes="2GiB", populated_bytes="256MiB", **values)
    return (big.exit_s - small.exit_s) / (big.unreached_pages - small.unreached_pages)


def test_2631_exit_dirties_every_unreached_page_of_a_shared_writable_file():
    """__do_fault with FAULT_FLAG_WRITE on a VM_SHARED VMA dirties the page: every unreached page is dirtied
    at exit and its writeback is owed (writeback_ns each)."""
    from mmlab.sim.profile import reference

    r = row(kernel="2.6.31", mapping="file-shared", vma_bytes="1GiB", populated_bytes="256MiB")
    assert r.exit_pages_dirtied == r.exit_pages_faulted == 196608 and r.exit_bytes_allocated == 0
    assert r.exit_writeback_s == pytest.approx(196608 * reference()["writeback_ns"] * 1e-9)


def test_2631_shared_writable_file_exit_costs_more_per_unreached_page_than_a_read_only_one():
    """Write fault (page_mkwrite, set_page_dirty) against a read fault of the same cached page."""
    rw = _file_per_unreached_page_s("2.6.31", mapping="file-shared")
    ro = _file_per_unreached_page_s("2.6.31", mapping="file-shared", writable=False)
    assert rw > 2 * ro > 0
    assert row(kernel="2.6.31", mapping="file-shared", writable=False).exit_pages_dirtied == 0


def test_2631_shared_file_exit_past_the_dirty_limit_writes_back_in_its_own_time():
    """balance_dirty_pages throttles the dirtier: with 1 GiB free (dirty limit ~205 MiB), the exit of a 2 GiB
    shared VMA writes back every page past the limit itself, so its time grows by their writeback."""
    from mmlab.sim.profile import reference

    few = row(kernel="2.6.31", mapping="file-shared", vma_bytes="2GiB", populated_bytes="256MiB")
    tight = row(kernel="2.6.31", mapping="file-shared", vma_bytes="2GiB", populated_bytes="256MiB", free_bytes="1GiB")
    assert few.exit_pages_throttled == 0 and tight.exit_pages_throttled > 0.8 * tight.exit_pages_dirtied
    extra = tight.exit_pages_throttled * reference()["writeback_ns"] * 1e-9
    assert tight.exit_s - few.exit_s >= extra


def test_2631_cold_page_cache_reads_each_unreached_file_page_first():
    """filemap_fault reads an absent page in before the write fault: cold costs a disk read per page."""
    from mmlab.sim.profile import reference

    warm = row(kernel="2.6.31", mapping="file-shared", page_cache="warm")
    cold = row(kernel="2.6.31", mapping="file-shared", page_cache="cold")
    assert warm.exit_pages_read == 0 and cold.exit_pages_read == cold.exit_pages_faulted
    assert cold.exit_s - warm.exit_s == pytest.approx(cold.exit_pages_read * reference()["file_read_ns"] * 1e-9)


def test_shared_file_exit_past_memory_reads_in_but_never_runs_out():
    """A 64 GiB shared file cannot be all cached on a 24 GiB machine: the exit reads the rest from disk,
    reclaiming clean page cache, and still exits (file pages are not anonymous memory)."""
    r = row(kernel="2.6.31", mapping="file-shared", vma_bytes="64GiB", populated_bytes="256MiB")
    assert r.outcome == "exited" and r.exit_pages_read > 0 and r.exit_pages_reclaimed > 0


def test_2631_private_writable_file_exit_cows_into_anonymous_memory():
    """!VM_SHARED write fault: a new anonymous page per unreached page, copied from the page cache."""
    r = row(kernel="2.6.31", mapping="file-private", vma_bytes="1GiB", populated_bytes="256MiB")
    assert r.exit_bytes_allocated == 768 << 20 and r.exit_pages_dirtied == 0


@pytest.mark.parametrize("kernel", ["2.6.32", "3.12", "6.18"])
def test_later_eras_fault_nothing_of_a_shared_writable_file_at_exit(kernel):
    """follow_page (2.6.32+) and the 5.18+ zap fault nothing: no page dirtied, nothing read, no writeback."""
    r = row(kernel=kernel, mapping="file-shared", vma_bytes="1GiB", populated_bytes="256MiB", page_cache="cold")
    assert (r.exit_pages_faulted, r.exit_pages_dirtied, r.exit_pages_read, r.exit_writeback_s) == (0, 0, 0, 0)


def test_2631_mlock_dirties_a_shared_writable_file_and_2638_only_reads_it():
    """mlock write-GUPs every VM_WRITE VMA until 5ecfda041e4b (2.6.38): the write fault costs more than the read."""
    old = row(kernel="2.6.31", mapping="file-shared").mlock_s
    new = row(kernel="2.6.38", mapping="file-shared").mlock_s
    assert old > 2 * new
