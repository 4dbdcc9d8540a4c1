"""Era dispatch by version and the per-era munlock physics on run-length address spaces."""
import pytest

from mmlab.core.params import ParamError
from mmlab.sim.address_space import State, Strided, Vma
from mmlab.sim.eras import era_for, exit_mmap, parse_version

GIB_PAGES = (1 << 30) // 4096


@pytest.mark.parametrize("version, era", [("2.6.31", "2.6.31"), ("2.6.31.12", "2.6.31"), ("2.6.32", "2.6.32"),
                                          ("3.0", "2.6.32"), ("3.12", "3.12"), ("5.17.9", "3.12"), ("5.18", "5.18"),
                                          ("6.18", "5.18"), ("6.18.44-fc-v669", "5.18"), ("v4.4", "3.12")])
def test_newest_era_at_or_below_version_is_chosen(version, era):
    """`-p kernel X` picks the newest modelled era whose version is <= X."""
    assert era_for(version).name == era


@pytest.mark.parametrize("bad", ["2.6.30", "1.0", "linux", ""])
def test_unmodelled_or_unreadable_version_is_a_param_error_naming_kernel(bad):
    """Versions before 2.6.31 or not starting with numbers raise ParamError naming `kernel`."""
    with pytest.raises(ParamError, match="parameter kernel"):
        era_for(bad)


def test_parse_version_reads_leading_numbers():
    """A release string such as uname -r gives its numeric prefix."""
    assert parse_version("6.18.44-fc-v669") == (6, 18, 44)


def test_2631_exit_faults_exactly_the_unreached_pages_of_a_writable_anon_vma():
    """Pre-patch munlock_vma_pages_all uses write-GUP: every page mlock never reached is allocated and zeroed."""
    vma = Vma.prefix(GIB_PAGES, 1000, State.LOCKED)
    munlock, _ = exit_mmap(era_for("2.6.31"), vma)
    assert munlock.faulted == munlock.allocated == GIB_PAGES - 1000
    assert munlock.munlocked == 1000


def test_2631_exit_faults_nothing_for_a_read_only_anon_vma():
    """Without VM_WRITE, GUP uses FOLL_ANON and gets ZERO_PAGE: no fault, no allocation."""
    vma = Vma.prefix(GIB_PAGES, 1000, State.LOCKED, writable=False)
    munlock, _ = exit_mmap(era_for("2.6.31"), vma)
    assert munlock.faulted == munlock.allocated == 0
    assert munlock.zero_page == GIB_PAGES - 1000


@pytest.mark.parametrize("kernel", ["2.6.32", "3.12", "6.18"])
def test_post_patch_exit_faults_nothing(kernel):
    """From 2.6.32 munlock follows pages (or, 5.18+, zaps them): absent pages are never faulted in."""
    munlock, unmap = exit_mmap(era_for(kernel), Vma.prefix(GIB_PAGES, 1000, State.LOCKED))
    assert munlock.faulted == munlock.allocated == 0
    assert munlock.munlocked + unmap.munlocked == 1000


def test_518_has_no_munlock_pass_at_exit():
    """5.18+: exit_mmap has no munlock_vma_pages_all; pages are munlocked as their ptes are zapped."""
    munlock, unmap = exit_mmap(era_for("6.18"), Vma.prefix(GIB_PAGES, 1000, State.LOCKED))
    assert not munlock.counts and unmap.munlocked == 1000


def test_2632_walks_every_absent_address_and_518_skips_empty_tables():
    """follow_page costs one walk per absent address; walk_page_range skips empty page tables."""
    vma = Vma.prefix(GIB_PAGES, 512, State.LOCKED)
    w32 = era_for("2.6.32").munlock(vma, 1.0)
    w518 = era_for("6.18").munlock(vma, 1.0)
    assert w32.counts["walk_absent_ns"] == GIB_PAGES - 512
    assert w518.counts["empty_table_ns"] == GIB_PAGES // 512 - 1 and w518.counts["pte_none_ns"] == 0


def test_a_1tib_vma_is_two_runs():
    """Runs, not pages: a partly populated 1 TiB VMA is described by two runs."""
    vma = Vma.prefix(1 << 28, 1 << 20, State.LOCKED)
    assert len(vma.runs) == 2 and vma.present == 1 << 20 and vma.absent == (1 << 28) - (1 << 20)


def test_strided_population_touches_every_table_and_leaves_pte_none_holes():
    """One page in every 2 populates every page table and leaves the other half as pte_none entries."""
    s = Strided(GIB_PAGES, 2)
    assert s.present == GIB_PAGES // 2 and s.populated_tables() == s.tables()
    assert s.absent_in_populated_tables() == GIB_PAGES // 2
