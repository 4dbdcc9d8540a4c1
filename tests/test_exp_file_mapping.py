"""file-mapping at a small size: what mlock, munlock and faults do to file pages on this kernel."""
import glob
import os
import tempfile

import pytest

import mmlab
from mmlab.experiments import file_mapping as fm
from mmlab.kernel import procfs

from .conftest import MLOCKED_SLACK_BYTES, mlocked_bytes, mmlab_processes

MiB = 1 << 20
SIZE = 4 * MiB
PAGES = SIZE // 4096


def _leftovers() -> list[str]:
    return [f for d in (tempfile.gettempdir(), "/dev/shm") for f in glob.glob(os.path.join(d, "mmlab-file-*"))]


@pytest.fixture(scope="module")
def result():
    old = os.environ.get("MMLAB_RUNS_DIR")
    os.environ["MMLAB_RUNS_DIR"] = tempfile.mkdtemp()
    try:
        before = mlocked_bytes()
        r = mmlab.experiment("file-mapping", size_bytes=SIZE, repeats=1, warmup=0, progress=False)
        return r, before, mlocked_bytes()
    finally:
        if old is None:
            os.environ.pop("MMLAB_RUNS_DIR")
        else:
            os.environ["MMLAB_RUNS_DIR"] = old


def _one(rows, fs, mapping, cache, op):
    d = rows[(rows["filesystem"] == fs) & (rows["mapping"] == mapping) & (rows["page_cache"] == cache)
             & (rows["operation"] == op)]
    assert len(d), (fs, mapping, cache, op)
    return d.iloc[0]


def test_mlock_of_a_writable_private_file_mapping_copies_every_page(result):
    """populate_vma_page_range write-faults a private writable VMA (COW break): after mlock every page is
    resident, locked and an anonymous copy of the file's page."""
    rows = result[0].rows
    for fs in ("disk", "tmpfs"):
        r = _one(rows, fs, "private", "warm", "mlock")
        assert r["rss_bytes"] == SIZE and r["locked_bytes"] == SIZE and r["anon_bytes"] == SIZE
        assert r["minflt"] >= PAGES  # one write fault per page


def test_mlock_of_a_shared_disk_file_mapping_maps_page_cache_pages_without_dirtying_them(result):
    """A shared VMA is read-faulted by mlock on this kernel: resident and locked page-cache pages, none
    anonymous, none dirty (until 2.6.38 the write-GUP dirtied every one)."""
    for cache in ("cold", "warm"):
        r = _one(result[0].rows, "disk", "shared", cache, "mlock")
        assert r["rss_bytes"] == SIZE and r["locked_bytes"] == SIZE
        assert r["anon_bytes"] == 0 and r["dirty_bytes"] == 0


def test_a_write_fault_dirties_shared_pages_writeback_cleans_them_and_the_next_write_faults_again(result):
    """MADV_POPULATE_WRITE dirties every page of a shared disk mapping; fdatasync writes them back and
    write-protects them (page_mkclean), so writing them again takes one fault per page and dirties them."""
    rows = result[0].rows
    assert _one(rows, "disk", "shared", "warm", "populate_write")["dirty_bytes"] == SIZE
    assert _one(rows, "disk", "shared", "warm", "writeback")["dirty_bytes"] == 0
    again = _one(rows, "disk", "shared", "warm", "redirty_after_writeback")
    assert again["dirty_bytes"] == SIZE and again["minflt"] >= PAGES


def test_munlock_leaves_the_pages_mapped_unlocked_and_a_shared_disk_mapping_clean(result):
    """This kernel's munlock walks ptes and faults nothing: every page stays mapped, none locked, and a
    shared disk mapping stays clean (the pre-patch write-GUP munlock dirtied it)."""
    rows = result[0].rows
    d = rows[rows["operation"] == "munlock"]
    assert len(d) and (d["locked_bytes"] == 0).all() and (d["rss_bytes"] == SIZE).all()
    shared = d[(d["filesystem"] == "disk") & (d["mapping"] == "shared")]
    assert len(shared) and (shared["dirty_bytes"] == 0).all()


def test_cold_reads_come_from_disk_and_warm_ones_from_the_page_cache(result):
    """Cold: the file's pages were dropped (none cached) and the read faults are major; warm: every page
    cached and no major fault."""
    rows = result[0].rows
    cold = _one(rows, "disk", "private", "cold", "populate_read")
    warm = _one(rows, "disk", "private", "warm", "populate_read")
    assert cold["cached_pages_before"] == 0 and cold["majflt"] > 0
    assert warm["cached_pages_before"] == PAGES and warm["majflt"] == 0


def test_tmpfs_is_measured_warm_only_and_says_why(result):
    r = result[0]
    tmpfs = r.rows[r.rows["filesystem"] == "tmpfs"]
    assert len(tmpfs) and set(tmpfs["page_cache"]) == {"warm"}
    assert "page cache" in r.rows.attrs["skipped"]["tmpfs/cold"]


def test_rows_are_tidy_and_real(result):
    d = result[0].rows
    assert set(d["method"]) == {"real"} and set(d["operation"]) <= set(fm.OPERATIONS)
    assert (abs(d["ns_per_page"] * d["pages"] / 1e9 - d["time_s"]) < 1e-12).all()


def test_nothing_stays_locked_no_child_and_no_file_remains(result):
    _, before, after = result
    assert abs(after - before) <= MLOCKED_SLACK_BYTES
    assert mmlab_processes() == []
    assert _leftovers() == []


SMAPS = """\
7f0000000000-7f0000400000 rw-p 00000000 fd:00 12 /tmp/mmlab-file-x (deleted)
Size:               4096 kB
Rss:                4096 kB
Private_Dirty:      4096 kB
Anonymous:          4096 kB
Locked:             4096 kB
7f0000400000-7f0000401000 rw-p 00000000 00:00 0
Size:                  4 kB
Rss:                   4 kB
Anonymous:             4 kB
"""


def test_smaps_fields_are_read_for_the_vma_at_the_address_only():
    got = procfs.parse_smaps_vma(SMAPS, 0x7F0000000000)
    assert got["Rss"] == got["Anonymous"] == got["Locked"] == 4 * MiB
    assert procfs.parse_smaps_vma(SMAPS, 0x7F0000400000)["Rss"] == 4096
    assert procfs.parse_smaps_vma(SMAPS, 0x1000) == {}


def test_the_filesystem_of_a_folder_is_that_of_its_longest_mount_prefix():
    mounts = procfs.parse_mounts("/dev/vda / ext4 rw 0 0\ntmpfs /dev/shm tmpfs rw 0 0\ntmpfs /tmp\\040x tmpfs rw 0 0\n")
    assert procfs.fs_type("/dev/shm", mounts) == "tmpfs"
    assert procfs.fs_type("/tmp x", mounts) == "tmpfs"
    assert procfs.fs_type("/", mounts) == "ext4"
