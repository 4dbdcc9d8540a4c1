"""munlock-partial simulated: munlock() of a partly populated VM_LOCKED range."""
from mmlab.sim import SCENARIOS

S = SCENARIOS["munlock-partial"]


def test_2631_munlock_faults_the_unpopulated_half():
    """2.6.31 munlock() runs the write-GUP loop too: the unpopulated half of a 1 GiB range is faulted in."""
    r = S.run({"kernel": "2.6.31", "vma_bytes": "1GiB", "populated_fraction": 0.5}).iloc[0]
    assert r.pages_faulted == (1 << 29) // 4096


def test_518_munlock_of_an_untouched_64gib_range_costs_about_a_syscall():
    """Empty page tables are skipped: munlock() of an untouched 64 GiB onfault range is microseconds."""
    r = S.run({"kernel": "6.18", "vma_bytes": "64GiB", "populated_fraction": 0}).iloc[0]
    assert r.munlock_s < 20e-6 and r.pages_faulted == 0


def test_2632_munlock_of_an_untouched_range_grows_with_its_size():
    """follow_page per address: 2.6.32 pays a walk for each of the 16 M absent pages of 64 GiB."""
    r = S.run({"kernel": "2.6.32", "vma_bytes": "64GiB", "populated_fraction": 0}).iloc[0]
    assert r.munlock_s > 0.1


def test_strided_layout_costs_pte_walks_on_518():
    """A sparse (strided) population costs 5.18+ pte_none steps that a prefix population does not."""
    a = S.run({"kernel": "6.18", "populated_fraction": 0.25, "layout": "strided"}).iloc[0]
    b = S.run({"kernel": "6.18", "populated_fraction": 0.25, "layout": "prefix"}).iloc[0]
    assert a.populated_bytes == b.populated_bytes and a.munlock_s > b.munlock_s


def test_2631_munlock_dirties_the_absent_half_of_a_shared_writable_file():
    """munlock() of a shared writable file range write-faults its absent pages: dirtied, nothing allocated."""
    r = S.run({"kernel": "2.6.31", "vma_bytes": "1GiB", "populated_fraction": 0.5, "mapping": "file-shared"}).iloc[0]
    assert r.pages_dirtied == r.pages_faulted == (1 << 29) // 4096 and r.bytes_allocated == 0 and r.writeback_s > 0


def test_2632_munlock_of_a_shared_writable_file_dirties_nothing():
    """follow_page munlock: no fault, so nothing dirtied and no writeback owed."""
    r = S.run({"kernel": "2.6.32", "vma_bytes": "1GiB", "populated_fraction": 0.5, "mapping": "file-shared"}).iloc[0]
    assert r.pages_dirtied == r.pages_faulted == 0 and r.writeback_s == 0
