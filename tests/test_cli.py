"""The command line as a user meets it: JSON rows, one-line errors with exit code 2."""
import json
import subprocess
import sys


def mmlab(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "mmlab", *args], capture_output=True, text=True, timeout=timeout)


def test_experiment_json_prints_rows():
    r = mmlab("experiment", "mlock-throughput", "-p", "sizes", "1MiB", "-p", "mappings", "anon-private",
              "-p", "warmup", "0", "--repeats", "2", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 2 and rows[0]["size_bytes"] == 1 << 20 and rows[0]["method"] == "real"


def test_experiment_prints_a_short_table_per_point_for_a_person():
    """Without --json: a title, a header with units, and one line per measured point (sizes as sizes,
    n, median and range), not every column of every row."""
    r = mmlab("experiment", "mlock-throughput", "-p", "sizes", "1MiB,2MiB", "-p", "mappings", "anon-private",
              "-p", "warmup", "0", "-p", "settle_s", "0", "--repeats", "2", "--no-save")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 4 and all(len(line) < 120 for line in lines), r.stdout
    assert "mlock (ns/page) median [min-max]" in lines[1] and " n " in lines[1]
    assert lines[2].split()[:3] == ["anon-private", "1MiB", "2"] and lines[3].split()[1] == "2MiB"


def test_invalid_size_is_one_clear_line_and_exit_2():
    r = mmlab("experiment", "mlock-throughput", "-p", "sizes", "12XB")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "parameter sizes" in lines[0] and "allowed" in lines[0]
    assert "Traceback" not in r.stderr


def test_unknown_experiment_and_parameter_are_usage_errors():
    r = mmlab("experiment", "no-such-thing")
    assert r.returncode == 2 and "experiment" in r.stderr and "mlock-throughput" in r.stderr
    r = mmlab("experiment", "mlock-throughput", "-p", "bogus", "1")
    assert r.returncode == 2 and "parameter bogus" in r.stderr


def test_experiments_lists_parameters_with_defaults_and_units():
    r = mmlab("experiments", "--json")
    listing = {e["name"]: e for e in json.loads(r.stdout)}
    sizes = {p["name"]: p for p in listing["mlock-throughput"]["parameters"]}["sizes"]
    assert sizes["unit"] == "bytes" and "MiB" in sizes["default"]


def test_env_json_says_what_can_run_here():
    r = mmlab("env", "--json")
    env = json.loads(r.stdout)
    for key in ("kernel_release", "page_size_bytes", "mem_available_bytes", "rlimit_memlock_soft_bytes",
                "cap_ipc_lock", "cgroup_version", "thp_enabled", "overcommit_memory", "cpu_model", "mmlab_version"):
        assert key in env
    assert "mlock-throughput" in env["experiments"]


def test_eras_json_lists_every_era_with_a_source_for_each_behaviour():
    """`mmlab eras --json`: at least the released 2.6.31, 2.6.32, 3.12, 4.6, 4.17 and 5.18 eras, each
    behaviour with a non-empty source."""
    r = mmlab("eras", "--json")
    assert r.returncode == 0, r.stderr
    eras = {e["name"]: e for e in json.loads(r.stdout)}
    assert {"2.6.31", "2.6.32", "3.12", "4.6", "4.17", "5.18"} <= set(eras)
    for e in eras.values():
        assert e["versions"] and all(b["source"].strip() for b in e["behaviours"].values())


def test_simulated_kernel_no_era_covers_is_one_line_and_exit_2():
    """A version between verified eras (2.6.31.1: the backport is unverified there) is refused, naming `kernel`."""
    r = mmlab("simulate", "oom-kill", "-p", "kernel", "2.6.31.1")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "parameter kernel" in lines[0] and "4.17" in lines[0]


def test_csv_prints_every_row_for_machines():
    import io

    import pandas as pd

    r = mmlab("simulate", "sigkill-during-mlock", "-p", "kernel", "2.6.31", "-p", "vma_bytes", "1GiB",
              "-p", "populated_bytes", "256MiB", "--csv")
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(io.StringIO(r.stdout))
    assert len(df) == 1 and df["vma_bytes"].iloc[0] == 1 << 30 and df["kill_to_reap_s"].iloc[0] > 0
