"""Statistics on tidy rows: intervals, ratios of groups, significance, mmtests-style comparison tables."""
import numpy as np
import pandas as pd

from mmlab.core import stats


def _runs(a_values, b_values, metric="kill_to_reap_s"):
    rows = [{"experiment": "sigkill-during-mlock", "run": "A", metric: v, "warmup": False} for v in a_values]
    rows += [{"experiment": "sigkill-during-mlock", "run": "B", metric: v, "warmup": False} for v in b_values]
    return pd.DataFrame(rows)


def test_bootstrap_is_deterministic_for_a_seed():
    """The same rows give the same interval every time, so a rebuilt report shows the same numbers."""
    x = np.random.default_rng(3).normal(1, 0.1, 7)
    y = x * 2
    assert stats.bootstrap_ratio_ci(y, x, seed=5) == stats.bootstrap_ratio_ci(y, x, seed=5)
    assert stats.bootstrap_ci(x, seed=5) == stats.bootstrap_ci(x, seed=5)


def test_ratio_of_a_group_twice_as_slow_is_two_and_significant():
    """Two groups whose times differ by 2x: the ratio's interval holds 2 and excludes 1."""
    base = np.linspace(0.9, 1.1, 9)
    a = stats.estimate(pd.DataFrame({"t": 2 * base}), "t")
    b = stats.estimate(pd.DataFrame({"t": base[::-1]}), "t")
    r, lo, hi = stats.ratio(a, b)
    assert r == 2.0 and lo < 2 < hi
    assert stats.significant(lo, hi) and stats.marker(lo, hi) == "*"


def test_groups_drawn_from_the_same_spread_are_not_significant():
    """Repeats of one distribution split in two: the ratio's interval straddles 1, no marker."""
    x = np.random.default_rng(1).normal(1.0, 0.1, 12)
    r, lo, hi = stats.bootstrap_ratio_ci(x[::2], x[1::2])
    assert lo < 1 < hi and stats.marker(lo, hi) == ""


def test_a_model_interval_is_never_narrowed_by_a_ratio():
    """Single simulated rows carry the model's interval; their ratio spans a.lo/b.hi to a.hi/b.lo."""
    a = stats.estimate(pd.DataFrame({"t": [4.0], "t_lo": [3.0], "t_hi": [5.0]}), "t")
    b = stats.estimate(pd.DataFrame({"t": [1.0], "t_lo": [0.5], "t_hi": [2.0]}), "t")
    assert stats.ratio(a, b) == (4.0, 1.5, 10.0)


def test_warmup_rows_do_not_move_the_estimate():
    """A cold first repetition (MEASURING.md: 2-8x slower) is excluded from medians and intervals."""
    rows = pd.DataFrame({"t": [100.0, 1.0, 1.1, 0.9], "warmup": [True, False, False, False]})
    e = stats.estimate(rows, "t")
    assert e.n == 3 and e.value == 1.0 and e.hi < 100


def test_compare_names_metrics_dotted_and_marks_only_significant_changes():
    """mmtests compare-kernels style: `<experiment>.<metric>`, the base at ratio 1, `*` where it differs."""
    rng = np.random.default_rng(2)
    t = stats.compare(_runs(rng.normal(1, 0.02, 6), rng.normal(3, 0.06, 6)), "run", ["kill_to_reap_s"])
    assert set(t["metric"]) == {"sigkill-during-mlock.kill_to_reap_s"}
    base, other = t.set_index("run").loc["A"], t.set_index("run").loc["B"]
    assert base["ratio"] == 1.0 and base["marker"] == ""
    assert 2.8 < other["ratio"] < 3.2 and other["marker"] == "*"


def test_wide_table_shows_the_change_in_percent_between_stars():
    """A significant +200% change prints as `* +200.xx%*` in the second run's column."""
    rng = np.random.default_rng(4)
    t = stats.compare(_runs(rng.normal(1, 0.01, 6), rng.normal(3, 0.03, 6)), "run", ["kill_to_reap_s"])
    w = stats.compare_wide(t, "run", order=["A", "B"])
    cell = w.loc[("sigkill-during-mlock.kill_to_reap_s", "median"), "B"]
    assert cell.count("*") == 2 and ("+19" in cell or "+20" in cell)
    assert "(  0.00%)" in w.loc[("sigkill-during-mlock.kill_to_reap_s", "median"), "A"]


def test_rows_without_a_warmup_value_count_as_measured():
    """Simulated rows stored beside real ones have no `warmup` (NaN after a concat): they are measured;
    only rows flagged True are warm-ups, in every filter that uses measured_rows."""
    real = pd.DataFrame({"t": [9.0, 1.0], "warmup": [True, False]})
    both = pd.concat([real, pd.DataFrame({"t": [2.0]})], ignore_index=True)
    assert stats.measured_rows(both)["t"].tolist() == [1.0, 2.0]
    assert stats.summary(both.assign(g=1), ["g"], ["t"])["n"].item() == 2


def test_summary_keeps_its_columns_and_excludes_warmups():
    """The notebook-01 summary: n counts measured repeats only, with a CI around the median."""
    rows = pd.DataFrame({"size": [1, 1, 1, 1], "t": [9.0, 1.0, 1.2, 0.8], "warmup": [True, False, False, False]})
    s = stats.summary(rows, by=["size"], metrics=["t"]).iloc[0]
    assert s["n"] == 3 and s["median"] == 1.0 and s["ci_lo"] <= 1.0 <= s["ci_hi"]
