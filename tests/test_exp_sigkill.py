"""sigkill-during-mlock at small sizes: the kill lands where asked and the exit follows the populated pages."""
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

import mmlab
from mmlab.core.params import ParamError
from mmlab.core.stats import measured_rows
from mmlab.experiments.sigkill_during_mlock import exit_ratio

from .conftest import MLOCKED_SLACK_BYTES, needs_root
from .test_exp_safety import groups_of, run_between_counts

MiB, GiB = 1 << 20, 1 << 30
pytestmark = needs_root


@pytest.fixture(scope="module")
def result():
    return run_between_counts("sigkill-during-mlock", vma_bytes="256MiB,4GiB", populated_bytes="8MiB,128MiB", repeats=3, warmup=1)


def measured(r):
    return measured_rows(r.rows)


def test_every_child_is_ended_by_our_sigkill_before_mlock_returns(result):
    """The child dies of signal 9 sent when the RSS target is reached, while still inside mlock()."""
    d = result[0].rows
    assert (d["term_signal"] == 9).all()
    assert (d["kill_reason"] == "populated").all()
    assert not d["mlock_returned"].any()


def test_the_kill_lands_at_the_populated_target(result):
    """populated_bytes (RSS growth measured at the kill) reaches the target and, in the median, overshoots
    it by under 4 MiB (a parent descheduled on a busy machine may poll late once in a while)."""
    d = result[0].rows
    assert (d["populated_bytes"] >= d["target_populated_bytes"]).all()
    assert d["overshoot_bytes"].median() < 4 * MiB


def test_exit_time_follows_populated_pages_not_vma_size(result):
    """With 128 MiB populated, a 4 GiB VMA exits within 1.5x of a 256 MiB one (median over repeats)."""
    r = exit_ratio(result[0].rows).set_index("target_populated_bytes")
    assert 1 / 1.5 <= r.loc[128 * MiB, "ratio"] <= 1.5, r


def test_more_populated_pages_take_longer_to_exit(result):
    """Exit time grows with the pages mlock populated: 128 MiB takes longer than 8 MiB for each VMA."""
    med = measured(result[0]).groupby(["vma_bytes", "target_populated_bytes"])["kill_to_reap_s"].median()
    for vma in (256 * MiB, 4 * GiB):
        assert med[(vma, 128 * MiB)] > 1.5 * med[(vma, 8 * MiB)]


def test_system_mlocked_is_back_after_each_exit(result):
    """System Mlocked after each exit is within a few pages of before it: the exit unlocked everything."""
    r, before, after = result
    d = r.rows
    assert ((d["sys_mlocked_after_bytes"] - d["sys_mlocked_before_bytes"]).abs() <= 64 * 4096).all()
    assert abs(after - before) <= MLOCKED_SLACK_BYTES


def test_children_ran_in_a_memory_cgroup_that_is_gone(result):
    """With a memory cgroup available each child ran in one, which no longer exists."""
    assert result[0].rows["in_cgroup"].all()
    assert groups_of(os.getpid()) == []


def test_exit_ratio_is_the_median_large_over_median_small():
    """exit_ratio divides the large VMA's median by the small VMA's, per target, warm-ups excluded."""
    rows = pd.DataFrame({"vma_bytes": [1, 1, 1, 9, 9, 9], "target_populated_bytes": [5] * 6,
                         "kill_to_reap_s": [1.0, 2.0, 100.0, 4.0, 4.0, 0.0], "warmup": [False, False, True, False, False, True]})
    r = exit_ratio(rows)
    assert r["ratio"].iloc[0] == pytest.approx(4.0 / 1.5)


def test_populated_above_the_guard_is_refused_even_if_the_vma_is_huge():
    """The guard checks what gets locked (populated_bytes): 4 TiB populated of an 8 TiB VMA is refused."""
    with pytest.raises(ParamError, match="safety guard"):
        mmlab.experiment("sigkill-during-mlock", vma_bytes="8TiB", populated_bytes="4TiB", save=False, progress=False)


def test_populated_larger_than_a_vma_is_refused():
    with pytest.raises(ParamError, match="populated_bytes"):
        mmlab.experiment("sigkill-during-mlock", vma_bytes="64MiB", populated_bytes="128MiB", save=False, progress=False)


def test_cli_json_rows_carry_the_contract_columns():
    """`mmlab experiment sigkill-during-mlock ... --json` prints row objects with the named columns, a
    huge VMA killed at a small populated size."""
    out = subprocess.run([sys.executable, "-m", "mmlab", "experiment", "sigkill-during-mlock", "-p", "vma_bytes", "64GiB",
                          "-p", "populated_bytes", "16MiB", "--repeats", "1", "-p", "warmup", "0", "--json", "--no-save"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 1
    for col in ("vma_bytes", "populated_bytes", "kill_to_reap_s", "sys_mlocked_before_bytes", "sys_mlocked_after_bytes",
                "sys_unevictable_before_bytes", "sys_unevictable_after_bytes", "method"):
        assert col in rows[0], col
    assert rows[0]["vma_bytes"] == 64 * GiB and rows[0]["populated_bytes"] >= 16 * MiB and rows[0]["kill_to_reap_s"] > 0


def test_probe_prices_the_exits_per_page_work(result):
    """Each child's probe (munmap() of a separate locked VMA, just before its mlock) ran, and at 128 MiB
    populated its per-page cost times the populated pages accounts for the exit within 3x: munmap of
    locked pages is the work exit_mmap does per present page."""
    d = measured(result[0])
    assert d["probe_skipped"].isna().all() and (d["probe_munmap_locked_ns_per_page"] > 0).all()
    big = d[d["target_populated_bytes"] == 128 * MiB]
    ratio = big["populated_pages"] * big["probe_munmap_locked_ns_per_page"] * 1e-9 / big["kill_to_reap_s"]
    assert ratio.between(1 / 3, 3).all(), ratio.tolist()


def test_the_probe_takes_its_pages_in_turns_with_the_prefix_and_leaves_before_the_kill(result):
    """With CAP_IPC_LOCK the probe is populated in turns with the prefix's mlock() (`interleaved`), and it
    is unmapped before the kill: the RSS growth at the kill is the target's, less than the probe's 16 MiB
    over it (a probe still mapped would add all of its pages)."""
    from mmlab.kernel import safety

    d = measured(result[0])
    assert (d["probe_layout"] == ("interleaved" if safety.has_cap_ipc_lock() else "separate")).all()
    assert ((d["populated_bytes"] - d["target_populated_bytes"]) < 16 * MiB).all()


def test_with_a_probe_the_kill_still_lands_in_mlock_past_the_prefix(result):
    """The child mlocks all but the tail of the target first; the kill still comes while the whole-VMA
    mlock() populates: more than the prefix is present, mlock() never returned, and the VMA is one
    VM_LOCKED range the exit unlocks (System Mlocked back after each exit is checked above)."""
    d = measured(result[0])
    assert (d["prefix_bytes"] > 0).all() and (d["populated_bytes"] > d["prefix_bytes"]).all()
    assert (~d["mlock_returned"]).all()
