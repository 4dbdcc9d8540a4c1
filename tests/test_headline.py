"""The summary's tables and sentences: every number read from the rows, missing data said, not hidden."""
import re

import numpy as np
import pandas as pd

from mmlab.study import headline as h

MiB = 1 << 20


def _model(kernel, seconds, lo, hi, vma=256 * MiB, populated=64 * MiB):
    return {"experiment": "sigkill-during-mlock", "method": "simulated", "kernel": kernel, "vma_bytes": vma,
            "populated_bytes": populated, "kill_to_reap_s": seconds, "kill_to_reap_s_lo": lo, "kill_to_reap_s_hi": hi}


def _real(values, vma=256 * MiB, target=64 * MiB, overshoot=3 * 4096):
    return [{"experiment": "sigkill-during-mlock", "method": "real", "vma_bytes": vma, "target_populated_bytes": target,
             "populated_bytes": target + overshoot * (i + 1), "kill_to_reap_s": v, "repeat": i, "warmup": False}
            for i, v in enumerate(values)]


def _summary(rows, fraction=0.25, missing=None):
    labelled = h.label(pd.DataFrame(rows), "2.6.31", "2.6.32")
    est = h.estimates(labelled, h.SIGKILL)
    rat = h.ratios(est)
    return est, rat, h.sentence(h.SIGKILL, est, rat, h.series_labels("2.6.31", "2.6.32", "6.18"), fraction,
                                missing=missing)


def test_rows_are_sorted_into_pre_patch_post_patch_and_this_kernel():
    """Simulated 2.6.31 is pre-patch, 2.6.32 post-patch, replays pre-patch work here, real rows this kernel."""
    rows = pd.DataFrame([{"method": "simulated", "kernel": "2.6.31"}, {"method": "simulated", "kernel": "2.6.32"},
                         {"method": "replay", "kernel": None}, {"method": "real", "kernel": None}])
    assert list(h.label(rows, "2.6.31", "2.6.32")["series"]) == [h.PRE, h.POST, h.REPLAY, h.REAL]


def test_a_real_run_is_placed_at_its_target_not_where_mlock_stopped():
    """mlock stops a few pages past the kill target; repeats with different overshoots are one point."""
    est, _, _ = _summary(_real([0.01, 0.011, 0.012]))
    assert list(est["point_bytes"]) == [64 * MiB] and int(est["n"].iloc[0]) == 3


def test_sentence_quotes_the_ratio_and_interval_found_in_the_rows():
    """A 41x pre/post difference in the model rows reads back as 41x, with the interval they imply."""
    rows = [_model("2.6.31", 4.1, 3.8, 4.4), _model("2.6.32", 0.1, 0.1, 0.1), *_real([0.09, 0.1, 0.11])]
    _, rat, text = _summary(rows)
    assert "exit took 41x longer before the patch" in text and "CI 38x-44x" in text
    assert "25% populated" in text


def test_sentence_changes_when_the_data_change():
    """Nothing is typed in: a different pre-patch time gives a different sentence."""
    base = [_model("2.6.32", 0.1, 0.1, 0.1), *_real([0.09, 0.1, 0.11])]
    _, _, a = _summary([_model("2.6.31", 4.1, 3.8, 4.4), *base])
    _, _, b = _summary([_model("2.6.31", 1.2, 1.1, 1.3), *base])
    assert "41x" in a and "12x" in b and "41x" not in b


def test_missing_measurements_are_said_with_their_reason():
    """With no real or replay rows the sentence says so, naming why, and still quotes the models."""
    rows = [_model("2.6.31", 4.1, 3.8, 4.4), _model("2.6.32", 0.1, 0.1, 0.1)]
    _, _, text = _summary(rows, missing={h.REAL: "oom-kill: no memory cgroup", h.REPLAY: "prepatch-replay: skipped"})
    assert "41x" in text and "No measured rows on this kernel: oom-kill: no memory cgroup" in text
    assert "No replay rows: prepatch-replay: skipped" in text


def test_simulated_pre_patch_exit_is_significantly_slower_than_post_patch():
    """The 2.6.31 model faults in every unreached page at exit, 2.6.32 none: at 25% populated the
    exit is several times slower before the patch and the interval excludes 1."""
    prm = h.SummaryParams(vma_bytes="256MiB", populated_fractions="0.25")
    s = h.summarise(h.SIGKILL, pd.DataFrame(columns=["experiment", "method"]), prm, "6.18")
    r = s.ratios.set_index(["num", "den"]).loc[(h.PRE, h.POST)]
    assert r["ratio"] > 2 and r["significant"]
    assert re.search(r"exit took [0-9.]+x longer before the patch", s.sentence)


def test_replay_twins_count_as_this_kernels_measurement_at_the_same_point():
    """A replay row's twin (same state, SIGKILLed on this kernel) is a real kill-to-reap at that point;
    replays at a memory cgroup limit are left out of the free-memory comparison."""
    stored = pd.DataFrame([
        {"experiment": "prepatch-replay", "method": "replay", "setting": "free", "vma_bytes": 64 * MiB,
         "target_populated_bytes": 16 * MiB, "replay_s": 0.02, "modern_kill_to_reap_s": 0.002, "warmup": False},
        {"experiment": "prepatch-replay", "method": "replay", "setting": "cgroup-oom", "vma_bytes": 64 * MiB,
         "target_populated_bytes": 16 * MiB, "replay_s": 0.5, "modern_kill_to_reap_s": 0.002, "warmup": False}])
    m = h.measured_for("sigkill-during-mlock", stored)
    assert sorted(m["method"]) == ["real", "replay"]
    assert m.loc[m["method"] == "real", "kill_to_reap_s"].tolist() == [0.002]
    assert m.loc[m["method"] == "replay", "replay_s"].tolist() == [0.02]


def test_oom_outcomes_count_the_bystanders_killed():
    """Per series: bystanders killed out of those present, across trials."""
    rows = pd.DataFrame([
        {"series": h.REAL, "role": "victim", "survived": False, "kill_to_reap_s": 0.03, "repeat": 0},
        {"series": h.REAL, "role": "bystander", "survived": True, "kill_to_reap_s": np.nan, "repeat": 0},
        {"series": h.REAL, "role": "bystander", "survived": False, "kill_to_reap_s": np.nan, "repeat": 0},
        {"series": h.REAL, "role": "victim", "survived": False, "kill_to_reap_s": 0.04, "repeat": 1},
        {"series": h.REAL, "role": "bystander", "survived": True, "kill_to_reap_s": np.nan, "repeat": 1},
        {"series": h.REAL, "role": "bystander", "survived": True, "kill_to_reap_s": np.nan, "repeat": 1}])
    o = h.oom_outcomes(rows).iloc[0]
    assert (o["trials"], o["bystanders"], o["bystanders_killed"], o["victims_killed"]) == (2, 4, 1, 2)


def test_oom_model_matches_the_measured_cgroup():
    """The simulated machine gets the measured group's limit as RAM, its bystanders, and the mlock size."""
    rows = pd.DataFrame([{"method": "real", "role": "victim", "limit_bytes": 256 * MiB, "bystanders": 2,
                          "bystander_bytes": 32 * MiB, "lock_bytes": 1 << 30}])
    v = h.oom_sim_values(rows, {})
    assert (v["ram_bytes"], v["bystanders"], v["free_bytes"], v["vma_bytes"]) == (256 * MiB, 2, 192 * MiB, 1 << 30)


def test_a_pre_patch_exit_that_runs_out_of_memory_shows_its_outcome_not_a_time():
    """A simulated 2.6.31 point that ran the machine out of memory (time null, outcome panic) is shown as
    that outcome in the table and the sentence, and no before/after ratio is computed from it."""
    gone = dict(_model("2.6.31", float("nan"), float("nan"), float("nan"), vma=64 << 30), outcome="panic")
    rows = [gone, dict(_model("2.6.32", 0.9, 0.3, 4.5, vma=64 << 30), outcome="exited"),
            *_real([0.03, 0.031, 0.032], vma=64 << 30)]
    est, rat, text = _summary(rows)
    labels = h.series_labels("2.6.31", "2.6.32", "6.18")
    tab = h.table(est, rat, labels).iloc[0]
    assert "panic" in tab[labels[h.PRE]] and "panic" in tab["before/after the patch (simulated)"]
    assert rat[(rat.num == h.PRE)].empty
    assert "no time" in text and "panic" in text
