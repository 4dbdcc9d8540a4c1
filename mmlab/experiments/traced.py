"""Kernel-side phases for the kill experiments: an optional private trace session around one measurement.

`tracer(on)` yields a `Tracer` that is a no-op when tracing is off or cannot run here (the reason is kept
and stored in the rows as `trace_skipped`); otherwise it watches the experiment's tasks and turns the
kernel's events into `k_*` columns per task (mmlab.kernel.trace.phases), on the clock of the rows'
own times (CLOCK_MONOTONIC), so kernel and user-space phases share one axis.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping

from mmlab.core import params as p
from mmlab.kernel import trace

TRACE_HELP = ("record the kernel's tracepoints (signal, exit_mmap, exit, OOM kill and reaper) for the experiment's "
              "tasks in a private tracefs instance (needs root); off: untraced")


def trace_field(default: bool = True):
    return p.flag(default, TRACE_HELP)


class Tracer:
    """One measurement's trace session, or nothing (then `skipped` says why)."""

    def __init__(self, session: trace.Session | None, skipped: str | None):
        self.session, self.skipped = session, skipped
        self._events: list[dict] | None = None

    @property
    def on(self) -> bool:
        return self.session is not None

    def watch(self, pids: Iterable[int]) -> None:
        if self.session is not None:
            self.session.watch(pids)

    def finish(self, reaped_pid: int | None = None, wait_s: float = 0.5) -> None:
        """Stop recording; first, up to wait_s, let the reaped task's sched_process_free arrive (its
        task_struct is freed in an RCU callback shortly after the parent reaped it)."""
        if self.session is None or self._events is not None:
            return
        if reaped_pid is not None:
            import time

            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and "sched_process_free: comm=" not in self._tail(reaped_pid):
                time.sleep(0.01)
        self.session.stop()
        self._events = self.session.read()

    def _tail(self, pid: int) -> str:
        text = self.session.text() if self.session is not None else ""
        return "\n".join(x for x in text.splitlines() if f" pid={pid} " in x)

    def events(self) -> list[dict]:
        """Every event recorded (read once, after the measurement)."""
        if self.session is None:
            return []
        if self._events is None:
            self.finish()
        return self._events or []

    def phases(self, pid: int, origin_s: float) -> dict:
        """`k_*` columns for one task, with times in seconds since origin_s; `traced` says whether."""
        if self.session is None:
            return {"traced": False, "trace_skipped": self.skipped}
        return {"traced": True, "trace_skipped": None, **trace.phases(self.events(), pid, origin_s)}

    def timeline(self, roles: Mapping[int, str], origin_s: float) -> list[dict]:
        return trace.timeline(self.events(), roles, origin_s) if self.session is not None else []


@contextlib.contextmanager
def tracer(on: bool) -> Iterator[Tracer]:
    """A Tracer for one measurement; its trace instance is removed on leaving, on every exit path
    (the path is named before it is made, so even a Ctrl-C right after mkdir() leaves nothing)."""
    if not on:
        yield Tracer(None, "trace is off")
        return
    ok, why = trace.availability()
    if not ok:
        yield Tracer(None, why)
        return
    try:
        path = trace.next_path()
    except trace.TraceUnavailable as e:
        yield Tracer(None, str(e))
        return
    try:
        session, skipped = None, None
        try:
            session = trace.create(path=path)
        except trace.TraceUnavailable as e:
            skipped = str(e)
        yield Tracer(session, skipped)
    finally:
        trace.remove_instance(path)
