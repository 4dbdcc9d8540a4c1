"""Calibration recovers known per-page costs from synthetic runs; profiles round-trip through JSON."""
import numpy as np
import pandas as pd
import pytest

from mmlab.core.units import PAGE_BYTES
from mmlab.sim.calibrate import calibrate_from_runs, nnls
from mmlab.sim.profile import Profile, desktop_2009, reference

PAGE = PAGE_BYTES
TRUE = {"populate_mlock_ns": 900.0, "munlock_present_ns": 120.0, "zap_present_ns": 200.0, "zap_munlock_ns": 90.0,
        "exit_base_s": 0.002, "empty_table_ns": 40.0, "munlock_call_s": 6e-6, "oom_kill_s": 0.003}
REPLAY_FAULT_NS = 1500.0  # the replay's own per-page cost: calibration must not use it (validation rows)


def synthetic(seed=1, noise=0.03):
    """Rows as the real experiments store them, generated from TRUE costs with multiplicative noise."""
    rng = np.random.default_rng(seed)
    jit = lambda: 1 + noise * rng.standard_normal()  # noqa: E731
    rows = []
    for rep in range(6):
        rows.append({"experiment": "oom-kill", "method": "real", "role": "victim", "warmup": rep == 0,
                     "limit_to_kill_s": TRUE["oom_kill_s"] * jit() * (5 if rep == 0 else 1)})
        rows.append({"experiment": "oom-kill", "method": "real", "role": "bystander", "warmup": rep == 0,
                     "limit_to_kill_s": float("nan")})
        for size in (64 << 20, 256 << 20, (1 << 30) - (2 << 20)):
            p = size // PAGE
            rows.append({"experiment": "mlock-throughput", "method": "real", "mapping": "anon-private", "warmup": rep == 0,
                         "size_bytes": size, "mlock_ns_per_page": TRUE["populate_mlock_ns"] * jit() * (3 if rep == 0 else 1),
                         "munlock_ns_per_page": TRUE["munlock_present_ns"] * jit(),
                         "munmap_ns_per_page": TRUE["zap_present_ns"] * jit()})
            for frac in (0.0, 0.25, 0.5, 0.75):
                pop = int(p * frac)
                fault, mun, zap = ((p - pop) * REPLAY_FAULT_NS * 1e-9 * jit(), p * TRUE["munlock_present_ns"] * 1e-9 * jit(),
                                   p * TRUE["zap_present_ns"] * 1e-9 * jit())
                rows.append({"experiment": "prepatch-replay", "method": "replay", "vma_bytes": size, "populated_bytes": pop * PAGE,
                             "unreached_pages": p - pop, "fault_s": fault, "munlock_s": mun, "replay_s": fault + mun + zap})
                rows.append({"experiment": "sigkill-during-mlock", "method": "real", "vma_bytes": size, "populated_bytes": pop * PAGE,
                             "kill_to_reap_s": (TRUE["exit_base_s"] + pop * (TRUE["zap_present_ns"] + TRUE["zap_munlock_ns"]) * 1e-9) * jit()})
            for frac in (0.0, 0.01, 0.02, 0.05, 0.5):
                pop = int(p * frac)
                empty_pmds = (p - pop) // 512  # below 1 GiB every 2 MiB entry lies in one PMD table
                rows.append({"experiment": "munlock-partial", "method": "real", "variant": "onfault", "vma_bytes": size,
                             "populated_bytes": pop * PAGE, "populated_fraction": frac,
                             "munlock_s": (TRUE["munlock_call_s"] + empty_pmds * TRUE["empty_table_ns"] * 1e-9
                                           + pop * TRUE["munlock_present_ns"] * 1e-9) * jit()})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def fitted():
    return calibrate_from_runs(synthetic(), prior=desktop_2009())


@pytest.mark.parametrize("cost", sorted(set(TRUE) - {"munlock_call_s"}))
def test_calibration_recovers_known_costs_within_10_percent(fitted, cost):
    """Each cost fitted from noisy synthetic runs lies within 10% of the value that generated them."""
    assert fitted[cost] == pytest.approx(TRUE[cost], rel=0.10)


def test_without_munmap_timings_the_modern_exit_per_page_is_kept_whole():
    """Runs stored before mlock-throughput timed munmap: the zap is the exit's per-page cost less a munlock(),
    munlock while zapping is taken as a munlock(), and their sum is still the exit's per-page cost."""
    f = calibrate_from_runs(synthetic().drop(columns="munmap_ns_per_page"), prior=desktop_2009())
    assert f["zap_munlock_ns"] == pytest.approx(f["munlock_present_ns"])
    assert f["zap_present_ns"] + f["zap_munlock_ns"] == pytest.approx(TRUE["zap_present_ns"] + TRUE["zap_munlock_ns"], rel=0.05)


def test_syscall_cost_is_recovered_from_noise_free_runs():
    """munlock_call_s (microseconds beside milliseconds) is identifiable only without noise: then exactly."""
    assert calibrate_from_runs(synthetic(noise=0.0))["munlock_call_s"] == pytest.approx(TRUE["munlock_call_s"], rel=0.01)


def test_calibration_recovers_per_call_base_and_per_pmd_cost_from_sparse_munlock_rows():
    """munlock() of a range populated at most 10% costs a per-call base plus one step per empty 2 MiB PMD
    entry walked (5.18+ walk_page_range): both come back within 10% from rows with 3% noise."""
    f = calibrate_from_runs(synthetic(seed=7), prior=desktop_2009())
    assert f["munlock_call_s"] == pytest.approx(TRUE["munlock_call_s"], rel=0.10)
    assert f["empty_table_ns"] == pytest.approx(TRUE["empty_table_ns"], rel=0.10)


def test_fault_cost_comes_from_mlock_throughput_not_from_the_replay_it_is_validated_against(fitted):
    """fault_zero_ns is mlock's per-page populate (the same GUP fault), not the replay's own 1500 ns/page."""
    assert fitted["fault_zero_ns"] == pytest.approx(TRUE["populate_mlock_ns"], rel=0.10)


@pytest.mark.parametrize("cost", sorted(TRUE))
def test_fitted_interval_contains_the_value(fitted, cost):
    """Every fitted cost carries an interval lo <= value <= hi."""
    c = fitted.costs[cost]
    assert c.lo <= c.value <= c.hi


def test_warmup_rows_are_ignored(fitted):
    """Warm-up repetitions (3x slower here) do not pull the mlock cost up."""
    assert fitted["populate_mlock_ns"] < 1000


def test_costs_without_data_keep_the_prior_and_say_so(fitted):
    """cow_ns and pte_none_ns are measured by no fitted rows: they stay the prior's, labelled as such."""
    assert fitted["pte_none_ns"] == desktop_2009()["pte_none_ns"]
    assert fitted["cow_ns"] == desktop_2009()["cow_ns"] and fitted.costs["cow_ns"].source.startswith("prior")


def test_no_rows_gives_the_prior():
    """With no real rows, calibration returns the prior's costs."""
    p = calibrate_from_runs(pd.DataFrame(columns=["experiment", "method"]))
    assert all(p[k] == reference()[k] for k in p.costs)


def test_nnls_never_returns_negative_costs():
    """A fit that would want a negative coefficient clamps it at zero."""
    X = np.c_[np.ones(4), np.arange(4.0)]
    assert (nnls(X, np.array([3.0, 2.0, 1.0, 0.0])) >= 0).all()


def test_profile_round_trips_through_json(tmp_path, fitted):
    """save then load gives the same costs."""
    path = fitted.save(tmp_path / "p.json")
    assert Profile.load(path).costs == fitted.costs


def test_main_calibrate_with_an_empty_store_saves_the_prior_to_the_given_path(tmp_path, capsys):
    """The CLI edge reads the (here empty) store, saves a loadable profile where asked and prints its table."""
    prof, path = __import__("mmlab.sim.calibrate", fromlist=["x"]).main_calibrate(tmp_path / "host.json")
    assert path.exists() and Profile.load(path).costs == prof.costs
    assert "fault_zero_ns" in capsys.readouterr().out


def test_calibrate_keeps_this_hosts_profile_with_the_runs_not_in_the_tracked_reference(isolated_store):
    """Without --out the host's profile goes into the (git-ignored) runs folder, and the `host` profile
    that notebooks name is loaded from there; data/reference keeps only the shipped reference."""
    from mmlab.core import paths
    from mmlab.sim.calibrate import main_calibrate
    from mmlab.sim.profile import by_name

    before = sorted(paths.REFERENCE_DIR.iterdir())
    prof, path = main_calibrate()
    assert path.parent == isolated_store and sorted(paths.REFERENCE_DIR.iterdir()) == before
    assert by_name("host").costs == prof.costs


def saved_without(tmp_path, profile: Profile, cost: str) -> Profile:
    """`profile` as an older mmlab would have saved it (as host-old, before `cost` existed), loaded back."""
    import json

    d = profile.to_dict()
    d["name"] = "host-old"
    del d["costs"][cost]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(d))
    return Profile.load(path)


def test_a_profile_saved_before_a_cost_existed_takes_it_from_the_reference(tmp_path):
    """A host profile written by an older mmlab (no oom_kill_s) still loads; the missing cost is the
    reference's and its source says so."""
    old = saved_without(tmp_path, desktop_2009(), "oom_kill_s")
    assert old["oom_kill_s"] == reference()["oom_kill_s"]
    assert old.costs["oom_kill_s"].source.startswith("prior (reference, not in this file)")


def test_a_profile_saved_before_the_zap_was_split_keeps_its_modern_exit_per_page(tmp_path):
    """A file from before zap_munlock_ns fitted its zap as the exit's per-page cost less munlock_present_ns:
    loaded, it prices munlock while zapping as that same munlock_present_ns, so a 5.18 exit costs what it did."""
    from mmlab.sim import sigkill
    from mmlab.sim.eras import LATEST

    old = saved_without(tmp_path, reference(), "zap_munlock_ns")
    assert old["zap_munlock_ns"] == old["munlock_present_ns"]
    per = (sigkill.run(LATEST, old, 1 << 18, 1 << 16)["exit_s"] - old["exit_base_s"]) / (1 << 16) * 1e9
    assert per == pytest.approx(old["zap_present_ns"] + old["munlock_present_ns"])


def test_file_costs_come_from_the_file_mapping_rows():
    """A shared write fault, a writeback and a disk read per page are fitted from file-mapping rows: the
    warm shared populate_write, the writeback, and cold populate_read less warm."""
    rows = []
    for rep in range(4):
        for cache, read_ns in (("cold", 4000.0), ("warm", 300.0)):
            base = {"experiment": "file-mapping", "method": "real", "warmup": rep == 0, "filesystem": "disk",
                    "mapping": "shared", "page_cache": cache}
            rows += [{**base, "operation": "populate_read", "ns_per_page": read_ns},
                     {**base, "operation": "populate_write", "ns_per_page": 1500.0 if cache == "warm" else 5000.0},
                     {**base, "operation": "writeback", "ns_per_page": 2500.0}]
    prof = calibrate_from_runs(pd.DataFrame(rows), prior=desktop_2009())
    assert prof["file_write_fault_ns"] == pytest.approx(1500.0)
    assert prof["writeback_ns"] == pytest.approx(2500.0)
    assert prof["file_read_ns"] == pytest.approx(3700.0)


def test_traced_oom_kill_rows_give_the_kernels_own_kill_and_exit_times():
    """Victim rows with tracepoint times: oom_kill_s is the kernel's first reclaim at the limit to
    mark_victim (not user space's later view), oom_kill_to_exit_s the SIGKILL to do_exit, memcg_limit_s the
    reclaim retries before the charge is given up (first reclaim to the OOM killer invoked)."""
    import pandas as pd

    from mmlab.sim.calibrate import calibrate_from_runs

    rows = pd.DataFrame([{"experiment": "oom-kill", "method": "real", "role": "victim", "warmup": False, "repeat": i,
                          "limit_to_kill_s": 0.009, "k_limit_s": 0.100 + i * 1e-3, "k_oom_invoked_s": 0.1005 + i * 1e-3,
                          "k_mark_victim_s": 0.1012 + i * 1e-3,
                          "k_kill_to_exit_s": 0.004} for i in range(3)])
    p = calibrate_from_runs(rows)
    assert abs(p["oom_kill_s"] - 0.0012) < 1e-9 and abs(p["oom_kill_to_exit_s"] - 0.004) < 1e-12
    assert abs(p["memcg_limit_s"] - 0.0005) < 1e-9
    assert "traced" in p.costs["oom_kill_s"].source
