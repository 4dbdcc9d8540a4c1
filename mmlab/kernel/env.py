"""The environment captured with every result: kernel, memory, limits, cgroups, CPU, mmlab version.

Pure parsers (`parse_*`) apart from the readers; `capture()` returns a flat-ish JSON-able dict.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from mmlab.core import __version__, paths
from mmlab.core.store import host_tag
from mmlab.kernel import cgroup, procfs, safety


def _read(path: str | Path, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def parse_thp(text: str) -> str:
    """`always [madvise] never` -> `madvise`."""
    m = re.search(r"\[([^\]]+)\]", text)
    return m.group(1) if m else text.strip()


def parse_cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def parse_console_loglevel(printk: str) -> int | None:
    """`4\t4\t1\t7` (/proc/sys/kernel/printk) -> 4: messages of a lower level (more severe) reach the consoles.
    An OOM kill's `Killed process` line is KERN_ERR (3), so at 4 or above the victim itself writes it to every
    console before it can exit (mm/oom_kill.c __oom_kill_process: pr_err after the SIGKILL)."""
    first = printk.split()[:1]
    return int(first[0]) if first and first[0].isdigit() else None


def parse_consoles(text: str) -> str:
    """/proc/consoles -> the console devices, e.g. `ttyS0` (a serial console writes a byte at a time), or `none`."""
    names = [line.split()[0] for line in text.splitlines() if line.strip()]
    return ",".join(names) or "none"


DAMON_ADMIN = Path("/sys/kernel/mm/damon/admin/kdamonds")


def damon(admin: Path = DAMON_ADMIN) -> str:
    """Running DAMON monitors and what their schemes do, e.g. `on: paddr pageout`: a kdamond samples pages
    and may page them out behind an experiment's back (on the reference machine one samples physical memory
    every 0.5 s and pages out cold memory that is neither anonymous nor mapped). `off`, or `unavailable`
    without DAMON's sysfs interface."""
    if not admin.is_dir():
        return "unavailable"
    running = []
    for kd in sorted(admin.glob("[0-9]*")):
        if _read(kd / "state") != "on":
            continue
        for ctx in sorted((kd / "contexts").glob("[0-9]*")):
            actions = sorted({_read(s / "action") for s in (ctx / "schemes").glob("[0-9]*")} - {""})
            running.append(" ".join([_read(ctx / "operations") or "?", *actions]))
    return "on: " + "; ".join(running) if running else "off"


def page_reporting(params: Path = procfs.PAGE_REPORTING_DIR) -> str:
    """Free page reporting (the guest hands free memory back to its host, whose next first touch is slow):
    `on (order N)` with the smallest block reported, or `unavailable`."""
    order = _read(params / "page_reporting_order")
    if not order.isdigit():
        return "unavailable"
    # until a device (virtio-balloon) registers, the order is -1 read back as an unsigned int
    return f"on (order {order})" if int(order) < 64 else "off"


def git_modified(root: Path = paths.PROJECT_DIR) -> bool | None:
    """Whether tracked files differ from `git_commit`, so a run from an edited tree is not credited to the
    commit (`git diff --quiet HEAD`); None outside a clone (a wheel install) or without git."""
    if not (root / ".git").exists():
        return None
    try:
        rc = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD", "--"], capture_output=True,
                            timeout=10).returncode
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {0: False, 1: True}.get(rc)


def git_commit(root: Path = paths.PROJECT_DIR) -> str | None:
    """The checked-out commit, read from .git without running git. In a worktree `.git` is a file naming
    the worktree's git folder (`gitdir: ...`), whose `commondir` holds the shared refs."""
    git = root / ".git"
    if git.is_file() and _read(git).startswith("gitdir: "):
        git = (root / _read(git)[8:]).resolve()
    common = (git / _read(git / "commondir")).resolve() if _read(git / "commondir") else git
    head = _read(git / "HEAD")
    if head.startswith("ref: "):
        ref = head[5:]
        sha = _read(git / ref) or _read(common / ref)
        if not sha:
            for line in _read(common / "packed-refs").splitlines():
                if line.endswith(" " + ref):
                    sha = line.split()[0]
        return sha[:12] or None
    return head[:12] or None


def capture(experiments: Mapping[str, dict] | None = None) -> dict:
    """The facts a result depends on. `experiments`, where the caller has it (the registry's
    `availability()`, which sits above this layer), is stored too: whether each real experiment can run here."""
    uname = os.uname()
    mem = procfs.meminfo()
    soft, hard = safety.memlock_rlimit()
    cg_ok, cg_why = cgroup.availability()
    env = {
        "host_tag": host_tag(),
        "kernel_release": uname.release,
        "kernel_version": uname.version,
        "kernel_cmdline": _read("/proc/cmdline"),
        "machine": uname.machine,
        "page_size_bytes": os.sysconf("SC_PAGE_SIZE"),
        "mem_total_bytes": mem.get("MemTotal", 0),
        "mem_available_bytes": mem.get("MemAvailable", 0),
        "swap_total_bytes": mem.get("SwapTotal", 0),
        "overcommit_memory": _read("/proc/sys/vm/overcommit_memory"),
        "thp_enabled": parse_thp(_read("/sys/kernel/mm/transparent_hugepage/enabled", "unavailable")),
        "thp_defrag": parse_thp(_read("/sys/kernel/mm/transparent_hugepage/defrag", "unavailable")),
        "damon": damon(),
        "page_reporting": page_reporting(),
        "rlimit_memlock_soft_bytes": soft,
        "rlimit_memlock_hard_bytes": hard,
        "cap_ipc_lock": safety.has_cap_ipc_lock(),
        "uid": os.getuid(),
        "cgroup_version": ",".join(f"v{h.version}" for h in cgroup.candidate_parents()[:1]) or "none",
        "memory_cgroup": cg_ok,
        "memory_cgroup_detail": cg_why,
        "console_loglevel": parse_console_loglevel(_read("/proc/sys/kernel/printk")),
        "consoles": parse_consoles(_read("/proc/consoles")),
        "cpu_model": parse_cpu_model(_read("/proc/cpuinfo")),
        "cpu_count": os.cpu_count(),
        "python_version": sys.version.split()[0],
        "mmlab_version": __version__,
        "git_commit": git_commit(),
        "git_modified": git_modified(),
        "hostname_hash_only": True,
    }
    if experiments:
        env["experiments"] = dict(experiments)
    return env


def table(env: dict) -> list[tuple[str, str]]:
    """(key, value) pairs for a readable table; byte counts shown with units."""
    from mmlab.core.units import format_bytes

    out = []
    for k, v in env.items():
        if k == "experiments":
            for name, info in v.items():
                out.append((f"experiment {name}", ("can run" if info["can_run"] else "cannot run") + f": {info['detail']}"))
            continue
        if k.endswith("_bytes") and isinstance(v, int) and v < (1 << 61):
            v = f"{format_bytes(v)} ({v})"
        out.append((k, str(v)))
    return out
