import json
import warnings
from datetime import UTC

import pandas as pd
import pytest

from mmlab.core import store


def rows(n=3, value=1.0):
    return pd.DataFrame({"experiment": "demo", "method": "real", "size_bytes": [4096 * (i + 1) for i in range(n)],
                         "mlock_s": [value] * n})


ENV = {"kernel_release": "6.18.0", "host_tag": "abc123", "experiments": {"demo": {"can_run": True}}}


def test_a_run_is_written_whole_with_rows_env_and_params(isolated_store):
    d = store.save({"demo": rows()}, {"demo": {"sizes": [4096]}}, ENV)
    assert d.parent == isolated_store
    meta = json.loads((d / "run.json").read_text())
    assert meta["env"]["kernel_release"] == "6.18.0" and meta["params"]["demo"]["sizes"] == [4096]
    assert len(pd.read_parquet(d / "demo.parquet")) == 3
    assert not [p for p in isolated_store.iterdir() if p.name.startswith(".")]


def test_a_run_never_overwrites_another(isolated_store):
    a = store.save({"demo": rows(value=1.0)}, {}, ENV, run_id="20260101T000000.000Z-abc123")
    b = store.save({"demo": rows(value=2.0)}, {}, ENV, run_id="20260101T000000.000Z-abc123")
    assert a != b
    assert pd.read_parquet(a / "demo.parquet")["mlock_s"].iloc[0] == 1.0
    assert pd.read_parquet(b / "demo.parquet")["mlock_s"].iloc[0] == 2.0
    assert json.loads((b / "run.json").read_text())["run_id"] == b.name


def test_a_failed_write_leaves_no_complete_run(isolated_store):
    class Boom:
        def to_parquet(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store.save({"demo": Boom()}, {}, ENV, run_id="20260101T000000.000Z-abc123")
    assert store.run_dirs(isolated_store) == []
    assert store.load().empty


def test_load_merges_runs_with_environment_columns():
    store.save({"demo": rows(2)}, {}, {**ENV, "kernel_release": "6.1"})
    store.save({"demo": rows(3)}, {}, {**ENV, "kernel_release": "6.18"})
    df = store.load()
    assert len(df) == 5 and df["run_id"].nunique() == 2
    assert sorted(df["env.kernel_release"].unique()) == ["6.1", "6.18"]
    assert "env.experiments.demo.can_run" in df


def test_load_chosen_runs_only():
    a = store.save({"demo": rows(2)}, {}, ENV)
    store.save({"demo": rows(3)}, {}, ENV)
    assert len(store.load([a.name])) == 2


def test_corrupt_run_is_skipped_with_a_warning_naming_it(isolated_store):
    store.save({"demo": rows(2)}, {}, ENV)
    bad = isolated_store / "20260101T000000.000Z-bad000"
    bad.mkdir()
    (bad / "run.json").write_text("{not json")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        df = store.load()
    assert len(df) == 2 and any(bad.name in str(x.message) for x in w)


def test_run_id_is_utc_time_and_host_tag():
    from datetime import datetime

    rid = store.new_run_id(datetime(2026, 11, 26, 7, 8, 9, 123000, tzinfo=UTC), "myhost")
    assert rid == f"20261126T070809.123Z-{store.host_tag('myhost')}"


@pytest.fixture
def full_disk(tmp_path):
    """A 12 KiB tmpfs: too small for one run's Parquet files (needs root to mount)."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "full"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_keeps_the_rows_elsewhere_and_leaves_nothing_half_written(full_disk):
    """On a full disk the error is one line naming the folder and ENOSPC; the rows are readable where it
    says; the full folder holds no run, complete-looking or hidden."""
    import shutil
    from pathlib import Path

    big = pd.DataFrame({"experiment": "demo", "method": "real", "x": range(20000), "y": [float(i) for i in range(20000)]})
    with pytest.raises(store.StoreError) as e:
        store.save({"demo": big}, {}, ENV, runs_dir=full_disk)
    line = str(e.value)
    assert "\n" not in line and str(full_disk) in line and "No space left on device" in line
    where = Path(line.rsplit("rows saved in ", 1)[1])
    try:
        assert len(pd.read_parquet(where / "demo.parquet")) == 20000
        assert json.loads((where / "run.json").read_text())["experiments"] == ["demo"]
    finally:
        shutil.rmtree(where, ignore_errors=True)
    assert list(full_disk.iterdir()) == []


def test_a_runs_folder_that_cannot_exist_is_one_line_and_the_rows_are_kept(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    import shutil

    with pytest.raises(store.StoreError, match=r"cannot write the run to .*not-a-folder/runs: .*; rows saved in ") as e:
        store.save({"demo": rows()}, {}, ENV, runs_dir=blocker / "runs")
    shutil.rmtree(str(e.value).rsplit("rows saved in ", 1)[1])


def test_a_run_made_by_a_report_names_its_collection(monkeypatch):
    """Runs stored while `mmlab run` executes a report carry that report's id as their collection, so the
    model check can price them at their own calibration runs; a run made on its own has none."""
    monkeypatch.setenv(store.COLLECTION_ENV, "20261203T200000.000Z-abc123")
    a = store.save({"demo": rows(2)}, {}, ENV)
    monkeypatch.delenv(store.COLLECTION_ENV)
    b = store.save({"demo": rows(3)}, {}, ENV)
    df = store.load()
    assert json.loads((a / "run.json").read_text())["collection"] == "20261203T200000.000Z-abc123"
    assert df[df.run_id == a.name]["collection"].eq("20261203T200000.000Z-abc123").all()
    assert df[df.run_id == b.name]["collection"].isna().all()
