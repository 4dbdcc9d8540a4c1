"""The first real experiment at tiny sizes, with physical assertions."""
import pytest

import mmlab
from mmlab.core.params import ParamError
from mmlab.core.stats import measured_rows

from .conftest import mlocked_bytes, mmlab_processes

MiB = 1 << 20


@pytest.fixture(scope="module")
def result():
    import os
    import tempfile

    old = os.environ.get("MMLAB_RUNS_DIR")
    os.environ["MMLAB_RUNS_DIR"] = tempfile.mkdtemp()
    try:
        from mmlab.kernel import machine_lock

        with machine_lock.hold():  # no other real experiment moves system Mlocked between the two readings
            before = mlocked_bytes()
            r = mmlab.experiment("mlock-throughput", sizes="1MiB,4MiB", mappings="anon-private,anon-onfault,file-shared",
                                 settle_s=0.0, repeats=2, warmup=1, progress=False)
            return r, before, mlocked_bytes()
    finally:
        if old is None:
            os.environ.pop("MMLAB_RUNS_DIR")
        else:
            os.environ["MMLAB_RUNS_DIR"] = old


def test_one_row_per_point_and_repetition(result):
    r, _, _ = result
    assert len(r.rows) == 2 * 3 * 3
    assert r.rows["warmup"].sum() == 2 * 3
    assert set(r.rows["method"]) == {"real"}


def test_mlock_raises_vmlck_by_the_region_size(result):
    r, _, _ = result
    d = r.rows
    assert ((d["vmlck_locked_bytes"] - d["vmlck_before_bytes"]) == d["size_bytes"]).all()
    assert (d["vmlck_after_bytes"] == d["vmlck_before_bytes"]).all()


def test_mlock_populates_every_page_but_onfault_populates_none(result):
    r, _, _ = result
    d = r.rows
    full = d[d["mapping"] == "anon-private"]
    assert ((full["rss_locked_bytes"] - full["rss_before_bytes"]) >= full["size_bytes"]).all()
    assert (full["mlock_minflt"] >= full["pages"]).all()
    onfault = d[d["mapping"] == "anon-onfault"]
    assert ((onfault["rss_locked_bytes"] - onfault["rss_before_bytes"]) < 64 * 1024).all()


def test_system_mlocked_rises_by_the_region_while_locked(result):
    r, _, _ = result
    d = r.rows[r.rows["mapping"] == "anon-private"]
    rise = d["sys_mlocked_locked_bytes"] - d["sys_mlocked_before_bytes"]
    # other processes may lock or unlock a little meanwhile: within 64 pages
    assert ((rise - d["size_bytes"]).abs() <= 64 * 4096).all()


def test_nothing_stays_locked_and_no_child_remains(result):
    """After munlock() each child locks nothing (its own VmLck is 0), and no child is left: locked memory
    belongs to a process, so nothing of this test's stays locked (system Mlocked is not compared: processes
    outside mmlab's machine lock may lock memory meanwhile)."""
    r, _, _ = result
    assert (r.rows["vmlck_locked_bytes"] == r.rows["size_bytes"]).all()
    assert (r.rows["vmlck_after_bytes"] == 0).all()
    assert mmlab_processes() == []


def test_munmap_of_populated_anonymous_pages_costs_more_than_of_untouched_ones(result):
    """munmap() after munlock frees every page of an anon-private region (populated by mlock) but none of an
    anon-onfault one (nothing populated): at 4 MiB the first takes longer, and is priced per page."""
    d = measured_rows(result[0].rows)
    d = d[d["size_bytes"] == 4 * MiB]
    full = d[d["mapping"] == "anon-private"]["munmap_s"].median()
    empty = d[d["mapping"] == "anon-onfault"]["munmap_s"].median()
    assert full > 3 * empty
    assert (d["munmap_ns_per_page"] * d["pages"] / 1e9 - d["munmap_s"]).abs().max() < 1e-12


def test_ns_per_page_is_seconds_over_pages(result):
    r, _, _ = result
    d = r.rows
    assert (abs(d["mlock_ns_per_page"] - d["mlock_s"] * 1e9 / d["pages"]) < 1e-3).all()
    assert (d["mlock_s"] > 0).all() and (d["munlock_s"] > 0).all()


def test_the_run_is_stored_and_loads_back(result):
    r, _, _ = result
    back = mmlab.load([str(r.run_dir)])
    assert len(back) == len(r.rows) and "env.kernel_release" in back


def test_sizes_above_the_safety_guard_are_refused_before_anything_runs():
    with pytest.raises(ParamError, match="safety guard"):
        mmlab.experiment("mlock-throughput", sizes="1TiB", progress=False)
    assert mmlab.load().empty


def test_settle_pause_comes_before_the_timed_mlock_and_is_recorded():
    """settle_s lets freed memory go back to the host before the first touch (MEASURING.md): the pause is
    not inside the timed mlock() of 1 MiB, and each row says how long it was."""
    d = mmlab.experiment("mlock-throughput", sizes="1MiB", repeats=1, warmup=0, settle_s=0.4,
                         save=False, progress=False).rows
    assert (d["settle_s"] == 0.4).all() and (d["mlock_s"] < 0.2).all()
