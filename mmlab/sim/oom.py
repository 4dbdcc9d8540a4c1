"""Simulated `oom-kill`: a victim mlocks more than is free, the era's OOM killer reacts, bystanders suffer or not.

Event-driven: a heap keyed by (time, priority, sequence), so ties resolve the same way every run.
Memory is counted in pages; allocation work is done in chunks (`chunk_bytes`) so an 8 GiB mlock is a
few thousand events. What the kernel does follows the era's sourced behaviours (eras.py, `mmlab eras`):
- Victim selection (`oom_selection`): to 2.6.35 badness() = total_vm, so the mlocker (whose unfaulted
  range counts) is chosen; it gets TIF_MEMDIE (ALLOC_NO_WATERMARKS: all reserves), mlock stops on the
  fatal signal, exit_mm() clears ->mm, and select_bad_process() then skips it: the next OOM kills a
  bystander. From 2.6.36 badness is rss and a TIF_MEMDIE victim blocks new choices even without ->mm;
  4.7-4.8 count it in signal->oom_victims, 4.9+ finds it through signal->oom_mm until MMF_OOM_SKIP.
- Exit munlock pass (`exit_munlock`): 2.6.30-2.6.31 fault in every page mlock never reached; from
  408e82b78bcc (2.6.32, stable 2.6.31.3) nothing is faulted; from 5.18 there is no pass at all.
- A failed TIF_MEMDIE allocation (`memdie_alloc`): from 2.6.31-rc5 it fails (VM_FAULT_OOM) and munlock
  gives up the VMA; in 2.6.31-rc1..rc4 it loops through out_of_memory, which kills bystanders.
- Hold-off (`oom_skip`): whether the dying victim keeps further kills waiting, and until when: its whole
  exit (2.6.36-4.6, 6.1+), the OOM reaper's pass (4.7-4.16), the start of exit_mmap (4.17-6.0).
- OOM reaper (`oom_reaper`): 4.6-5.17 skip VM_LOCKED VMAs (so reap nothing of the mlocked victim);
  5.18+ reap mlocked VMAs too, 2 s after the kill.
- No killable task left: panic ("Out of memory and no killable processes...").
`memdie_alloc` = retry | fail overrides the era's rule (where the exit pass allocates) to show the other.
"""
from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Callable

import pandas as pd

from mmlab.core.params import ParamError, choice, integer, seconds, size
from mmlab.core.units import PAGE_BYTES
from mmlab.sim.address_space import State, Vma
from mmlab.sim.eras import Era, exit_mmap
from mmlab.sim.profile import Profile
from mmlab.sim.scenario import Scenario, SimParams, base_row

NAME = "oom-kill"
OUTCOMES = ("recovered", "bystander-killed", "panic", "hung")
# event priorities at equal times: kernel actions before user-level progress
_PRIO = {"signal": 0, "reap": 1, "zap": 2, "reaper": 3, "exit_fault": 4, "mlock": 5, "touch": 6}


@dataclasses.dataclass(frozen=True)
class OomParams(SimParams):
    ram_bytes: int = size("8GiB", "RAM of the simulated machine")
    free_bytes: int = size("6GiB", "memory free when the victim starts")
    reserve_bytes: int = size("16MiB", "min watermark: only TIF_MEMDIE / OOM victims may allocate below it", lo=0)
    vma_bytes: int = size("8GiB", "the victim's mlock() of an anonymous private writable VMA")
    bystanders: int = integer(3, "bystander processes", lo=0, hi=64)
    bystander_bytes: int = size("512MiB", "resident memory of each bystander")
    bystander_touch_bytes: int = size("64KiB", "memory each bystander allocates (and frees) per period")
    bystander_period_s: float = seconds(0.01, "period of the bystanders' allocations", lo=1e-4, hi=10)
    memdie_alloc: str = choice("era", ("era", "retry", "fail"),
                               "the OOM victim's failed no-watermark allocation at exit: as the era's sources say, "
                               "or forced to retry (via out_of_memory) or fail (VM_FAULT_OOM)")
    oom_retry_s: float = seconds(0.004, "wait before an allocation retries after out_of_memory (1 jiffy at HZ=250)", lo=1e-5, hi=1)
    chunk_bytes: int = size("4MiB", "granularity of simulated allocation work (smaller: finer, slower)", hi=1 << 34)
    horizon_s: float = seconds(60.0, "declare the machine hung if the victim is not reaped by then", lo=0.01, hi=86400)

    def check(self) -> None:
        super().check()
        if self.free_bytes + self.bystanders * self.bystander_bytes > self.ram_bytes:
            raise ParamError("free_bytes", self.free_bytes, f"free_bytes + bystanders x bystander_bytes <= ram_bytes ({self.ram_bytes})",
                             "does not fit in RAM beside the bystanders")
        if self.vma_bytes <= self.free_bytes - self.reserve_bytes:
            raise ParamError("vma_bytes", self.vma_bytes, f"more than free_bytes - reserve_bytes ({self.free_bytes - self.reserve_bytes})",
                             "fits in free memory, so nothing goes out of memory")


@dataclasses.dataclass
class Proc:
    pid: int
    role: str
    rss: int  # pages
    total_vm: int  # pages
    has_mm: bool = True
    memdie: bool = False  # TIF_MEMDIE / OOM victim
    oom_skip: bool = False  # MMF_OOM_SKIP (or TIF_MEMDIE cleared by the 4.6 reaper): no longer holds off kills
    exiting: bool = False
    released: bool = False  # memory given back (exit done or reaped)
    alive: bool = True
    stalled_since: float | None = None
    kill_t: float | None = None
    reap_t: float | None = None
    killed_by: int | None = None
    exit_pages_faulted: int = 0


class _Sim:
    """One run: state, heap, timeline. Pure: no clock, no randomness."""

    def __init__(self, p: OomParams, era: Era, prof: Profile):
        self.p, self.era, self.prof = p, era, prof
        self.free = p.free_bytes // PAGE_BYTES
        self.reserve = p.reserve_bytes // PAGE_BYTES
        self.chunk = max(1, p.chunk_bytes // PAGE_BYTES)
        self.vma_pages = math.ceil(p.vma_bytes / PAGE_BYTES)
        self.mlocked = 0
        self.heap: list = []
        self.seq = 0
        self.t = 0.0
        self.events: list[dict] = []
        self.outcome: str | None = None
        self.outcome_s = float("nan")
        self.exit_faults_left = 0
        self.exit_fault_ns = 0.0
        self.zap_left = 0
        self.zap_ns = 0.0
        victim = Proc(1, "victim", 0, self.vma_pages)
        bys = [Proc(2 + i, "bystander", p.bystander_bytes // PAGE_BYTES, p.bystander_bytes // PAGE_BYTES)
               for i in range(p.bystanders)]
        self.procs = [victim, *bys]
        self.victim = victim
        self.log("start", victim)
        self.at(0.0, "mlock", victim.pid)
        for i, b in enumerate(bys):  # staggered deterministically over one period
            self.at(p.bystander_period_s * (i + 1) / (len(bys) + 1), "touch", b.pid)

    # --- plumbing -------------------------------------------------------------------------------
    def at(self, t: float, kind: str, pid: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, _PRIO[kind], self.seq, kind, pid))

    def log(self, event: str, proc: Proc | None, detail: str = "") -> None:
        self.events.append({"time_s": self.t, "event": event, "pid": proc.pid if proc else 0,
                            "role": proc.role if proc else "kernel", "free_bytes": self.free * PAGE_BYTES,
                            "victim_rss_bytes": self.victim.rss * PAGE_BYTES, "detail": detail})

    def proc(self, pid: int) -> Proc:
        return self.procs[pid - 1]

    def ns(self, op: str) -> float:
        return self.prof[op] * 1e-9

    # --- the page allocator and the OOM killer --------------------------------------------------
    def alloc(self, proc: Proc, n: int) -> int:
        """Pages granted now (<= n): ordinary allocations stop at the min watermark, TIF_MEMDIE ones
        (ALLOC_NO_WATERMARKS) may take the reserves too."""
        floor = 0 if proc.memdie else self.reserve
        g = max(0, min(n, self.free - floor))
        self.free -= g
        return g

    def badness(self, q: Proc) -> int:
        return q.total_vm if self.era.oom.badness == "total_vm" else q.rss

    def select_bad_process(self, current: Proc) -> Proc | str | None:
        """The task to kill, "wait" (someone is already dying), or None (nothing killable)."""
        best, best_points = None, -1
        for q in self.procs:
            if not q.alive:
                continue
            if not q.has_mm and not (q.memdie and self.era.oom.sees_exiting_without_mm):
                continue  # no ->mm: skipped (to 2.6.35 even a TIF_MEMDIE victim: the dying task is invisible)
            if q.memdie:
                if q.oom_skip or q.released:
                    continue  # MMF_OOM_SKIP: the killer moves on
                return "wait"  # an OOM victim not yet gone blocks new choices
            if q.exiting:
                if q is not current:
                    return "wait"
                return q
            points = self.badness(q)
            if points > best_points:  # ties: lowest pid
                best, best_points = q, points
        return best

    def out_of_memory(self, current: Proc) -> str:
        """What out_of_memory() did for `current`: "killed", "wait" or "none"."""
        chosen = self.select_bad_process(current)
        if chosen == "wait":
            return "wait"
        if chosen is None:
            self.log("no killable task", current, "panic: Out of memory and no killable processes...")
            self.finish("panic")
            return "none"
        chosen.memdie = True
        chosen.kill_t = self.t
        chosen.killed_by = current.pid
        self.log("oom_kill", chosen, f"chosen by out_of_memory called by pid {current.pid} ({current.role}), "
                                     f"badness {self.era.oom.badness}={self.badness(chosen) * PAGE_BYTES} bytes")
        self.at(self.t, "signal", chosen.pid)
        if self.era.oom.oom_reaper != "none":
            self.at(self.t + self.era.oom.reaper_delay_s, "reaper", chosen.pid)
        return "killed"

    def stall(self, proc: Proc, kind: str) -> bool:
        """An allocation by `proc` failed: call the OOM killer and retry later; False if the machine is dead."""
        if proc.stalled_since is None:
            proc.stalled_since = self.t
            self.log("alloc_stall", proc)
        if self.out_of_memory(proc) == "none":
            return False
        self.at(self.t + self.p.oom_retry_s, kind, proc.pid)
        return True

    # --- processes ------------------------------------------------------------------------------
    def on_mlock(self, v: Proc) -> None:
        if v.memdie and self.era.mlock_stops_on_fatal_signal:
            return  # the signal event starts the exit
        n = min(self.chunk, self.vma_pages - self.mlocked)
        g = self.alloc(v, n)
        if g:
            v.stalled_since = None
            v.rss += g
            self.mlocked += g
            self.log("mlock_progress", v)
            if self.mlocked == self.vma_pages:
                self.log("mlock_done", v)
                return
            self.at(self.t + g * self.ns("populate_mlock_ns"), "mlock", v.pid)
            return
        self.stall(v, "mlock")

    def on_signal(self, q: Proc) -> None:
        """SIGKILL delivered: exit_mm() drops ->mm, then exit_mmap()."""
        q.exiting, q.has_mm, q.stalled_since = True, False, None
        self.log("exit_mm", q)
        if q.memdie and self.era.oom.holdoff_until == "exit-mmap-start":
            q.oom_skip = True  # 4.17-6.0: exit_mmap reaps and sets MMF_OOM_SKIP before anything slow
        if q is self.victim:
            vma = Vma.prefix(self.vma_pages, self.mlocked, State.LOCKED)
            munlock, unmap = exit_mmap(self.era, vma)
            self.exit_faults_left = munlock.allocated
            other = dict(munlock.counts)
            other.pop("fault_zero_ns", None)
            pass_s = self.prof.price(other)[0]  # the pass's work on present pages and absent addresses
            self.exit_fault_ns = self.prof["fault_zero_ns"]
            self.zap_ns = self.prof["zap_present_ns"] + (self.prof["zap_munlock_ns"] * self.era.munlock_factor
                                                         if self.era.exit_munlock is None else 0.0)
            if self.exit_faults_left:
                self.log("munlock_vma_pages_all", q, f"{self.exit_faults_left} unreached pages to fault in")
                if not self.era.exit_fault_completes:
                    self.log("exit_fault_loops", q, "each fault installs no pte and GUP retries it: the exit never ends")
                    return
                self.at(self.t + pass_s, "exit_fault", q.pid)
                return
            self.start_zap(q, pass_s)
            return
        self.start_zap(q)

    def on_exit_fault(self, v: Proc) -> None:
        n = min(self.chunk, self.exit_faults_left)
        g = self.alloc(v, n)
        if g:
            v.stalled_since = None
            v.rss += g
            v.exit_pages_faulted += g
            self.exit_faults_left -= g
            d = g * self.exit_fault_ns * 1e-9
            self.log("exit_fault_progress", v)
            if not self.exit_faults_left:
                self.start_zap(v, d)
            else:
                self.at(self.t + d, "exit_fault", v.pid)
            return
        rule = self.era.oom.memdie_alloc if self.p.memdie_alloc == "era" else self.p.memdie_alloc
        if v.memdie and rule == "fail":
            self.log("vma_abandoned", v, "VM_FAULT_OOM: __get_user_pages -ENOMEM, munlock gives up on the VMA")
            self.exit_faults_left = 0
            self.start_zap(v)
            return
        self.stall(v, "exit_fault")

    def start_zap(self, q: Proc, after_s: float = 0.0) -> None:
        """unmap_vmas after `after_s` of remaining work; pages are freed chunk by chunk."""
        self.at(self.t + after_s, "zap", q.pid)

    def on_zap(self, q: Proc) -> None:
        per = self.zap_ns if q is self.victim else self.prof["zap_present_ns"]
        g = min(self.chunk, q.rss)
        q.rss -= g
        self.free += g  # freed at the start of its chunk: chunk_bytes is the time resolution
        if g:
            self.log("unmap_progress", q)
        d = g * per * 1e-9
        if q.rss:
            self.at(self.t + d, "zap", q.pid)
        else:
            q.released = True
            self.at(self.t + d + self.prof["exit_base_s"], "reap", q.pid)

    def on_reaper(self, q: Proc) -> None:
        """The OOM reaper's pass over a victim: what it may unmap, then what it does to the hold-off."""
        pol = self.era.oom
        if q.released or not q.alive:
            return
        if pol.holdoff_until == "exit-done" and pol.oom_reaper == "skips-locked":
            # 4.6: find_lock_task_mm() finds no mm once the victim has passed exit_mm(): nothing done
            if q.has_mm:
                q.oom_skip = True  # it unmapped the rest and cleared TIF_MEMDIE
            return
        locked = q is self.victim and pol.oom_reaper == "skips-locked"
        freed = 0 if locked else q.rss  # the victim's memory is its VM_LOCKED VMA; bystanders' is not mlocked
        self.free += freed
        q.rss -= freed
        self.log("oom_reaper", q, f"reaped {freed * PAGE_BYTES} bytes" + (" (VM_LOCKED skipped)" if locked else ""))
        if pol.holdoff_until in ("reaper", "exit-mmap-start") or not q.rss:
            q.oom_skip = True  # MMF_OOM_SKIP after the pass

    def on_reap(self, q: Proc) -> None:
        q.alive, q.released, q.reap_t = False, True, self.t
        self.log("reaped", q)

    def on_touch(self, b: Proc) -> None:
        if not b.alive or b.exiting:
            return
        if b.memdie:  # killed while stalled in the allocator: gets reserves, returns, takes the signal
            return
        n = self.p.bystander_touch_bytes // PAGE_BYTES or 1
        g = self.alloc(b, n)
        if g == n:
            self.free += g  # transient: freed again within the period
            if b.stalled_since is not None:
                self.log("alloc_resumed", b, f"stalled {self.t - b.stalled_since:.3f} s")
                b.stalled_since = None
            self.at(self.t + self.p.bystander_period_s, "touch", b.pid)
            return
        self.free += g
        self.stall(b, "touch")

    # --- run --------------------------------------------------------------------------------------
    def finish(self, outcome: str) -> None:
        if self.outcome is None:
            self.outcome, self.outcome_s = outcome, self.t

    def settled(self) -> bool:
        return (not self.victim.alive and not any(q.exiting and q.alive for q in self.procs)
                and not any(q.stalled_since is not None and q.alive for q in self.procs))

    def run(self) -> None:
        handlers: dict[str, Callable[[Proc], None]] = {
            "mlock": self.on_mlock, "signal": self.on_signal, "exit_fault": self.on_exit_fault, "zap": self.on_zap,
            "reap": self.on_reap, "reaper": self.on_reaper, "touch": self.on_touch}
        while self.heap and self.outcome is None:
            t, _, _, kind, pid = heapq.heappop(self.heap)
            if t > self.p.horizon_s:
                break
            self.t = max(self.t, t)
            handlers[kind](self.proc(pid))
            if self.settled():
                killed = any(q.role == "bystander" and q.kill_t is not None for q in self.procs)
                self.finish("bystander-killed" if killed else "recovered")
        if self.outcome is None:
            self.t = max(self.t, self.p.horizon_s)
            self.log("horizon", None, "victim not reaped: no forward progress")
            self.finish("hung")
        self.log("outcome", None, self.outcome)


def _simulate(p: OomParams) -> _Sim:
    sim = _Sim(p, p.era, p.machine())
    sim.run()
    return sim


def simulate(p: OomParams) -> pd.DataFrame:
    """One tidy row per process: role, survived, term_signal, start_to_kill_s, kill_to_reap_s, and the outcome."""
    sim = _simulate(p)
    rows = []
    for q in sim.procs:
        killed = q.kill_t is not None
        rows.append({**base_row(NAME, p), "pid": q.pid, "role": q.role, "survived": not killed,
                     "term_signal": 9 if killed else None,
                     "start_to_kill_s": q.kill_t if killed else float("nan"),
                     "kill_to_reap_s": (q.reap_t - q.kill_t) if killed and q.reap_t is not None else float("nan"),
                     "killed_by_pid": q.killed_by if killed else None,
                     "exit_pages_faulted": q.exit_pages_faulted,
                     "mlocked_bytes": sim.mlocked * PAGE_BYTES if q is sim.victim else 0,
                     "outcome": sim.outcome, "outcome_s": sim.outcome_s, "memdie_alloc": p.memdie_alloc,
                     "vma_bytes": p.vma_bytes, "free_bytes_start": p.free_bytes, "bystanders": p.bystanders,
                     "bystander_bytes": p.bystander_bytes})
    df = pd.DataFrame(rows)
    # as in the real experiment: a signal number, or null for survivors
    df["term_signal"] = df["term_signal"].astype("Int64")
    df["killed_by_pid"] = df["killed_by_pid"].astype("Int64")
    return df


def timeline(p: OomParams) -> pd.DataFrame:
    """Events over time (time_s, event, pid, role, free_bytes, victim_rss_bytes, detail) for plots."""
    sim = _simulate(p)
    df = pd.DataFrame(sim.events)
    for k, v in base_row(NAME, p).items():
        df[k] = v
    return df


SCENARIO = Scenario(NAME, "a victim mlocks more than is free; the era's OOM killer; who dies, and does the machine recover",
                    OomParams, simulate)
