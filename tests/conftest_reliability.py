"""Plumbing for the reliability tests: the figures ledger, residue checks, tiny parameters.

Loaded from tests/conftest.py (`pytest_plugins`). Every fault a test injects, every bad input it tries
and every earlier run it checks goes through the session's `Ledger`, counted when tried and again only
when the outcome was checked clean; `pytest_terminal_summary` prints the table, whose
paired figures must be equal (a fault tried but not checked clean shows as a gap).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TAG_ENV = "MMLAB_TEST_TAG"
SEED = int(os.environ.get("MMLAB_FAULT_SEED", str(random.SystemRandom().randrange(1 << 30))))


# ------------------------------------------------------------------------------------------ ledger
@dataclasses.dataclass
class Ledger:
    faults_injected: int = 0
    survived_no_residue: int = 0
    bad_inputs_tried: int = 0
    clean_errors: int = 0
    runs_checked: int = 0
    runs_left_intact: int = 0

    @contextlib.contextmanager
    def fault(self) -> Iterator[None]:
        """Count one injected fault; it counts as survived only if the block (its checks) passes."""
        self.faults_injected += 1
        yield
        self.survived_no_residue += 1

    @contextlib.contextmanager
    def bad_input(self) -> Iterator[None]:
        """Count one bad input; it is a clean error only if the block (its checks) passes."""
        self.bad_inputs_tried += 1
        yield
        self.clean_errors += 1

    def runs(self, snapshot: RunsSnapshot) -> None:
        """Check that the earlier runs are byte-for-byte as they were; counted per run."""
        self.runs_checked += len(snapshot.runs)
        snapshot.assert_intact()
        self.runs_left_intact += len(snapshot.runs)

    def rows(self) -> list[tuple[str, int]]:
        return [("faults injected", self.faults_injected), ("survived with no residue", self.survived_no_residue),
                ("bad inputs tried", self.bad_inputs_tried), ("clean errors", self.clean_errors),
                ("earlier runs checked", self.runs_checked), ("runs left intact", self.runs_left_intact)]

    def equal(self) -> bool:
        return (self.faults_injected == self.survived_no_residue and self.bad_inputs_tried == self.clean_errors
                and self.runs_checked == self.runs_left_intact)


LEDGER = Ledger()


@pytest.fixture
def ledger() -> Ledger:
    return LEDGER


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not any(v for _, v in LEDGER.rows()):
        return
    tr = terminalreporter
    tr.section("reliability figures")
    for name, value in LEDGER.rows():
        tr.write_line(f"{name:<26} {value:>6}")
    tr.write_line(f"{'all pairs equal':<26} {'yes' if LEDGER.equal() else 'NO'}   (fault seed {SEED}; "
                  f"MMLAB_FAULT_SEED={SEED} repeats the same moments)")


# ------------------------------------------------------------------------------- processes & memory
def new_tag() -> str:
    return uuid.uuid4().hex


def tagged_pids(tag: str) -> list[int]:
    """Live processes whose environment carries MMLAB_TEST_TAG=tag (children inherit it, even re-parented)."""
    needle = f"{TAG_ENV}={tag}".encode()
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                env = Path(f"/proc/{d}/environ").read_bytes()
            except OSError:
                continue
            if needle in env.split(b"\0") and not _zombie(int(d)):
                out.append(int(d))
    return out


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def children_of(ppid: int, needle: str = "mmlab.kernel.child") -> list[int]:
    """Live processes whose parent is `ppid` and whose command line contains `needle`."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == ppid and fields[0] not in ("Z", "X") and needle in cmdline(int(d)):
            out.append(int(d))
    return out


def vmlck_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmLck:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def wait_until(pred, timeout_s: float, poll_s: float = 0.01):
    deadline = time.monotonic() + timeout_s
    while True:
        value = pred()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(poll_s)


def assert_no_processes(tag: str, timeout_s: float = 5.0) -> None:
    """No process of the experiment is left: everything tagged is gone within timeout_s."""
    left = wait_until(lambda: not tagged_pids(tag), timeout_s)
    assert left, f"processes left behind: {[(p, cmdline(p)) for p in tagged_pids(tag)]}"


def mlocked() -> int:
    from mmlab.kernel import procfs

    return procfs.meminfo()["Mlocked"]


def locked_by(tag: str) -> int:
    """Bytes locked by the processes carrying the tag (their VmLck): what this test's experiment holds,
    whatever anyone else on the shared machine locks meanwhile."""
    return sum(vmlck_bytes(pid) for pid in tagged_pids(tag))


def assert_mlocked_back(tag: str, timeout_s: float = 15.0) -> None:
    """Nothing the tagged processes locked stays locked: their VmLck is 0 (locked memory belongs to a
    process's mm, so once they are gone it is unlocked); polled, since an exit's teardown may be in flight.
    Machine-wide Mlocked is not used: others on this machine lock and unlock memory meanwhile."""
    ok = wait_until(lambda: locked_by(tag) == 0, timeout_s, 0.05)
    assert ok, f"processes tagged {tag} still lock {locked_by(tag)} bytes"


def mmlab_cgroups(pid: int | None = None) -> list[Path]:
    """Memory groups named by mmlab (for creator `pid`, if given) in every place mmlab makes them."""
    from mmlab.kernel import cgroup

    out = []
    for h in cgroup.candidate_parents():
        with contextlib.suppress(OSError):
            for d in h.parent.iterdir():
                m = cgroup.NAME_RE.fullmatch(d.name)
                if m and (pid is None or int(m.group(1)) == pid):
                    out.append(d)
    return out


def assert_no_cgroups(pid: int) -> None:
    left = wait_until(lambda: not mmlab_cgroups(pid), 5.0, 0.05)
    assert left, f"memory cgroups left behind: {mmlab_cgroups(pid)}"


# ------------------------------------------------------------------------------------- earlier runs
class RunsSnapshot:
    """The runs folder as it was: every file's hash, to prove earlier runs untouched afterwards."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = runs_dir
        self.files = self._hashes()
        self.runs = sorted({p.parts[0] for p in self.files})

    def _hashes(self) -> dict[Path, str]:
        out = {}
        if self.runs_dir.exists():
            for f in sorted(self.runs_dir.rglob("*")):
                if f.is_file():
                    out[f.relative_to(self.runs_dir)] = hashlib.sha256(f.read_bytes()).hexdigest()
        return out

    def new_entries(self) -> list[Path]:
        existing = {self.runs_dir / r for r in self.runs}
        return sorted(p for p in self.runs_dir.iterdir() if p not in existing) if self.runs_dir.exists() else []

    def assert_intact(self) -> None:
        now = self._hashes()
        for f, h in self.files.items():
            assert now.get(f) == h, f"earlier run file {f} was changed or removed"

    def assert_nothing_half_written(self) -> None:
        """New entries are whole runs (loadable) or marked `<id>.incomplete`; no hidden temporaries."""
        from mmlab.core import store

        for p in self.new_entries():
            assert not p.name.startswith("."), f"half-written temporary left: {p}"
            if p.name.endswith(".incomplete"):
                continue
            store.read_run(p)  # a complete run must read back whole


def earlier_run(runs_dir: Path) -> RunsSnapshot:
    """Store one small run (as an earlier user's data) and snapshot the folder."""
    import pandas as pd

    from mmlab.core import store

    rows = pd.DataFrame({"experiment": ["earlier"] * 3, "method": ["real"] * 3, "x_bytes": [1, 2, 3]})
    store.save({"earlier": rows}, {"earlier": {"x": 1}}, {"host_tag": "earlier"}, runs_dir=runs_dir)
    return RunsSnapshot(runs_dir)


# -------------------------------------------------------------------------------- tiny parameters
MiB = 1 << 20
# Small, quick parameters per real experiment (sizes in MiB; every experiment's own checks must pass).
TINY_EXPERIMENT = {
    "mlock-throughput": {"sizes": "16MiB", "mappings": "anon-private"},
    "sigkill-during-mlock": {"vma_bytes": "32MiB,1GiB", "populated_bytes": "8MiB", "kill_after_s": 5},
    "munlock-partial": {"vma_bytes": "16MiB", "populated_fractions": "0.5"},
    "prepatch-replay": {"vma_bytes": "16MiB", "populated_fraction": 0.25},
    "oom-kill": {"limit_bytes": "32MiB", "lock_bytes": "64MiB", "bystanders": 1, "bystander_bytes": "4MiB"},
}
TINY_SIZE_BYTES = 16 * MiB


def scaled_defaults(cls) -> dict:
    """An experiment's defaults scaled down: every size by one factor (keeps cross-field ratios) so the
    largest is TINY_SIZE_BYTES, each page-aligned and within its range."""
    from mmlab.core.params import ParamError

    specs = cls.specs()
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.name in specs}
    biggest = max([max(v) if isinstance(v, tuple) else v for k, v in defaults.items()
                   if specs[k].kind in ("size", "sizes")] or [1])
    factor = min(1.0, TINY_SIZE_BYTES / biggest)

    def scale(v: int, spec) -> int:
        v = max(int(v * factor) // 4096 * 4096, 4096)
        return int(min(max(v, spec.lo or 0), spec.hi or v))

    out = {}
    for k, v in defaults.items():
        if specs[k].kind == "size":
            out[k] = scale(v, specs[k])
        elif specs[k].kind == "sizes":
            out[k] = tuple(sorted({scale(x, specs[k]) for x in v}))
    try:
        cls.from_mapping(out)
    except ParamError:
        return {}
    return out


def tiny(name: str, **over) -> dict:
    """Tiny valid parameters for real experiment `name`: the table's, else scaled defaults; then `over`."""
    from mmlab import experiments
    from mmlab.core.params import ParamError

    cls = experiments.get(name).Params
    base = {"repeats": 1, "warmup": 0, **TINY_EXPERIMENT.get(name, {})}
    try:
        cls.from_mapping(base)
    except ParamError:
        base = {"repeats": 1, "warmup": 0, **scaled_defaults(cls)}
    values = {**base, **over}
    cls.from_mapping(values)  # a broken table entry fails here, loudly
    return values


def cli_args(values: dict) -> list[str]:
    out = []
    for k, v in values.items():
        out += ["-p", k, ",".join(str(x) for x in v) if isinstance(v, tuple) else str(v)]
    return out


def experiment_names() -> list[str]:
    from mmlab import experiments

    return experiments.names()


def scenario_names() -> list[str]:
    try:
        from mmlab import sim
    except ImportError:
        return []
    return list(sim.SCENARIOS)


def mmlab_env(tag: str, **extra: str) -> dict:
    env = dict(os.environ)
    env.pop("MMLAB_LOCK_WAIT_S", None)
    env.update({TAG_ENV: tag, "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def start_mmlab(args: list[str], tag: str, **extra: str) -> subprocess.Popen:
    """`python -m mmlab ARGS` in the background, its processes tagged, output captured."""
    return subprocess.Popen([PYTHON, "-m", "mmlab", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=mmlab_env(tag, **extra), cwd=str(ROOT))


def stop(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Best-effort end of a test's own background process (never a broad kill)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)


def one_line_error(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    return lines[0]
