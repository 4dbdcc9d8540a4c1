"""The ctypes layer against the real kernel, at sizes far below any limit (64 pages)."""
import errno

import pytest

from mmlab.core.units import PAGE_BYTES
from mmlab.kernel import libc, procfs

N = 64
LEN = N * PAGE_BYTES


@pytest.fixture
def region():
    addr = libc.mmap(LEN)
    yield addr
    libc.munmap(addr, LEN)


def vmlck() -> int:
    return procfs.status()["VmLck"]


def test_mlock_of_n_pages_raises_vmlck_by_n_pages(region):
    before = vmlck()
    libc.mlock(region, LEN)
    assert vmlck() - before == LEN
    assert libc.resident_pages(region, LEN) == N
    libc.munlock(region, LEN)
    assert vmlck() == before


def test_mlock2_onfault_locks_the_range_but_populates_nothing(region):
    before = vmlck()
    libc.mlock2(region, LEN, libc.MLOCK_ONFAULT)
    assert vmlck() - before == LEN
    assert libc.resident_pages(region, LEN) == 0
    libc.madvise(region, 8 * PAGE_BYTES, libc.MADV_POPULATE_WRITE)
    assert libc.resident_pages(region, LEN) == 8
    libc.munlock(region, LEN)


def test_munmap_of_a_locked_region_drops_vmlck(region):
    before = vmlck()
    other = libc.mmap(LEN)
    libc.mlock(other, LEN)
    libc.munmap(other, LEN)
    assert vmlck() == before


def test_errno_becomes_oserror_naming_the_call():
    with pytest.raises(OSError) as e:
        libc.mlock(0x1000, PAGE_BYTES)  # nothing is mapped at the first pages
    assert e.value.errno == errno.ENOMEM and str(e.value).startswith("[Errno 12] mlock(")


def test_bad_mlock2_flags_are_einval(region):
    with pytest.raises(OSError) as e:
        libc.mlock2(region, LEN, 0x80)
    assert e.value.errno == errno.EINVAL and "mlock2(" in str(e.value)


def test_bad_madvise_advice_is_einval(region):
    with pytest.raises(OSError) as e:
        libc.madvise(region, LEN, 9999)
    assert e.value.errno == errno.EINVAL and "madvise(" in str(e.value)


def test_mincore_of_an_unaligned_address_is_einval(region):
    with pytest.raises(OSError) as e:
        libc.mincore(region + 1, LEN)
    assert e.value.errno == errno.EINVAL


def test_populate_read_maps_zero_page_and_populate_write_allocates(region):
    """MADV_POPULATE_READ on anonymous memory maps the shared zero page (no RSS); WRITE allocates."""
    rss0 = procfs.status()["RssAnon"]
    libc.madvise(region, LEN, libc.MADV_POPULATE_READ)
    rss1 = procfs.status()["RssAnon"]
    libc.madvise(region, LEN, libc.MADV_POPULATE_WRITE)
    rss2 = procfs.status()["RssAnon"]
    assert rss1 - rss0 < LEN // 2
    assert rss2 - rss1 >= LEN - 4 * PAGE_BYTES


def test_getrusage_counts_minor_faults_of_a_write_loop(region):
    before = libc.getrusage().ru_minflt
    libc.touch(region, LEN)
    assert libc.getrusage().ru_minflt - before >= N
