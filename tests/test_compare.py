"""Comparing runs from several hosts and kernels: finding them, reading them against the first, and the
environment facts that differ."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mmlab.core import store
from mmlab.core.params import ParamError
from mmlab.study import compare

MiB = 1 << 20


def _env(kernel="6.18.0", thp="madvise", cpu="Test CPU"):
    return {"kernel_release": kernel, "thp_enabled": thp, "overcommit_memory": "0", "cpu_model": cpu, "cpu_count": 2,
            "mem_available_bytes": 123, "host_tag": "abc123"}


def _rows(seconds, seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame([{"experiment": "sigkill-during-mlock", "method": "real", "vma_bytes": 1 << 30,
                          "target_populated_bytes": 64 * MiB, "populated_bytes": 64 * MiB + 4096 * i,
                          "kill_to_reap_s": v, "repeat": i, "warmup": False}
                         for i, v in enumerate(rng.normal(seconds, seconds * 0.02, 6))])


@pytest.fixture
def two_runs(isolated_store):
    a = store.save({"sigkill-during-mlock": _rows(0.01, 1)}, {}, _env(), run_id="A")
    b = store.save({"sigkill-during-mlock": _rows(0.03, 2)}, {}, _env(kernel="5.10.0", thp="always"), run_id="B")
    return a, b


def test_runs_are_found_by_id_by_folder_and_in_a_folder_of_runs(two_runs, tmp_path):
    """A run id under data/runs, a run folder, and a folder holding runs copied from another machine."""
    a, b = two_runs
    gathered = tmp_path / "from-hosts"
    gathered.mkdir()
    shutil.copytree(a, gathered / "A")
    shutil.copytree(b, gathered / "B")
    assert [d.name for d in compare.resolve(["A", str(b)])] == ["A", "B"]
    assert [d.name for d in compare.resolve([str(gathered)])] == ["A", "B"]


def test_an_unknown_run_is_a_parameter_error():
    """A name that is no run is refused with the parameter named, not a traceback."""
    with pytest.raises(ParamError, match="parameter runs"):
        compare.resolve(["no-such-run"])


def test_a_run_three_times_slower_reads_as_3x_and_significant(two_runs):
    """Kill-to-reap tripled between two runs: ratio about 3 against the first, marked `*`."""
    rows, metas = compare.read(two_runs)
    t = compare.comparison(rows, [m["run_id"] for m in metas]).set_index("run_id")
    assert t.loc["A", "metric"] == "sigkill-during-mlock.kill_to_reap_s"
    assert 2.7 < t.loc["B", "ratio"] < 3.3 and t.loc["B", "marker"] == "*"


def test_points_meet_across_runs_though_mlock_stopped_pages_apart(two_runs):
    """Repeats that stopped a few pages past the same target are one point, in both runs."""
    rows, metas = compare.read(two_runs)
    t = compare.comparison(rows, [m["run_id"] for m in metas])
    assert len(t) == 2 and set(t["n"]) == {6}


def test_environment_table_lists_what_differs_and_hides_what_does_not(two_runs):
    """Kernel and THP differ between the runs, the CPU does not; memory available is not a fact of the host."""
    _, metas = compare.read(two_runs)
    envs = compare.env_table(metas)
    assert {"kernel_release", "thp_enabled"} <= set(envs.index)
    assert "cpu_model" not in envs.index and "mem_available_bytes" not in envs.index
    assert envs.loc["thp_enabled", "differs"]


def test_mmlab_compare_prints_the_table_and_json(two_runs):
    """`mmlab compare A B`: exit 0, the dotted metric and the significance star; --json parses."""
    a, b = two_runs
    r = subprocess.run([sys.executable, "-m", "mmlab", "compare", str(a), str(b)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "sigkill-during-mlock.kill_to_reap_s" in r.stdout and "*" in r.stdout and "thp_enabled" in r.stdout
    r = subprocess.run([sys.executable, "-m", "mmlab", "compare", str(a), str(b), "--json"], capture_output=True, text=True, timeout=120)
    doc = json.loads(r.stdout)
    assert [x["run_id"] for x in doc["runs"]] == ["A", "B"] and len(doc["comparison"]) == 2


def test_the_printed_comparison_shows_sizes_as_sizes_and_no_empty_columns(isolated_store):
    """Two experiments in two runs: each has its own table, its sizes read `1GiB` and `16MiB`, and no key
    of the other experiment appears as a column of `nan`."""
    thr = pd.DataFrame([{"experiment": "mlock-throughput", "method": "real", "mapping": "anon-private",
                         "size_bytes": 16 * MiB, "mlock_ns_per_page": 300.0 + i, "munlock_ns_per_page": 50.0 + i,
                         "repeat": i, "warmup": False} for i in range(4)])
    a = store.save({"sigkill-during-mlock": _rows(0.01, 1), "mlock-throughput": thr}, {}, _env(), run_id="A")
    b = store.save({"sigkill-during-mlock": _rows(0.03, 2), "mlock-throughput": thr}, {}, _env(kernel="5.10.0"), run_id="B")
    rows, metas = compare.read([a, b])
    text = compare.text_report(compare.comparison(rows, ["A", "B"]), compare.env_table(metas), {"A": "A", "B": "B"})
    assert "1GiB" in text and "16MiB" in text
    assert "nan" not in text.lower() and "1073741824" not in text and "16777216" not in text


def test_the_reference_dataset_beside_itself_differs_by_nothing(isolated_store):
    """The summary's table sets this machine's newest run beside the reference dataset: the reference's own
    SIGKILL run stored as this machine's meets every point of the reference, each 0% apart."""
    from mmlab.core import paths

    src = next(d for d in store.run_dirs(paths.REFERENCE_RUNS_DIR)
               if "sigkill-during-mlock" in json.loads((d / store.RUN_JSON).read_text())["experiments"])
    assert compare.beside_reference()[1] == "no real run of this machine is stored"
    shutil.copytree(src, paths.runs_dir() / src.name)
    table, why = compare.beside_reference()
    assert why == ""
    sig = table.xs("sigkill-during-mlock.kill_to_reap_s", level="metric")
    medians = sig.xs("median", level="stat")
    assert len(medians) >= 3  # 1 GiB at 5% and 25%; 64 GiB at 64 and 256 MiB both round to 0%
    assert medians[compare.THIS].str.contains(r"\+0\.00%").all()
