"""The summary's tables and sentences: every number read from the rows, missing data said, not hidden."""
import re

import numpy as np
import pandas as pd

from mmlab.study import estimates as es
from mmlab.study import headline as h
from mmlab.study import sentences
from mmlab.study import series as sr

MiB = 1 << 20


def _model(kernel, seconds, lo, hi, vma=256 * MiB, populated=64 * MiB):
    return {"experiment": "sigkill-during-mlock", "method": "simulated", "kernel": kernel, "vma_bytes": vma,
            "populated_bytes": populated, "kill_to_reap_s": seconds, "kill_to_reap_s_lo": lo, "kill_to_reap_s_hi": hi}


def _real(values, vma=256 * MiB, target=64 * MiB, overshoot=3 * 4096):
    return [{"experiment": "sigkill-during-mlock", "method": "real", "vma_bytes": vma, "target_populated_bytes": target,
             "populated_bytes": target + overshoot * (i + 1), "kill_to_reap_s": v, "repeat": i, "warmup": False}
            for i, v in enumerate(values)]


def _summary(rows, fraction=0.25, missing=None):
    labelled = sr.label(pd.DataFrame(rows), "2.6.31", "2.6.32")
    est = es.estimates(labelled, sr.SIGKILL)
    rat = es.ratios(est)
    return est, rat, sentences.sentence(sr.SIGKILL, est, rat, sr.series_labels("2.6.31", "2.6.32", "6.18"), fraction,
                                missing=missing)


def test_rows_are_sorted_into_pre_patch_post_patch_and_this_kernel():
    """Simulated 2.6.31 is pre-patch, 2.6.32 post-patch, replays pre-patch work here, real rows this kernel."""
    rows = pd.DataFrame([{"method": "simulated", "kernel": "2.6.31"}, {"method": "simulated", "kernel": "2.6.32"},
                         {"method": "replay", "kernel": None}, {"method": "real", "kernel": None}])
    assert list(sr.label(rows, "2.6.31", "2.6.32")["series"]) == [sr.PRE, sr.POST, sr.REPLAY, sr.REAL]


def test_a_real_run_is_placed_at_its_target_not_where_mlock_stopped():
    """mlock stops a few pages past the kill target; repeats with different overshoots are one point."""
    est, _, _ = _summary(_real([0.01, 0.011, 0.012]))
    assert list(est["point_bytes"]) == [64 * MiB] and int(est["n"].iloc[0]) == 3


def test_sentence_quotes_the_ratio_and_its_model_range_found_in_the_rows():
    """A 41x pre/post difference in the model rows reads back as 41x, with the model range they imply,
    named as a model range of simulated sides and never as a confidence interval."""
    rows = [_model("2.6.31", 4.1, 3.8, 4.4), _model("2.6.32", 0.1, 0.1, 0.1), *_real([0.09, 0.1, 0.11])]
    _, rat, text = _summary(rows)
    assert "exit took 41x as long before the patch" in text and "model range 38x–44x" in text
    assert "both sides simulated" in text
    simulated_sentences = [t for t in text.split(". ") if "simulated" in t]
    assert simulated_sentences and not any(re.search(r"\bCI\b", t) for t in simulated_sentences)
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
    _, _, text = _summary(rows, missing={sr.REAL: "oom-kill: no memory cgroup", sr.REPLAY: "prepatch-replay: skipped"})
    assert "41x" in text and "No measured rows on this kernel: oom-kill: no memory cgroup" in text
    assert "No replay rows: prepatch-replay: skipped" in text


def test_simulated_pre_patch_exit_is_significantly_slower_than_post_patch():
    """The 2.6.31 model faults in every unreached page at exit, 2.6.32 none: at 25% populated the
    exit is several times slower before the patch and the interval excludes 1."""
    prm = h.SummaryParams(vma_bytes="256MiB", populated_fractions="0.25")
    s = h.summarise(sr.SIGKILL, pd.DataFrame(columns=["experiment", "method"]), prm, "6.18")
    r = s.ratios.set_index(["num", "den"]).loc[(sr.PRE, sr.POST)]
    assert r["ratio"] > 2 and r["significant"]
    assert re.search(r"exit took [0-9.]+x as long before the patch", s.sentence)


def test_replay_twins_count_as_this_kernels_measurement_at_the_same_point():
    """A replay row's twin (same state, SIGKILLed on this kernel) is a real kill-to-reap at that point;
    replays at a memory cgroup limit are left out of the free-memory comparison."""
    stored = pd.DataFrame([
        {"experiment": "prepatch-replay", "method": "replay", "setting": "free", "vma_bytes": 64 * MiB,
         "target_populated_bytes": 16 * MiB, "replay_s": 0.02, "modern_kill_to_reap_s": 0.002, "warmup": False},
        {"experiment": "prepatch-replay", "method": "replay", "setting": "cgroup-oom", "vma_bytes": 64 * MiB,
         "target_populated_bytes": 16 * MiB, "replay_s": 0.5, "modern_kill_to_reap_s": 0.002, "warmup": False}])
    m = sr.measured_for("sigkill-during-mlock", stored)
    assert sorted(m["method"]) == ["real", "replay"]
    assert m.loc[m["method"] == "real", "kill_to_reap_s"].tolist() == [0.002]
    assert m.loc[m["method"] == "replay", "replay_s"].tolist() == [0.02]


def test_oom_outcomes_count_the_bystanders_killed():
    """Per series: bystanders killed out of those present, across trials."""
    rows = pd.DataFrame([
        {"series": sr.REAL, "role": "victim", "survived": False, "kill_to_reap_s": 0.03, "repeat": 0},
        {"series": sr.REAL, "role": "bystander", "survived": True, "kill_to_reap_s": np.nan, "repeat": 0},
        {"series": sr.REAL, "role": "bystander", "survived": False, "kill_to_reap_s": np.nan, "repeat": 0},
        {"series": sr.REAL, "role": "victim", "survived": False, "kill_to_reap_s": 0.04, "repeat": 1},
        {"series": sr.REAL, "role": "bystander", "survived": True, "kill_to_reap_s": np.nan, "repeat": 1},
        {"series": sr.REAL, "role": "bystander", "survived": True, "kill_to_reap_s": np.nan, "repeat": 1}])
    o = es.oom_outcomes(rows).iloc[0]
    assert (o["trials"], o["bystanders"], o["bystanders_killed"], o["victims_killed"]) == (2, 4, 1, 2)


def test_oom_model_matches_the_measured_cgroup():
    """The simulated machine gets the measured group's limit as RAM, its bystanders, and the mlock size."""
    rows = pd.DataFrame([{"method": "real", "role": "victim", "limit_bytes": 256 * MiB, "bystanders": 2,
                          "bystander_bytes": 32 * MiB, "lock_bytes": 1 << 30}])
    v = sr.oom_sim_values(rows, {})
    assert (v["ram_bytes"], v["bystanders"], v["free_bytes"], v["vma_bytes"]) == (256 * MiB, 2, 192 * MiB, 1 << 30)


def test_interval_is_named_for_what_it_is():
    """Seven measured repeats give a bootstrap 95% CI, three only their min-max range, one a single
    trial; a model's bounds are its model range."""
    def kind(values):
        return es.estimates(sr.label(pd.DataFrame(_real(values)), "2.6.31", "2.6.32"), sr.SIGKILL)["kind"].iloc[0]

    assert kind([0.01 * (1 + i / 50) for i in range(7)]) == es.CI
    assert kind([0.020, 0.031, 0.025]) == es.RANGE
    assert kind([0.02]) == es.ONE
    est = es.estimates(sr.label(pd.DataFrame([_model("2.6.31", 4.1, 3.8, 4.4)]), "2.6.31", "2.6.32"), sr.SIGKILL)
    assert est["kind"].iloc[0] == es.MODEL


def test_a_range_of_three_repeats_is_their_min_and_max():
    """With three repeats the interval shown is exactly the smallest and largest of them."""
    est = es.estimates(sr.label(pd.DataFrame(_real([0.020, 0.031, 0.025])), "2.6.31", "2.6.32"), sr.SIGKILL).iloc[0]
    assert (est["lo_s"], est["hi_s"], est["median_s"]) == (0.020, 0.031, 0.025)


def test_ratio_with_a_simulated_side_says_so():
    """This kernel measured over 2.6.32 simulated: a model range, with the denominator named simulated."""
    rows = [_model("2.6.31", 4.1, 3.8, 4.4), _model("2.6.32", 0.1, 0.09, 0.11), *_real([0.09 + i / 1000 for i in range(7)])]
    est, rat, _ = _summary(rows)
    r = rat.set_index(["num", "den"]).loc[(sr.REAL, sr.POST)]
    assert r["kind"] == es.MODEL and r["sides"] == "denominator simulated"


def test_claims_name_their_evidence_and_never_call_a_model_range_ci():
    """The three claims of the index: each says whether its number is replayed, measured or simulated
    (and on which profile); a claim that quotes a simulation never says CI."""
    prm = h.SummaryParams(vma_bytes="256MiB", populated_fractions="0.25")
    empty = pd.DataFrame(columns=["experiment", "method"])
    s1 = h.summarise(sr.SIGKILL, empty, prm, "6.18")
    s2 = h.summarise(sr.MUNLOCK, empty, prm, "6.18")
    s3 = h.summarise_oom(empty, prm, "6.18")
    claims = h.claims(s1, s2, s3, prm.profile)
    assert len(claims) == 3
    for c in claims:
        assert "simulated" in c.lower() or "replayed here" in c.lower() or "measured here" in c.lower()
        assert "reference profile" in c and not re.search(r"\bCI\b", c)
        assert "](00-summary.html#" in c


def test_exit_claim_quotes_the_replay_against_this_kernel_at_one_point():
    """With replayed and measured exits at the same point, claim 1 quotes that point, both medians, and
    a bootstrap 95% CI naming the repeats on each side."""
    stored = pd.DataFrame([
        {"experiment": "prepatch-replay", "method": "replay", "setting": "free", "vma_bytes": 256 * MiB,
         "target_populated_bytes": 64 * MiB, "replay_s": 0.15 + i / 1000, "modern_kill_to_reap_s": 0.014 + i / 10000,
         "warmup": False, "repeat": i} for i in range(7)])
    prm = h.SummaryParams(vma_bytes="256MiB", populated_fractions="0.25")
    s1 = h.summarise(sr.SIGKILL, stored, prm, "6.18")
    text = sentences.claim_exit(s1.estimates, s1.ratios, "reference", "00-summary.html", "sigkill")
    assert "256 MiB VMA 25% populated" in text and "Replayed here" in text
    assert "95% CI" in text and "n = 7 and 7" in text and "both sides measured" in text


def test_a_pre_patch_exit_that_runs_out_of_memory_shows_its_outcome_not_a_time():
    """A simulated 2.6.31 point that ran the machine out of memory (time null, outcome panic) is shown as
    that outcome in the table and the sentence, and no before/after ratio is computed from it."""
    from mmlab.study import wording

    gone = dict(_model("2.6.31", float("nan"), float("nan"), float("nan"), vma=64 << 30), outcome="panic")
    rows = [gone, dict(_model("2.6.32", 0.9, 0.3, 4.5, vma=64 << 30), outcome="exited"),
            *_real([0.03, 0.031, 0.032], vma=64 << 30)]
    est, rat, text = _summary(rows)
    labels = sr.series_labels("2.6.31", "2.6.32", "6.18")
    tab = wording.table(est, labels, "reference").set_index("series")
    assert "panic" in tab.loc[labels[sr.PRE], "time (median)"]
    assert rat[(rat.num == sr.PRE)].empty
    assert "no time" in text and "panic" in text


def _munlock_stored(with_measured: bool) -> pd.DataFrame:
    rows = [{"experiment": "prepatch-replay", "method": "replay", "setting": "free", "vma_bytes": 64 * MiB,
             "target_populated_bytes": 16 * MiB, "replay_s": 0.03, "fault_s": 0.020 + i / 1000, "munlock_s": 0.004,
             "modern_kill_to_reap_s": 0.003, "warmup": False, "repeat": i} for i in range(7)]
    if with_measured:
        rows += [{"experiment": "munlock-partial", "method": "real", "variant": "onfault", "vma_bytes": 64 * MiB,
                  "target_populated_fraction": 0.25, "munlock_s": 0.0015 + i / 100000, "warmup": False, "repeat": i}
                 for i in range(7)]
    return pd.DataFrame(rows)


def test_munlock_claim_sets_the_replay_beside_this_kernels_measured_munlock_at_one_point():
    """With the replay and 03's measured munlock() at the same 64 MiB, 25% point, claim 2 compares the
    two measured sides (bootstrap CI, n on each side) and links both detailed pages."""
    prm = h.SummaryParams(vma_bytes="64MiB", populated_fractions="0.25")
    s2 = h.summarise(sr.MUNLOCK, _munlock_stored(True), prm, "6.18")
    text = sentences.claim_munlock(s2.estimates, s2.ratios, "reference", "00-summary.html", "munlock")
    assert "64 MiB VMA 25% populated" in text and "measured munlock()" in text
    assert "both sides measured" in text and "n = 7 and 7" in text
    assert "[05-prepatch-replay](05-prepatch-replay.html)" in text and "[03-munlock-partial](03-munlock-partial.html)" in text


def test_munlock_claim_without_a_measured_munlock_says_its_other_side_is_simulated():
    """Without 03's point, the replay stands beside the 2.6.32 model, said in its own sentence, so the
    replay's CI never shares a sentence with a simulated figure."""
    prm = h.SummaryParams(vma_bytes="64MiB", populated_fractions="0.25")
    s2 = h.summarise(sr.MUNLOCK, _munlock_stored(False), prm, "6.18")
    text = sentences.claim_munlock(s2.estimates, s2.ratios, "reference", "00-summary.html", "munlock")
    assert "No munlock() was measured on this kernel at that point" in text
    for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9*])", text):
        assert not (re.search("simulat", sentence) and re.search(r"\bCI\b", sentence)), sentence


def test_summary_table_links_the_page_each_measured_row_is_shown_on():
    """The "shown in" column of the summary's table links the notebook page of measured rows; a
    simulated row says it is shown on the summary page itself."""
    from mmlab.study.summary_figures import table_html

    prm = h.SummaryParams(vma_bytes="64MiB", populated_fractions="0.25")
    s2 = h.summarise(sr.MUNLOCK, _munlock_stored(True), prm, "6.18")
    page = table_html(s2.table)
    assert '<a href="03-munlock-partial.html">03-munlock-partial</a>' in page
    assert '<a href="05-prepatch-replay.html">05-prepatch-replay</a>' in page
    assert "this page (simulated)" in page
