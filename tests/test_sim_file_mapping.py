"""The file-mapping model: what each era's mlock, munlock and exit do to file pages, and their price."""
import pytest

from mmlab.core.params import ParamError
from mmlab.sim import SCENARIOS
from mmlab.sim import file_mapping as fm
from mmlab.sim.profile import Cost

GiB = 1 << 30
PAGES = GiB // 4096


def _costs(ns: float = 1000.0) -> fm.FileCosts:
    """Every operation at every point costs `ns` per page, except writeback (10 us) and tmpfs writeback (0)."""
    out = {}
    for op in ("mlock", "munlock", "munmap", "munmap_locked", "populate_read", "populate_write", "write_after_read",
               "writeback", "redirty_after_writeback"):
        for fs in fm.FILESYSTEMS:
            for m in fm.MAPPINGS:
                for c in fm.CACHES:
                    v = 10_000.0 if op == "writeback" else ns
                    v = 0.0 if (op == "writeback" and fs == "tmpfs") else v
                    out[(op, fs, m, c)] = Cost(v, v, v)
    return fm.FileCosts(out)


def _run(era: str, mapping: str, populated: int = PAGES, fs: str = "disk", writable: bool = True,
         writeback_before_munlock: bool = True, free_bytes: int = 16 * GiB) -> dict:
    b = fm.behaviour_for(era)
    return fm.run(b, _costs(), mapping=mapping, fs=fs, cache="warm", writable=writable, vma_pages=PAGES,
                  populated_pages=populated, writeback_before_munlock=writeback_before_munlock,
                  free_bytes=free_bytes, walk_absent_ns=50.0, pte_none_ns=1.0)


@pytest.mark.parametrize("era", fm.COMPARE_KERNELS)
def test_mlock_copies_every_page_of_a_writable_private_mapping_in_every_era(era):
    r = _run(era, "private")
    assert r["mlock_pages_cowed"] == PAGES and r["anon_bytes_needed"] >= PAGES * 4096


def test_until_2_6_38_mlock_dirties_every_page_of_a_writable_shared_mapping():
    for era in ("2.6.31", "2.6.32"):
        r = _run(era, "shared")
        assert r["mlock_pages_dirtied"] == PAGES and r["written_back_bytes"] >= GiB
    for era in ("2.6.38", "6.18"):
        r = _run(era, "shared")
        assert r["mlock_pages_dirtied"] == 0 and r["written_back_bytes"] == 0


def test_a_read_only_shared_mapping_was_never_dirtied():
    assert _run("2.6.31", "shared", writable=False)["mlock_pages_dirtied"] == 0


def test_the_prepatch_munlock_redirties_shared_pages_writeback_cleaned():
    """2.6.31's write-GUP munlock faults every write-protected pte again: a shared mapping written back
    since mlock is dirtied and written back a second time; from 2.6.32 munlock dirties nothing."""
    old = _run("2.6.31", "shared")
    assert old["munlock_pages_dirtied"] == PAGES and old["written_back_bytes"] == 2 * GiB
    assert _run("2.6.31", "shared", writeback_before_munlock=False)["munlock_pages_dirtied"] == 0
    assert _run("2.6.32", "shared")["munlock_pages_dirtied"] == 0


def test_the_prepatch_exit_copies_every_page_an_interrupted_mlock_never_reached():
    quarter = PAGES // 4
    old = _run("2.6.31", "private", populated=quarter)
    assert old["munlock_pages_cowed"] == PAGES - quarter and old["anon_bytes_needed"] == GiB
    new = _run("2.6.32", "private", populated=quarter)
    assert new["munlock_pages_faulted"] == 0 and new["anon_bytes_needed"] == GiB // 4
    # each unreached page: a COW fault and its unmap instead of one follow_page walk
    assert old["exit_s"] - new["exit_s"] == pytest.approx((PAGES - quarter) * (1000 + 1000 - 50) * 1e-9)


def test_tmpfs_pages_are_never_written_back():
    r = _run("2.6.31", "shared", fs="tmpfs")
    assert r["mlock_pages_dirtied"] == PAGES and r["written_back_bytes"] == 0 and r["writeback_s"] == 0


def test_dirtying_past_the_dirty_limit_throttles_the_task_to_writeback_speed():
    """balance_dirty_pages: once dirty pages pass vm_dirty_ratio (20% of free memory here), the dirtier
    waits for writeback: mlock of 1 GiB with 1 GiB free is throttled for all but 20% of its pages."""
    small = _run("2.6.32", "shared", free_bytes=GiB)
    big = _run("2.6.32", "shared", free_bytes=64 * GiB)
    assert small["throttled_pages"] == PAGES - PAGES // 5 and big["throttled_pages"] == 0
    assert small["mlock_s"] > 5 * big["mlock_s"]


def test_versions_map_to_the_file_behaviour_of_their_era():
    """The era comes from eras.era_for: 2.6.31.3 carries the stable backport of 408e82b78bcc (munlock by
    follow_page) but still write-faults shared mappings at mlock, as 2.6.32 to 2.6.37 do."""
    assert fm.behaviour_for("2.6.31").munlock == "write-gup"
    b = fm.behaviour_for("2.6.31.3")
    assert b.munlock == "follow-page" and b.mlock_write == "VM_WRITE"
    assert fm.behaviour_for("2.6.37").mlock_write == "VM_WRITE"
    assert fm.behaviour_for("4.19").mlock_write == "private"
    b = fm.behaviour_for("6.18.44-fc")
    assert b.munlock == "pte-walk" and not b.exit_munlock_pass
    with pytest.raises(ParamError, match="kernel"):
        fm.behaviour_for("2.6.20")


def test_every_behaviour_names_its_sources():
    for k in fm.COMPARE_KERNELS:
        b = fm.behaviour_for(k)
        assert b.source_mlock and b.source_munlock


def test_an_exit_whose_faults_never_complete_has_no_time():
    """2.6.31-mmotm with KSM: the exit-time fault installs no pte and GUP retries it forever."""
    b = fm.behaviour_for("2.6.31-mmotm")
    r = fm.run(b, _costs(), mapping="private", fs="disk", cache="warm", writable=True, vma_pages=PAGES,
               populated_pages=PAGES // 4, writeback_before_munlock=True, free_bytes=16 * GiB, walk_absent_ns=50.0,
               pte_none_ns=1.0)
    assert r["outcome"] == "hung" and r["exit_s"] != r["exit_s"]


def test_the_scenario_runs_from_the_registry_with_the_shipped_costs():
    d = SCENARIOS["file-mapping"].run({"kernel": "2.6.31", "mapping": "private", "vma_bytes": "64MiB",
                                       "populated_bytes": "16MiB"})
    assert d.iloc[0]["method"] == "simulated" and d.iloc[0]["munlock_pages_cowed"] == 12288
    assert d.iloc[0]["exit_s_lo"] <= d.iloc[0]["exit_s"] <= d.iloc[0]["exit_s_hi"]


def test_a_cold_tmpfs_page_cache_is_refused_with_the_reason():
    with pytest.raises(ParamError, match="page_cache.*tmpfs"):
        SCENARIOS["file-mapping"].run({"filesystem": "tmpfs", "page_cache": "cold"})


def test_compare_eras_gives_one_row_per_behaviour():
    d = fm.compare_eras({"mapping": "shared", "vma_bytes": "64MiB", "populated_bytes": "64MiB"})
    assert list(d["kernel"]) == list(fm.COMPARE_KERNELS) and d["era"].nunique() == len(fm.COMPARE_KERNELS)


def _rows(ns_read: float, ns_cow: float):
    import pandas as pd

    base = {"experiment": "file-mapping", "method": "real", "warmup": False, "filesystem": "disk", "page_cache": "warm"}
    return pd.DataFrame([{**base, "mapping": "private", "operation": "populate_read", "ns_per_page": ns_read},
                         {**base, "mapping": "private", "operation": "populate_write", "ns_per_page": ns_cow},
                         {**base, "mapping": "private", "operation": "populate_write", "ns_per_page": ns_cow + 2},
                         {**base, "mapping": "private", "operation": "populate_write", "ns_per_page": 9e9,
                          "warmup": True}])


def test_file_costs_are_the_median_of_the_measured_rows_without_warmups():
    c = fm.FileCosts.from_rows(_rows(800.0, 5000.0)).get("populate_write", "disk", "private", "warm")
    assert c.value == 5001.0 and 5000.0 <= c.lo <= c.value <= c.hi <= 5002.0


def test_calibrate_takes_the_file_fault_and_cow_costs_from_file_mapping_rows():
    from mmlab.sim.calibrate import calibrate_from_runs

    prof = calibrate_from_runs(_rows(800.0, 5000.0), name="t")
    assert prof["file_fault_ns"] == 800.0 and prof["cow_ns"] == 5001.0


def test_cow_copies_past_the_memory_the_machine_has_are_an_out_of_memory_outcome_without_a_time():
    """A 2.6.31 exit copies every unreached page of a private mapping into anonymous memory: with room for
    only half of the VMA, the exit cannot finish (no time); 2.6.32's exit copies nothing and finishes."""
    b31, b32 = fm.behaviour_for("2.6.31"), fm.behaviour_for("2.6.32")
    kw = dict(costs=_costs(), mapping="private", fs="disk", cache="warm", writable=True, vma_pages=PAGES,
              populated_pages=PAGES // 4, writeback_before_munlock=True, free_bytes=16 * GiB, walk_absent_ns=50.0,
              pte_none_ns=1.0, anon_room_bytes=GiB // 2)
    old, new = fm.run(b31, **kw), fm.run(b32, **kw)
    assert old["outcome"] == "out-of-memory at exit" and old["exit_s"] != old["exit_s"]
    assert old["mlock_s"] == old["mlock_s"]  # mlock itself fitted
    assert new["outcome"] == "exited" and new["exit_s"] > 0
    assert fm.run(b32, **{**kw, "anon_room_bytes": GiB // 8})["outcome"] == "out-of-memory at mlock"
