"""How munlock-partial populates its probes in turns with the target: every page of the target and of each
probe exactly once, in page-aligned pieces, the two advancing together."""
import pytest

from mmlab.core.units import PAGE_BYTES
from mmlab.experiments.probe import interleave_plan

MiB = 1 << 20


def covered(pieces: list[tuple[int, int]]) -> list[int]:
    """The pages a list of (offset, length) pieces populates, in order."""
    return [p for off, n in pieces for p in range(off // PAGE_BYTES, (off + n) // PAGE_BYTES)]


@pytest.mark.parametrize("target,probe", [(32 * MiB, 16 * MiB), (6710784, 16 * MiB), (512 * MiB, 16 * MiB),
                                          (3 * PAGE_BYTES, 16 * MiB), (8 * MiB, 0), (0, 0)])
def test_each_page_of_target_and_probe_is_populated_once_in_order(target, probe):
    plan = interleave_plan(target, probe)
    assert covered([(t, n) for t, n, _, _ in plan]) == list(range(target // PAGE_BYTES))
    assert covered([(p, n) for _, _, p, n in plan]) == list(range(probe // PAGE_BYTES))
    assert all(x % PAGE_BYTES == 0 for piece in plan for x in piece)


def test_the_probe_is_spread_over_the_target_populate_not_bunched_at_one_end():
    """Each turn takes a sixteenth of both, so the probe's pages come from the same stretch of free memory
    as the target's, first to last."""
    plan = interleave_plan(64 * MiB, 16 * MiB)
    assert len(plan) == 16
    assert {n for _, n, _, _ in plan} == {4 * MiB} and {n for _, _, _, n in plan} == {MiB}


def test_probes_that_cannot_all_be_locked_leave_none_mapped(monkeypatch):
    """If the second probe cannot be locked the first is unmapped again and the row gets no interleaved
    probes (it then probes fresh VMAs), rather than half a pair."""
    from mmlab.experiments import probe

    results = iter([(0x1000_0000, None), (None, "mlock2 of the probe failed: ENOMEM")])
    unmapped = []
    monkeypatch.setattr(probe, "_locked", lambda size, onfault=False: next(results))
    monkeypatch.setattr(probe, "room_bytes", lambda b: b)
    monkeypatch.setattr(probe.libc, "munmap", lambda addr, size: unmapped.append(addr))
    assert probe.onfault_probes(2, 16 * MiB) == ([], 0)
    assert unmapped == [0x1000_0000]


def test_a_populated_probe_is_unlocked_whole_but_timed_on_its_last_three_quarters(monkeypatch):
    """munlock_populated() unlocks every page of the probe (VmLck falls back by all of it) and unmaps it;
    only the munlock() after the untimed first quarter is the timed one, so the price is per page of it."""
    from mmlab.experiments import probe
    from mmlab.experiments.cut_short import populate
    from mmlab.kernel import libc, procfs

    size = 256 * PAGE_BYTES
    addrs, got = probe.onfault_probes(1, size)
    if not addrs:
        pytest.skip("a 1 MiB probe cannot be locked here")
    start = procfs.status()["VmLck"]
    populate(addrs[0], got)
    assert libc.resident_pages(addrs[0], got) == got // PAGE_BYTES
    calls = []
    real = libc.munlock
    monkeypatch.setattr(probe.libc, "munlock", lambda a, n: (calls.append((a - addrs[0], n)), real(a, n))[1])
    cols = probe.munlock_populated(addrs[0], got)
    assert procfs.status()["VmLck"] == start - got
    with pytest.raises(OSError):
        libc.resident_pages(addrs[0], got)  # unmapped
    quarter = got // 4
    assert calls[0] == (0, quarter) and calls[-1] == (quarter, got - quarter)
    assert all(n == 0 for _, n in calls[1:-1])
    assert cols["probe_munlock_ns_per_page"] > 0 and cols["probe_bytes"] == got
