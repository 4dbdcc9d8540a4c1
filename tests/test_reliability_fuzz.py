"""Bad input, fuzzed (hypothesis): every parameter of every real experiment and simulated scenario, and
the CLI commands that take them. Negative, zero, huge, wrong unit, wrong type, NaN, empty, unknown
names: always a ParamError whose one line names the parameter and what is allowed; from the command
line exit code 2 with that one line and no traceback, and nothing run or written. Corrupted or partial
run folders are skipped by `mmlab.load()` with a warning naming them.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import warnings
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import mmlab
from mmlab import cli, experiments
from mmlab.core import store
from mmlab.core.params import ParamError
from tests.conftest_reliability import (
    PYTHON,
    ROOT,
    children_of,
    experiment_names,
    mmlab_env,
    new_tag,
    one_line_error,
    scenario_names,
    tagged_pids,
)

pytestmark = pytest.mark.reliability
def fast(examples: int = 25) -> settings:
    """Bounded, no deadline (the CLI parts start subprocess-free but import heavy modules once), and no
    example database written into the project."""
    return settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=examples, database=None)


def param_classes() -> list[tuple[str, type]]:
    out = [(f"experiment:{n}", experiments.get(n).Params) for n in experiment_names()]
    if scenario_names():
        from mmlab import sim

        out += [(f"scenario:{n}", sim.SCENARIOS[n].Params) for n in scenario_names()]
    return out


CLASSES = param_classes()
FIELDS = [(label, cls, name, spec) for label, cls in CLASSES for name, spec in cls.specs().items()]


# ------------------------------------------------------------------------------- bad-value strategies
WRONG_TYPE = st.one_of(st.none(), st.binary(max_size=4), st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=2),
                       st.lists(st.dictionaries(st.text(max_size=2), st.integers(), min_size=1, max_size=1), min_size=1, max_size=2),
                       st.just(object()), st.complex_numbers(allow_nan=False, allow_infinity=False).filter(lambda c: c.imag != 0))
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf, "nan", "inf", "-inf", "NaN"])
EMPTY = st.sampled_from(["", " ", ",", "[]", " , "])
BAD_UNIT = st.sampled_from(["12XB", "5parsec", "1.5.3MiB", "0x10", "MiB", "1 Mi B", "1e", "--1", "½", "1MiBs", "4 KiBi"])
HUGE = st.sampled_from([10**30, "1e30", "9" * 400, 2**64, "1000000000TiB"])


def _below(spec) -> st.SearchStrategy:
    lo = spec.lo
    if lo is None or math.isinf(lo):
        return st.nothing()
    if spec.kind in ("integer", "integers", "size", "sizes"):
        return st.integers(max_value=math.ceil(lo) - 1, min_value=-(10**12)).map(lambda v: v)
    return st.floats(max_value=lo, exclude_max=True, allow_nan=False, allow_infinity=False, min_value=-1e12)


def _above(spec) -> st.SearchStrategy:
    hi = spec.hi
    if hi is None or math.isinf(hi):
        return st.nothing()
    if spec.kind in ("integer", "integers", "size", "sizes"):
        return st.integers(min_value=math.floor(hi) + 1, max_value=int(hi) * 4 + 10**6)
    return st.floats(min_value=hi, exclude_min=True, allow_nan=False, allow_infinity=False, max_value=hi * 4 + 1e6)


def bad_values(spec) -> st.SearchStrategy:
    """Values this spec must refuse."""
    kind = spec.kind
    if kind == "text":
        return st.one_of(st.none(), st.integers(), st.floats(), st.lists(st.text(max_size=3), max_size=2), st.binary(max_size=3))
    if kind in ("choice", "choices"):
        unknown = st.text(min_size=1, max_size=12).filter(lambda t: t.strip() not in spec.choices and "," not in t)
        options = [unknown, EMPTY, WRONG_TYPE, st.integers()]
        if kind == "choices" and spec.choices:
            options.append(unknown.map(lambda u: f"{spec.choices[0]},{u}"))
        return st.one_of(*options)
    if kind == "flag":
        return st.one_of(st.sampled_from(["maybe", "2", "-1", "yes please", "", "tru"]), st.integers(min_value=2),
                         st.integers(max_value=-1), st.floats(allow_nan=True), st.none(), WRONG_TYPE)
    numeric = [_below(spec), _above(spec), NON_FINITE, BAD_UNIT, WRONG_TYPE]
    if spec.hi is not None:
        numeric.append(HUGE)
    if kind in ("integer", "integers"):
        numeric.append(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6).filter(lambda f: f != int(f)))
        numeric.append(st.booleans())
    if kind in ("size", "sizes"):
        numeric.append(st.sampled_from(["1.5", "-4096", "-1MiB", "3.3333B"] + (["0.5KiB"] if (spec.lo or 0) > 512 else [])))
        numeric.append(st.booleans())
    if kind in ("sizes", "integers", "reals"):
        numeric += [EMPTY, st.just([])]
        # one bad element in an otherwise good list
        numeric.append(st.one_of(_below(spec), _above(spec), NON_FINITE, BAD_UNIT).map(lambda v: f"{_good(spec)},{v}"))
    return st.one_of(*numeric)


def _good(spec) -> str:
    from mmlab.core.units import format_bytes

    if spec.kind == "sizes":
        return format_bytes(max(spec.lo or 4096, 4096))
    return str(spec.lo if spec.lo is not None else 0)


def assert_clean(err: ParamError | str, name: str) -> None:
    text = str(err)
    assert "\n" not in text, text
    assert f"parameter {name}" in text and "allowed" in text, text


# ------------------------------------------------------------------------------ in-process: Params
@pytest.mark.parametrize("label,cls,name,spec", FIELDS, ids=[f"{f[0]}.{f[2]}" for f in FIELDS])
@fast()
@given(data=st.data())
def test_bad_value_of_every_parameter_is_a_one_line_error_naming_it(label, cls, name, spec, data, ledger):
    """A negative, zero, huge, wrongly-unitted, wrongly-typed, NaN or empty value of any parameter of any
    experiment or scenario is refused with one line naming that parameter and what is allowed."""
    value = data.draw(bad_values(spec), label="value")
    with ledger.bad_input():
        with pytest.raises(ParamError) as e:
            cls.from_mapping({name: value})
        assert_clean(e.value, name)


ANY = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                st.lists(st.one_of(st.text(max_size=6), st.integers(), st.floats()), max_size=3), st.binary(max_size=4))


@pytest.mark.parametrize("label,cls", CLASSES, ids=[c[0] for c in CLASSES])
@fast(150)
@given(data=st.data())
def test_any_value_is_accepted_in_range_or_refused_in_one_line(label, cls, data):
    """Whatever arrives for a parameter, the object is either built with a value of the declared kind
    inside its range, or construction fails with one line naming a parameter (never another exception)."""
    specs = cls.specs()
    name = data.draw(st.sampled_from(sorted(specs)), label="name")
    value = data.draw(ANY, label="value")
    try:
        obj = cls.from_mapping({name: value})
    except ParamError as e:
        assert "\n" not in str(e) and any(f"parameter {n}" in str(e) for n in specs), str(e)
        return
    got, spec = getattr(obj, name), specs[name]
    items = got if isinstance(got, tuple) else (got,)
    for v in items:
        if spec.kind in ("size", "sizes", "integer", "integers"):
            assert isinstance(v, int) and not isinstance(v, bool)
        if spec.kind in ("real", "reals", "seconds"):
            assert isinstance(v, float) and math.isfinite(v)
        if spec.lo is not None and isinstance(v, (int, float)):
            assert v >= spec.lo
        if spec.hi is not None and isinstance(v, (int, float)):
            assert v <= spec.hi


@pytest.mark.parametrize("label,cls", CLASSES, ids=[c[0] for c in CLASSES])
@fast(25)
@given(name=st.text(min_size=0, max_size=20))
def test_unknown_parameter_name_is_refused_listing_the_known_ones(label, cls, name, ledger):
    """A name that is not a parameter is refused with one line naming it and listing the known ones."""
    assume(name not in cls.specs())
    with ledger.bad_input():
        with pytest.raises(ParamError) as e:
            cls.from_mapping({name: "1"})
        text = str(e.value)
        assert "\n" not in text and (f"parameter {name}:" in text or f"parameter {name!r}:" in text), text
        assert "is not a parameter" in text and all(k in text for k in cls.specs()), text


# --------------------------------------------------------------------------- in-process: the CLI
@pytest.fixture
def no_real_runs(monkeypatch):
    """Real experiments replaced by a stub after validation, so a value that slips through is recorded
    instead of running (and the test fails on it)."""
    ran = []
    real_get = experiments.get

    def get(name):
        exp = real_get(name)
        return dataclasses.replace(exp, run=lambda params, progress=True: ran.append(params) or pd.DataFrame())

    monkeypatch.setattr(experiments, "get", get)
    return ran


def _residue_free(isolated_store, tmp_path) -> None:
    assert not isolated_store.exists() or not any(isolated_store.iterdir()), "a refused input wrote a run"
    reports = tmp_path / "reports"
    assert not reports.exists() or not any(reports.iterdir()), "a refused input wrote a report"
    assert children_of(os.getpid()) == [], "a refused input started a child"


CLI_FIELDS = [(label, name, spec) for label, cls, name, spec in FIELDS if spec.kind != "text"]  # CLI values are text


@pytest.mark.parametrize("label,name,spec", CLI_FIELDS, ids=[f"{f[0]}.{f[1]}" for f in CLI_FIELDS])
@fast(8)
@given(data=st.data())
def test_cli_bad_parameter_exits_2_with_one_line(label, name, spec, data, capsys, no_real_runs, isolated_store,
                                                 tmp_path, ledger):
    """`mmlab experiment|simulate NAME -p KEY BAD` returns 2 and prints one line naming KEY: nothing runs."""
    value = data.draw(bad_values(spec).filter(lambda v: isinstance(v, (str, int, float)) and not isinstance(v, bool)))
    kind, target = label.split(":")
    argv = ["experiment" if kind == "experiment" else "simulate", target, "-p", name, str(value)]
    with ledger.bad_input():
        capsys.readouterr()
        rc = cli.main(argv)
        err = capsys.readouterr().err
        assert rc == 2, (argv, err)
        assert_clean(one_line_error(err), name)
        assert no_real_runs == []
        _residue_free(isolated_store, tmp_path)


@fast(12)
@given(value=st.one_of(st.sampled_from(["-5", "0", "1e400", "nan", "", "abc", "1.5"]), st.text(max_size=8)))
def test_cli_bad_repeats_option_exits_2_with_one_line(value, capsys, no_real_runs, isolated_store, tmp_path, ledger):
    """`--repeats BAD` (argparse's own check, then the parameter's) is one line and exit 2."""
    assume(not value.strip().lstrip("+").isdigit() or int(value) < 1 or int(value) > 100)
    with ledger.bad_input():
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            raise SystemExit(cli.main(["experiment", "mlock-throughput", "--repeats", value]))
        err = capsys.readouterr().err
        assert e.value.code == 2, err
        line = one_line_error(err)
        assert "repeats" in line, line
        _residue_free(isolated_store, tmp_path)


@fast(15)
@given(name=st.text(min_size=1, max_size=16).filter(lambda n: not n.startswith("-")))
def test_cli_unknown_experiment_or_scenario_exits_2_listing_the_known(name, capsys, isolated_store, tmp_path, ledger):
    """An unknown experiment or scenario name is one line listing the known ones, exit 2."""
    assume(name not in experiment_names() and name not in scenario_names())
    for command, known in (("experiment", experiment_names()), ("simulate", scenario_names())):
        if not known:
            continue
        with ledger.bad_input():
            capsys.readouterr()
            rc = cli.main([command, name])
            line = one_line_error(capsys.readouterr().err)
            assert rc == 2 and all(k in line for k in known), line
            _residue_free(isolated_store, tmp_path)


# ------------------------------------------------------------- the real command line, in processes
SUBPROCESS_CASES = [
    (["experiment", "mlock-throughput", "-p", "sizes", "-1MiB"], "sizes"),
    (["experiment", "mlock-throughput", "-p", "sizes", "nan"], "sizes"),
    (["experiment", "mlock-throughput", "-p", "sizes", ""], "sizes"),
    (["experiment", "mlock-throughput", "-p", "mappings", "anon-private,bogus"], "mappings"),
    (["experiment", "mlock-throughput", "-p", "repeats", "0"], "repeats"),
    (["experiment", "mlock-throughput", "-p", "lock_share", "inf"], "lock_share"),
    (["experiment", "mlock-throughput", "-p", "timeout_s", "-3s"], "timeout_s"),
    (["experiment", "mlock-throughput", "-p", "nonsense", "1"], "nonsense"),
    (["experiment", "mlock-throughput", "--repeats", "many"], "repeats"),
    (["experiment", "no-such-experiment"], "experiment"),
    (["run", "01", "-p", "sizes", "1e400"], "sizes"),
    (["run", "01", "-p", "repeats", "-2"], "repeats"),
    (["run", "01", "-p", "no_such_parameter", "1"], "no_such_parameter"),
    (["run", "--run-id", "../../escape", "01"], "run-id"),
    (["calibrate", "--out", "/etc/mmlab-profile.json"], "--out"),
    (["no-such-command"], "no-such-command"),
]
for _name in experiment_names():
    SUBPROCESS_CASES.append((["experiment", _name, "-p", "repeats", "-1"], "repeats"))
for _name in scenario_names():
    SUBPROCESS_CASES.append((["simulate", _name, "-p", "vma_bytes", "12XB"], "vma_bytes"))
    SUBPROCESS_CASES.append((["simulate", _name, "-p", "kernel", "not-a-kernel"], "kernel"))


def test_bad_input_from_the_real_command_line_is_one_line_exit_2_no_residue(isolated_store, tmp_path, ledger):
    """Through `python -m mmlab` as a user types it: exit 2, one line naming the parameter, no traceback,
    no process, run or report left (a bounded set covering every command, two at a time)."""
    tag = new_tag()

    def one(case):
        argv, name = case
        return case, subprocess.run([PYTHON, "-m", "mmlab", *argv], capture_output=True, text=True, timeout=120,
                                    env=mmlab_env(tag), cwd=str(tmp_path))

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, SUBPROCESS_CASES))
    for (argv, name), r in results:
        with ledger.bad_input():
            assert r.returncode == 2, (argv, r.stderr)
            line = one_line_error(r.stderr)
            assert name in line, (argv, line)
    assert tagged_pids(tag) == []
    _residue_free(isolated_store, tmp_path)
    assert not os.path.exists("/etc/mmlab-profile.json")
    assert not (ROOT.parent / "escape").exists()


# ------------------------------------------------------------------------- corrupted run folders
CORRUPTIONS = ["truncate-parquet", "garbage-parquet", "missing-parquet", "truncate-json", "garbage-json",
               "json-list", "json-no-experiments", "experiments-not-list", "traversal-name", "empty-folder"]


def _corrupt(run_dir, how: str, cut: float) -> None:
    parquet = next(run_dir.glob("*.parquet"))
    meta_path = run_dir / "run.json"
    if how == "truncate-parquet":
        data = parquet.read_bytes()
        parquet.write_bytes(data[: int(len(data) * cut)])
    elif how == "garbage-parquet":
        parquet.write_bytes(os.urandom(64))
    elif how == "missing-parquet":
        parquet.unlink()
    elif how == "truncate-json":
        text = meta_path.read_text()
        meta_path.write_text(text[: max(1, int(len(text) * cut)) - 1])
    elif how == "garbage-json":
        meta_path.write_bytes(b"\xff\xfe{not json")
    elif how == "json-list":
        meta_path.write_text("[1, 2, 3]")
    elif how == "json-no-experiments":
        meta_path.write_text(json.dumps({"run_id": run_dir.name}))
    elif how == "experiments-not-list":
        meta_path.write_text(json.dumps({"run_id": run_dir.name, "experiments": 7}))
    elif how == "traversal-name":
        meta = json.loads(meta_path.read_text())
        meta["experiments"] = ["../../../../etc/passwd"]
        meta_path.write_text(json.dumps(meta))
    elif how == "empty-folder":
        for f in list(run_dir.iterdir()):
            f.unlink()


@fast(30)
@given(how=st.sampled_from(CORRUPTIONS), cut=st.floats(0.0, 0.99))
def test_corrupted_run_folder_is_skipped_with_a_warning_naming_it(how, cut, tmp_path_factory, ledger):
    """`mmlab.load()` skips a corrupted or partial run folder with a warning naming it and still returns
    every row of the intact runs beside it."""
    runs = tmp_path_factory.mktemp("runs")
    good = pd.DataFrame({"experiment": ["g"] * 4, "method": ["real"] * 4, "v": [1, 2, 3, 4]})
    store.save({"g": good}, {"g": {}}, {"host_tag": "h"}, runs_dir=runs, run_id="20000101T000000.000Z-good")
    bad_dir = store.save({"b": good.assign(experiment="b")}, {"b": {}}, {"host_tag": "h"}, runs_dir=runs,
                         run_id="20000101T000001.000Z-bad")
    _corrupt(bad_dir, how, cut)
    with ledger.bad_input():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = mmlab.load(runs_dir=runs)
        named = [w for w in caught if bad_dir.name in str(w.message)]
        assert named, f"no warning named {bad_dir.name}: {[str(w.message) for w in caught]}"
        assert all("\n" not in str(w.message) for w in named)
        assert sorted(df.loc[df["experiment"] == "g", "v"]) == [1, 2, 3, 4]
        assert (df["experiment"] != "b").all()
