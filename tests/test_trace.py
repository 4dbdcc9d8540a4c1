"""Kernel tracepoints: the pure parser on real trace text captured here, and (as root) a traced OOM kill
that names its victim and leaves no trace instance and no enabled event behind, whatever happens."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from mmlab.kernel import trace

from .conftest import FIXTURES, needs_root

VICTIM, BYSTANDERS = 25692, (25637, 25640)  # the tasks of tests/fixtures/trace_oom_kill.txt (limit 256 MiB)
ORIGIN_S = 1010.0
SIGKILLED, PARENT = 25694, 25635  # tests/fixtures/trace_sigkill.txt: SIGKILL at 64 MiB populated


@pytest.fixture(scope="module")
def oom_events():
    return trace.parse((FIXTURES / "trace_oom_kill.txt").read_text())


def first(events, name, pid=VICTIM):
    return next(e for e in events if e["event"] == name and e["pid"] == pid)


# ------------------------------------------------------------------------------------------ parsing
def test_header_and_lost_event_lines_are_not_events():
    """Comment lines of the trace file and the ring buffer's lost-events notice yield no rows."""
    text = "# tracer: nop\n#\n# entries-in-buffer/entries-written: 88/88   #P:2\nCPU:1 [LOST 12 EVENTS]\n\n"
    assert trace.parse(text) == []


def test_mark_victim_names_the_victim_and_its_rss_in_bytes(oom_events):
    """mark_victim carries the victim's pid and its RSS at the kill; kB fields become bytes."""
    e = first(oom_events, "mark_victim")
    assert e["comm"] == "python" and e["task_pid"] == VICTIM
    assert e["anon_rss_bytes"] == 206440 * 1024 and e["file_rss_bytes"] == 6932 * 1024
    assert e["total_vm_bytes"] == 1069212 * 1024 and e["oom_score_adj"] == 0


def test_signal_generate_concerns_its_target_not_the_sender(oom_events):
    """signal_generate's `pid` field is the signalled task: here the OOM killer, running in the victim
    that hit the limit, SIGKILLs that same task."""
    e = first(oom_events, "signal_generate")
    assert e["sig"] == 9 and e["pid"] == VICTIM and e["group"] == 1


def test_sched_process_free_concerns_the_freed_task_not_the_softirq_that_logs_it(oom_events):
    """The task_struct is freed in an RCU callback, here in softirq on the idle task."""
    e = first(oom_events, "sched_process_free")
    assert e["task_comm"] == "<idle>" and e["task_pid"] == 0 and e["pid"] == VICTIM


def test_exit_mmap_concerns_the_exiting_task(oom_events):
    """mmap:exit_mmap has no pid field: it runs in the task whose mm is torn down."""
    assert first(oom_events, "exit_mmap")["task_pid"] == VICTIM


def test_sched_switch_names_both_tasks_and_the_state_left_in(oom_events):
    e = next(e for e in oom_events if e["event"] == "sched_switch" and e["prev_pid"] == VICTIM)
    assert e["prev_state"] in ("R", "R+", "S", "D", "Z") and isinstance(e["next_pid"], int)
    assert e["pid"] == VICTIM  # a switch is filed under the task leaving the CPU


def test_the_oom_report_lines_are_classified(oom_events):
    """The printk'd OOM report: its first line starts the OOM, 'Killed process' names the victim."""
    invoked = first(oom_events, "oom_invoked")
    killed = first(oom_events, "oom_killed_report")
    assert invoked["comm"] == "python" and killed["anon_rss_bytes"] == 206440 * 1024
    assert invoked["time_s"] < killed["time_s"]


def test_values_run_to_the_next_key_so_comm_may_hold_spaces():
    line = ("   Web Content-4242    [000] d..2.   100.000100: signal_generate: sig=9 errno=0 code=0 "
            "comm=Web Content pid=4242 grp=1 res=0")
    e = trace.parse_line(line)
    assert e["task_comm"] == "Web Content" and e["comm"] == "Web Content" and e["pid"] == 4242


def test_reaper_events_and_the_reaper_report_give_the_pages_reaped():
    """The OOM reaper's events come from its kthread and name the victim by pid; the kernel's
    'oom_reaper: reaped process' line says the RSS left, so reaped = RSS at mark_victim less that."""
    text = textwrap.dedent("""\
        python-77 [001] ...1. 10.000000: mark_victim: pid=77 comm=python total-vm=1069236kB anon-rss=200000kB file-rss:0kB shmem-rss:0kB uid=0 pgtables=468kB oom_score_adj=0
        <idle>-0 [000] ..s1. 12.000000: wake_reaper: pid=77
        oom_reaper-40 [000] ..... 12.000100: start_task_reaping: pid=77
        oom_reaper-40 [000] ..... 12.010100: finish_task_reaping: pid=77
        oom_reaper-40 [000] d..1. 12.010200: console: oom_reaper: reaped process 77 (python), now anon-rss:1000kB, file-rss:0kB, shmem-rss:0kB
        """)
    k = trace.phases(trace.parse(text), 77, 10.0)
    assert k["k_wake_reaper_s"] == pytest.approx(2.0) and k["k_finish_task_reaping_s"] == pytest.approx(2.0101)
    assert k["k_reaped_bytes"] == 199000 * 1024


# ------------------------------------------------------------------------------------------- phases
def test_victim_phases_follow_the_kernels_order(oom_events):
    """memcg reclaim at the limit, OOM report, SIGKILL and mark_victim, then exit begins
    (sched_process_exit, in do_exit before exit_mm), exit_mmap ends the teardown, the task is freed."""
    k = trace.phases(oom_events, VICTIM, ORIGIN_S)
    order = ["k_limit_s", "k_oom_invoked_s", "k_signal_generate_s", "k_mark_victim_s", "k_signal_deliver_s",
             "k_sched_process_exit_s", "k_exit_mmap_s", "k_sched_process_free_s"]
    times = [k[c] for c in order]
    assert all(math.isfinite(t) for t in times) and times == sorted(times)
    assert k["k_memcg_reclaims"] > 0 and 0 < k["k_oom_to_kill_s"] < 0.1


def test_the_reaper_did_not_run_when_the_victim_freed_its_own_memory(oom_events):
    """On 6.18 the reaper is queued OOM_REAPER_DELAY (2 s) after the kill; a victim whose exit_mmap
    finished first (MMF_OOM_SKIP) is never reaped: no reaper events, nothing reaped."""
    k = trace.phases(oom_events, VICTIM, ORIGIN_S)
    assert k["k_kill_to_exit_mmap_s"] < 2.0
    assert all(math.isnan(k[f"k_{e}_s"]) for e in ("wake_reaper", "start_task_reaping", "finish_task_reaping"))
    assert k["k_reaped_bytes"] == 0


def test_bystanders_were_neither_marked_nor_signalled(oom_events):
    for pid in BYSTANDERS:
        k = trace.phases(oom_events, pid, ORIGIN_S)
        assert math.isnan(k["k_mark_victim_s"]) and math.isnan(k["k_signal_generate_s"])


def test_timeline_names_each_event_for_victim_or_bystander(oom_events):
    roles = {VICTIM: "victim", BYSTANDERS[0]: "bystander", BYSTANDERS[1]: "bystander"}
    tl = trace.timeline(oom_events, roles, ORIGIN_S)
    assert {e["role"] for e in tl if e["event"] in ("mark_victim", "signal_generate", "exit_mmap")} == {"victim"}
    assert all(e["pid"] in roles for e in tl)


def test_on_cpu_time_is_at_most_the_wall_time_and_counts_the_waits(oom_events):
    """Between do_exit and the end of exit_mmap the victim ran part of the time and waited, runnable,
    for the rest (it was switched out with state R+)."""
    k = trace.phases(oom_events, VICTIM, ORIGIN_S)
    assert 0 < k["k_exit_to_exit_mmap_oncpu_s"] < k["k_exit_to_exit_mmap_s"]


def test_on_cpu_time_from_switches_in_and_out():
    ev = [{"event": "sched_switch", "time_s": 1.2, "prev_pid": 7, "next_pid": 0},
          {"event": "sched_switch", "time_s": 1.5, "prev_pid": 0, "next_pid": 7},
          {"event": "sched_switch", "time_s": 3.0, "prev_pid": 7, "next_pid": 0}]
    assert trace.on_cpu_s(ev, 7, 1.0, 2.0) == pytest.approx(0.2 + 0.5)


def test_a_sigkill_from_the_parent_is_generated_there_and_delivered_in_the_child():
    """SIGKILL sent by the parent: signal_generate runs in the parent and names the child; the child
    takes it, enters do_exit, and exit_mmap ends the teardown; freed after the parent reaped it."""
    ev = trace.parse((FIXTURES / "trace_sigkill.txt").read_text())
    gen = first(ev, "signal_generate", SIGKILLED)
    assert gen["task_pid"] == PARENT and first(ev, "signal_deliver", SIGKILLED)["task_pid"] == SIGKILLED
    k = trace.phases(ev, SIGKILLED, gen["time_s"])
    assert 0 < k["k_sched_process_exit_s"] < k["k_exit_mmap_s"] < k["k_sched_process_free_s"]
    assert math.isnan(k["k_mark_victim_s"]) and k["k_memcg_reclaims"] == 0


def test_filters_name_the_watched_tasks():
    ev = trace.Event("signal", "signal_generate", "pid", extra="sig == 9")
    assert ev.filter([5, 3]) == "(sig == 9) && (pid == 3 || pid == 5)"
    assert trace.Event("oom", "mark_victim", "pid").filter([]) == "pid == -1"


# --------------------------------------------------------------------------------------------- root
def _top_level_events() -> list[str]:
    return trace.enabled_events(trace.tracefs())


@needs_root
def test_a_session_is_removed_when_its_block_raises():
    before = _top_level_events()
    with pytest.raises(RuntimeError):
        with trace.session() as s:
            s.watch([os.getpid()])
            assert s.path.is_dir() and trace.enabled_events(s.path)
            raise RuntimeError("boom")
    assert not s.path.exists() and s.path not in trace.instances()
    assert _top_level_events() == before


@needs_root
def test_a_traced_oom_kill_records_mark_victim_for_the_victim_and_leaves_no_instance():
    """A real OOM kill in a memory cgroup: the kernel's mark_victim names the victim's pid, at a time
    between mlock() starting and the parent seeing the victim gone; no bystander is marked; afterwards
    no trace instance of this process remains and the top level's events are as they were."""
    from mmlab.experiments import oom_kill

    from .test_exp_safety import hold_machine

    before = _top_level_events()
    params = oom_kill.OomParams.from_mapping({"limit_bytes": "64MiB", "lock_bytes": "256MiB", "bystanders": 1,
                                              "bystander_bytes": "4MiB", "trace": True})
    with hold_machine():
        rows, _ = oom_kill.run_once(params)
    victim = next(r for r in rows if r["role"] == "victim")
    bystander = next(r for r in rows if r["role"] == "bystander")
    assert victim["traced"] and victim["term_signal"] == 9
    assert 0 < victim["k_mark_victim_s"] <= victim["start_to_exit_s"]
    assert victim["k_mark_victim_s"] <= victim["k_exit_mmap_s"] <= victim["start_to_exit_s"]
    assert math.isnan(bystander["k_mark_victim_s"])
    assert [p for p in trace.instances() if p.name.startswith(f"mmlab-{os.getpid()}-")] == []
    assert _top_level_events() == before


# Ctrl-C's default meaning for Python, set explicitly: a child started from a shell without job control
# (a background CI job, nohup) inherits SIGINT ignored, and Python then installs no handler of its own.
SESSION_CHILD = textwrap.dedent("""\
    import os, signal, sys, time
    from mmlab.kernel import trace
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with trace.session() as s:
        s.watch([os.getpid()])
        print(s.path, flush=True)
        time.sleep(60)
    """)


@needs_root
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_process_killed_mid_trace_leaves_no_instance_and_no_enabled_event(sig):
    """SIGINT unwinds the session; SIGKILL leaves the instance to the janitor that runs at the start of
    every real experiment. Either way, afterwards the instance is gone, with every event enabled in it,
    and the top level's events are untouched."""
    from mmlab import experiments

    before = _top_level_events()
    proc = subprocess.Popen([sys.executable, "-c", SESSION_CHILD], stdout=subprocess.PIPE, text=True)
    try:
        path = trace.Path(proc.stdout.readline().strip())
        assert path.is_dir() and trace.enabled_events(path)
        proc.send_signal(sig)
        proc.wait(timeout=30)
        if sig == signal.SIGKILL:
            assert path.is_dir()  # nothing ran in the dead process
            experiments._remove_stale_cgroups()
        deadline = time.monotonic() + 5
        while path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not path.exists()
        assert path not in trace.instances()
        assert _top_level_events() == before
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------- without tracing
def test_without_root_tracing_is_unavailable_with_the_reason(monkeypatch):
    monkeypatch.setattr(trace.os, "geteuid", lambda: 1000)
    ok, why = trace.availability()
    assert not ok and "root" in why


def test_an_untraceable_machine_gives_untraced_rows_naming_the_reason(monkeypatch):
    """Where tracing cannot run, the measurement goes on untraced and its rows say why."""
    from mmlab.experiments import traced

    monkeypatch.setattr(trace, "availability", lambda: (False, "tracefs is not mounted at /nowhere"))
    with traced.tracer(True) as tr:
        tr.watch([os.getpid()])
        tr.finish(reaped_pid=os.getpid(), wait_s=0)
        row = tr.phases(os.getpid(), 0.0)
    assert not tr.on and row == {"traced": False, "trace_skipped": "tracefs is not mounted at /nowhere"}


@needs_root
def test_trace_off_creates_no_instance(monkeypatch):
    from mmlab.experiments import traced

    monkeypatch.setattr(trace, "create", lambda *a, **k: pytest.fail("an instance was created with trace off"))
    with traced.tracer(False) as tr:
        assert tr.phases(1, 0.0)["trace_skipped"] == "trace is off"


@needs_root
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_mmlab_experiment_interrupted_mid_trace_leaves_no_instance(sig):
    """`mmlab experiment oom-kill` stopped while its trace instance exists: SIGINT ends it cleanly with
    the instance removed; after SIGKILL the next real experiment's janitor removes it. The top level's
    events are untouched either way."""
    from mmlab import experiments

    before = _top_level_events()
    proc = subprocess.Popen([sys.executable, "-m", "mmlab", "experiment", "oom-kill", "-p", "limit_bytes", "64MiB",
                             "-p", "lock_bytes", "128MiB", "-p", "bystanders", "1", "-p", "bystander_bytes", "4MiB",
                             "--repeats", "50", "--no-save"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        mine = lambda: [p for p in trace.instances() if p.name.startswith(f"mmlab-{proc.pid}-")]  # noqa: E731
        deadline = time.monotonic() + 150  # the machine lock may be held by another real experiment
        while not mine() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert mine(), f"no trace instance appeared: {proc.poll()}"
        proc.send_signal(sig)
        proc.wait(timeout=60)
        if sig == signal.SIGINT:
            assert proc.returncode == 130 and "Traceback" not in proc.stderr.read()
        else:
            experiments._remove_stale_cgroups()
        assert mine() == []
        assert _top_level_events() == before
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
