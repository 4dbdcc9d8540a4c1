"""oom-kill at small sizes: the mlocking victim is OOM-killed inside its memory cgroup and the bystanders
survive with their memory intact."""
import json
import os
import subprocess
import sys

import pytest

import mmlab
from mmlab.core.params import ParamError
from mmlab.experiments import oom_kill

from .conftest import MLOCKED_SLACK_BYTES, needs_root
from .test_exp_safety import groups_of, run_between_counts

MiB = 1 << 20
pytestmark = needs_root


@pytest.fixture(scope="module")
def result():
    return run_between_counts("oom-kill", limit_bytes="64MiB", lock_bytes="256MiB", bystanders=2, bystander_bytes="4MiB", repeats=2, warmup=0)


def role(result, name):
    d = result[0].rows
    return d[d["role"] == name]


def test_one_row_per_process_per_repeat(result):
    d = result[0].rows
    per = d.groupby(["repeat", "role"]).size()
    assert len(d) == 2 * 3 and (per.xs("victim", level="role") == 1).all() and (per.xs("bystander", level="role") == 2).all()


def test_the_victim_is_killed_by_sigkill(result):
    v = role(result, "victim")
    assert (~v["survived"]).all() and (v["term_signal"] == 9).all()
    assert (v["start_to_kill_s"] > 0).all() and (v["kill_to_reap_s"] > 0).all()


def test_the_limit_is_hit_before_the_kill_and_after_mlock_began(result):
    """The group's failed-charge count rises no later than its oom_kill count as the parent polls them,
    and after mlock() began: 0 <= limit_to_kill < start_to_kill. Both can rise within one poll (the kernel
    kills 0.7-2 ms after the first failed charge, here traced), so where the kernel's tracepoints are in
    the row its own order is checked strictly: the first reclaim at the limit comes before mark_victim."""
    v = role(result, "victim")
    assert ((v["limit_to_kill_s"] >= 0) & (v["limit_to_kill_s"] < v["start_to_kill_s"])).all()
    if {"k_limit_s", "k_mark_victim_s"} <= set(v):  # traced (tracefs readable)
        traced = v.dropna(subset=["k_limit_s", "k_mark_victim_s"])
        assert (traced["k_limit_s"] < traced["k_mark_victim_s"]).all()


def test_the_victim_died_at_the_groups_limit(result):
    """The victim had populated more than half the limit and not more than it: mlock was stopped by the limit."""
    v = role(result, "victim")
    assert ((v["populated_at_death_bytes"] > 32 * MiB) & (v["populated_at_death_bytes"] <= 64 * MiB)).all()


def test_bystanders_survive_with_their_memory_intact(result):
    """Every bystander is alive after the OOM kill, its CRC unchanged and all its pages resident."""
    b = role(result, "bystander")
    assert b["survived"].all() and b["term_signal"].isna().all()
    assert b["memory_intact"].all() and (b["resident_at_check_bytes"] >= 4 * MiB).all()


def test_the_group_counts_exactly_one_oom_kill_per_repeat(result):
    assert (result[0].rows["cgroup_oom_kill"] == 1).all()


def test_nothing_is_left_behind(result):
    _, before, after = result
    assert abs(after - before) <= MLOCKED_SLACK_BYTES
    assert groups_of(os.getpid()) == []


def test_outcome_counts_killed_victims_and_intact_bystanders(result):
    o = oom_kill.outcome(result[0].rows)
    assert o["victims_killed"] == 2 and o["bystanders_alive"] == o["bystanders_intact"] == 4
    assert "bystanders survive" in oom_kill.findings(result[0].rows)


def test_a_lock_not_above_the_limit_is_refused():
    with pytest.raises(ParamError, match="lock_bytes"):
        mmlab.experiment("oom-kill", limit_bytes="256MiB", lock_bytes="128MiB", save=False, progress=False)


def test_without_a_memory_cgroup_it_is_skipped_with_the_reason(monkeypatch):
    monkeypatch.setattr(oom_kill, "hierarchy", lambda: (None, "no memory cgroup controller is mounted"))
    r = mmlab.experiment("oom-kill", save=False, progress=False)
    assert r.skipped and "no memory cgroup controller is mounted" in r.skipped and r.rows.empty


def test_cli_contract_victim_killed_and_both_bystanders_alive():
    """From the command line, 1 GiB mlocked under a 256 MiB limit beside two bystanders: the victim is killed
    and both bystanders are alive, in every repeat."""
    out = subprocess.run([sys.executable, "-m", "mmlab", "experiment", "oom-kill", "-p", "limit_bytes", "256MiB",
                          "-p", "lock_bytes", "1GiB", "-p", "bystanders", "2", "-p", "bystander_bytes", "32MiB",
                          "--json", "--no-save"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    victims = [r for r in rows if r["role"] == "victim"]
    bystanders = [r for r in rows if r["role"] == "bystander"]
    assert victims and all(not r["survived"] and r["term_signal"] == 9 for r in victims)
    assert len(bystanders) == 2 * len(victims) and all(r["survived"] and r["term_signal"] is None for r in bystanders)
