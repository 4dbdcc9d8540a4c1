"""The reference dataset shipped with mmlab: real runs at full sizes on the reference machine, readable
without running anything, and set beside this machine's runs by `mmlab compare --reference`."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd

import mmlab
from mmlab.core import paths, store
from mmlab.experiments import names

MiB = 1 << 20


def test_the_reference_dataset_holds_every_experiment_at_full_size():
    """Every real experiment is there, measured with CAP_IPC_LOCK (sizes as asked, not divided), with the
    reference machine's environment in the env.* columns; a few MB at most."""
    df = mmlab.load(reference=True)
    assert set(names()) <= set(df["experiment"])
    assert set(df["method"]) <= {"real", "replay"}
    assert (df["env.cap_ipc_lock"] == True).all()  # noqa: E712 - a column of booleans
    assert df["env.kernel_release"].notna().all()
    if "size_divisor" in df:
        assert (df["size_divisor"].dropna() == 1).all()
    assert df.loc[df["experiment"] == "sigkill-during-mlock", "vma_bytes"].max() >= 64 << 30
    total = sum(f.stat().st_size for f in paths.REFERENCE_RUNS_DIR.rglob("*") if f.is_file())
    assert total < 4 * MiB


def test_compare_sets_this_machine_beside_the_reference_machine(isolated_store):
    """A stored run of this machine and the reference read side by side, the reference as the base."""
    ref = mmlab.load(reference=True, experiment="sigkill-during-mlock")
    mine = ref[ref["run_id"] == ref["run_id"].iloc[0]].copy()
    mine["kill_to_reap_s"] *= 3
    cols = [c for c in mine.columns if not c.startswith("env.") and c not in ("run_id",)]
    store.save({"sigkill-during-mlock": pd.DataFrame(mine[cols])}, {}, {"kernel_release": "test"})
    r = subprocess.run([sys.executable, "-m", "mmlab", "compare", "--reference"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "reference machine" in r.stdout and "this machine" in r.stdout
    assert "sigkill-during-mlock.kill_to_reap_s" in r.stdout and "*" in r.stdout
