"""Finite memory in the simulator: what an exit or munlock() cannot get from free memory, page cache or
swap runs the machine out of memory, and the row says what the era's kernel did instead of a time."""
import json
import math

from mmlab.core.units import PAGE_BYTES
from mmlab.sim import SCENARIOS, eras, memory, sigkill
from mmlab.sim.profile import reference

GIB = 1 << 30
SIGKILL = SCENARIOS["sigkill-during-mlock"]
MUNLOCK = SCENARIOS["munlock-partial"]


def _with_swap(swap_bytes: int, **costs):
    """The reference machine given swap (and exact costs where named)."""
    import dataclasses

    return dataclasses.replace(reference().replace(**costs) if costs else reference(), swap_bytes=swap_bytes)


def test_reference_profile_has_24gib_ram_and_no_swap():
    """The reference machine: 24 GiB RAM, no swap, free memory and page cache that fit in RAM."""
    p = reference()
    assert p.ram_bytes == 24 * GIB and p.swap_bytes == 0
    assert p.free_bytes + p.page_cache_bytes + p.other_anon_bytes + p.min_free_bytes <= p.ram_bytes


def test_2631_exit_of_64gib_vma_on_24gib_without_swap_never_gets_a_time():
    """64 GiB VMA, 256 MiB populated, 2.6.31: the exit must fault in 63.75 GiB on a 24 GiB machine with no
    swap; the dying task is invisible to the OOM killer, which kills every other task and panics."""
    r = SIGKILL.run({"kernel": "2.6.31", "vma_bytes": "64GiB", "populated_bytes": "256MiB"}).iloc[0]
    assert r.outcome == memory.PANIC
    assert all(math.isnan(r[c]) for c in ("exit_s", "exit_s_lo", "exit_s_hi", "kill_to_reap_s", "exit_mm_s"))
    assert r.exit_pages_faulted < r.exit_pages_needed == (64 * GIB - (256 << 20)) // PAGE_BYTES
    assert r.exit_pages_swapped_out == 0  # anonymous memory is never reclaimed without swap


def test_2631_exit_time_is_json_null_not_a_number():
    """The command line's JSON carries null, never a number, for the exit time of an exit that did not happen."""
    rows = json.loads(SIGKILL.run({"kernel": "2.6.31", "vma_bytes": "64GiB"}).to_json(orient="records"))
    assert rows[0]["outcome"] != memory.EXITED and rows[0]["exit_s"] is None


def test_2631_exit_of_1gib_vma_faults_196608_pages_and_exits():
    """1 GiB VMA, 256 MiB populated: the 196608 unreached pages fit in free memory; the exit finishes."""
    r = SIGKILL.run({"kernel": "2.6.31", "vma_bytes": "1GiB", "populated_bytes": "256MiB"}).iloc[0]
    assert r.outcome == memory.EXITED and r.exit_pages_faulted == 196608 and r.exit_s > 0


def test_2632_exit_of_64gib_vma_exits_it_faults_nothing():
    """2.6.32's follow_page munlock allocates nothing at exit, so memory never runs out."""
    r = SIGKILL.run({"kernel": "2.6.32", "vma_bytes": "64GiB", "populated_bytes": "256MiB"}).iloc[0]
    assert r.outcome == memory.EXITED and r.exit_pages_faulted == 0 and r.exit_s > 0


def test_2631_exit_with_enough_swap_finishes_and_pays_for_swap():
    """With 48 GiB of swap the 64 GiB exit finishes; every page beyond free memory and page cache is a
    swap-out, priced at swap_out_ns."""
    era, pages, pop = eras.era_for("2.6.31"), 64 * GIB // PAGE_BYTES, 65536
    none = sigkill.run(era, _with_swap(48 * GIB, swap_out_ns=0.0), pages, pop)
    slow = sigkill.run(era, _with_swap(48 * GIB, swap_out_ns=50_000.0), pages, pop)
    assert none["outcome"] == slow["outcome"] == memory.EXITED
    assert slow["exit_pages_swapped_out"] > 0
    assert math.isclose(slow["exit_s"] - none["exit_s"], slow["exit_pages_swapped_out"] * 50e-6, rel_tol=1e-9)


def test_2631_exit_short_of_swap_kills_bystanders_when_they_hold_enough():
    """An exit a little short of memory: the OOM killer frees it by killing other tasks (the dying task,
    without ->mm, is never chosen): bystanders-killed, no time."""
    import dataclasses

    p = dataclasses.replace(reference(), other_anon_bytes=4 * GIB)
    need = (p.free_bytes - p.min_free_bytes + p.page_cache_bytes) // PAGE_BYTES + 65536 + (GIB // PAGE_BYTES)
    r = sigkill.run(eras.era_for("2.6.31"), p, need, 65536)
    assert r["outcome"] == memory.BYSTANDERS_KILLED and math.isnan(r["exit_s"])
    assert r["exit_bytes_short"] <= p.other_anon_bytes


def test_populated_beyond_what_can_be_mlocked_is_an_oom_during_mlock():
    """mlock() cannot populate 32 GiB on a 24 GiB machine: the state SIGKILL-during-mlock assumes is never reached."""
    r = SIGKILL.run({"kernel": "6.18", "vma_bytes": "64GiB", "populated_bytes": "32GiB"}).iloc[0]
    assert r.outcome == memory.OOM_DURING_MLOCK and math.isnan(r.exit_s)


def test_2631_munlock_of_32gib_mostly_absent_oom_kills_the_munlocker():
    """2.6.31 munlock() of a 32 GiB range 1% present must fault in more than the machine has: the live
    munlocking task (largest total_vm) is the OOM killer's choice; munlock() never returns."""
    r = MUNLOCK.run({"kernel": "2.6.31", "vma_bytes": "32GiB", "populated_fraction": 0.01}).iloc[0]
    assert r.outcome == memory.OOM_KILLED and math.isnan(r.munlock_s) and r.bytes_short > 0


def test_2631_munlock_that_fits_returns_with_every_page_faulted():
    """2.6.31 munlock() of 1 GiB half present faults in the other half (131072 pages) and returns."""
    r = MUNLOCK.run({"kernel": "2.6.31", "vma_bytes": "1GiB", "populated_fraction": 0.5}).iloc[0]
    assert r.outcome == memory.RETURNED and r.pages_faulted == 131072 and r.munlock_s > 0


def test_swap_is_never_used_for_mlocked_pages():
    """mlock() populating past free memory and page cache can only push other tasks' anonymous pages to
    swap, never its own (mlocked, unevictable) ones."""
    mem = memory.Memory(free=100, page_cache=50, other_anon=30, swap=1000)
    assert memory.lockable(mem) == 180
    s = memory.populate(mem, 200)
    assert (s.from_free, s.from_cache, s.swapped_out, s.short) == (100, 50, 30, 20)


def test_host_memory_counts_only_clean_file_pages_as_page_cache():
    """From /proc/meminfo: dirty file pages are not cheap to reclaim and anonymous pages are not page cache."""
    from mmlab.sim.profile import memory_from_meminfo

    mi = {"MemTotal": 8 * GIB, "MemFree": 5 * GIB, "Active(file)": GIB, "Inactive(file)": GIB, "Dirty": 256 << 20,
          "AnonPages": 512 << 20, "SwapFree": 0}
    m = memory_from_meminfo(mi, 64 << 20)
    assert m["page_cache_bytes"] == 2 * GIB - (256 << 20) and m["other_anon_bytes"] == 512 << 20
    assert m["swap_bytes"] == 0 and m["free_bytes"] == 5 * GIB


def test_a_dirtier_writes_back_only_what_passes_the_dirty_limit():
    """balance_dirty_pages: of 300 pages dirtied on top of 50 already dirty, with a limit of 200, the
    dirtier writes back the 150 past the limit itself; with 250 already dirty, all 300."""
    mem = memory.Memory(free=1000, page_cache=0, other_anon=0, swap=0)
    assert memory.file_pages(mem, 200, 50, 300, 0).throttled == 150
    assert memory.file_pages(mem, 200, 250, 300, 0).throttled == 300


def test_a_cached_file_is_clean_page_cache_until_mlock_locks_it():
    """A warm file's pages take free memory first and are reclaimable page cache; mlocked ones are not."""
    mem = memory.Memory(free=100, page_cache=50, other_anon=0, swap=0)
    cached = memory.cache_file(mem, 120)
    assert (cached.free, cached.page_cache) == (0, 150)
    locked = memory.cache_file(mem, 120, locked=40)
    assert (locked.free, locked.page_cache) == (0, 110)
    assert memory.lockable(locked) == 110  # the 40 locked pages can no longer make room
