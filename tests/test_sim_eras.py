"""Era dispatch by version and the per-era munlock physics on run-length address spaces."""
import pytest

from mmlab.core.params import ParamError
from mmlab.sim.address_space import State, Strided, Vma
from mmlab.sim.era_facts import BEHAVIOURS
from mmlab.sim.eras import ERA_NAMES, ERAS, era_for, exit_mmap, parse_version

GIB_PAGES = (1 << 30) // 4096


@pytest.mark.parametrize("version, era", [
    ("2.6.30", "2.6.31"), ("2.6.31-rc3", "2.6.31-rc"), ("2.6.31-rc5", "2.6.31"), ("2.6.31", "2.6.31"),
    ("2.6.31.12", "2.6.32"), ("2.6.32", "2.6.32"), ("2.6.36", "2.6.36"), ("3.0", "2.6.38"), ("3.12", "3.12"),
    ("v4.4", "3.12"), ("4.6", "4.6"), ("4.9", "4.9"), ("4.19", "4.17"), ("5.17.9", "4.17"), ("5.18", "5.18"),
    ("6.18", "6.1"), ("6.18.44-fc-v669", "6.1"), ("2.6.31-mmotm", "2.6.31-mmotm")])
def test_version_is_simulated_by_the_era_whose_range_holds_it(version, era):
    """`-p kernel X` picks the era whose version range holds X (2.6.31.3+ carry the follow_page backport;
    2.6.31-rc1..rc4 lack the TIF_MEMDIE fail rule); a variant is picked by its name."""
    assert era_for(version).name == era


@pytest.mark.parametrize("bad", ["2.6.29", "2.6.31.1", "2.6.36-rc2", "4.7-rc3", "1.0", "linux", ""])
def test_version_no_era_covers_is_refused_in_one_line_naming_kernel(bad):
    """A version between verified points (2.6.31.1-2: the backport is unverified there; 2.6.29) or
    an -rc of a release where a behaviour changed is refused, never mapped to a neighbouring era."""
    with pytest.raises(ParamError, match="parameter kernel") as e:
        era_for(bad)
    assert "\n" not in str(e.value) and "4.17" in str(e.value)


def test_every_behaviour_of_every_era_has_a_source():
    """Each era states every behaviour, each with a value, a description and a non-empty source."""
    for era in ERAS:
        assert set(era.facts) == set(BEHAVIOURS), era.name
        for key, fact in era.facts.items():
            assert fact.value and fact.text and fact.source.strip(), (era.name, key)


def test_4_9_and_4_19_are_different_eras_and_neither_holds_off_kills_like_3_12():
    """4.9's reaper sets MMF_OOM_SKIP after its pass; 4.17+ exit_mmap sets it before munlock_vma_pages_all
    (27ae357fa82b); 3.12's TIF_MEMDIE victim holds off every new kill until its exit is done."""
    e49, e419, e312 = era_for("4.9"), era_for("4.19"), era_for("3.12")
    assert len({e49.name, e419.name, e312.name}) == 3
    holds = {e.name: e.facts["oom_skip"].value for e in (e49, e419, e312)}
    assert holds == {"4.9": "reaper", "4.17": "exit-mmap-start", "3.12": "exit-done"}


def test_released_2_6_31_fails_a_tif_memdie_allocation_and_its_rc1_to_rc4_loop():
    """6583bb64fc37 (2.6.31-rc5) made a failed no-watermark TIF_MEMDIE allocation fail; -rc1..-rc4 looped."""
    assert era_for("2.6.31").oom.memdie_alloc == "fail"
    assert era_for("2.6.31-rc2").oom.memdie_alloc == "retry"
    assert "6583bb64fc37" in era_for("2.6.31").facts["memdie_alloc"].source


def test_eras_are_listed_oldest_first_with_the_variants_beside_their_release():
    """ERA_NAMES is the one list of eras; released eras ascend by first version."""
    released = [e for e in ERAS if e.variant_of is None]
    assert [e.name for e in released] == ["2.6.31", "2.6.32", "2.6.36", "2.6.38", "3.12", "4.6", "4.7", "4.9", "4.17",
                                          "5.18", "6.1"]
    assert ERA_NAMES == tuple(e.name for e in ERAS)


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


def test_mmotm_variant_exit_that_must_fault_never_ends():
    """2.6.31-mmotm: an exit-time fault installs no pte (ksm_test_exit) and GUP retries it forever; an exit
    with nothing to fault is unaffected."""
    munlock, _ = exit_mmap(era_for("2.6.31-mmotm"), Vma.prefix(GIB_PAGES, 1000, State.LOCKED))
    assert munlock.never_ends
    full, _ = exit_mmap(era_for("2.6.31-mmotm"), Vma.prefix(GIB_PAGES, GIB_PAGES, State.LOCKED))
    assert not full.never_ends


def test_the_model_runs_what_each_era_states():
    """Each era's OOM policy and exit pass are the values of its sourced facts, not a second opinion."""
    for era in ERAS:
        f = {k: v.value for k, v in era.facts.items()}
        assert era.oom.memdie_alloc == f["memdie_alloc"], era.name
        assert era.oom.oom_reaper == f["oom_reaper"], era.name
        assert era.oom.holdoff_until == f["oom_skip"], era.name
        assert (era.exit_munlock is None) == (f["exit_munlock"] == "none"), era.name
        assert (era.oom.badness == "total_vm") == f["oom_selection"].startswith("total_vm"), era.name
