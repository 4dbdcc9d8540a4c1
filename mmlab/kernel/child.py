"""Real experiments run here: in a child process, never in the caller's (or a notebook kernel's) process.

The parent starts `python -m mmlab.kernel.child MODULE:FUNCTION ARGS_JSON`; the child sets PR_SET_PDEATHSIG so
it dies with its parent, ignores SIGINT (the parent decides), and talks JSON lines: it `send`s events on
stdout and may `sync`, waiting for the parent's reply on stdin, so the parent can read /proc between
steps. `Child` (parent side) always kills and reaps on leaving its `with` block, and measures the
exit precisely through a pidfd rather than a sleeping poll.
"""
from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any

from mmlab.core.errors import MmlabError


class ChildError(MmlabError, RuntimeError):
    """The child failed, died or hung; the message says which and what it last reported.

    `fault` names the kind for rows and messages: error (the child reported an exception), hung (silent
    past timeout_s), exited-early (ended before finishing), killed (a signal mmlab did not send)."""

    fault = "error"


class ChildTimeout(ChildError):
    fault = "hung"


class ChildDied(ChildError):
    def __init__(self, message: str, returncode: int | None):
        super().__init__(message)
        self.returncode = returncode
        # a death by signal is "killed" (OOM killer, another process); else "exited-early"
        self.fault = "killed" if returncode is not None and returncode < 0 else "exited-early"


# ---------------------------------------------------------------------------------------- child side
class ChildContext:
    """What a child function gets: send events, sync with the parent."""

    def __init__(self, out, inp):
        self._out, self._in = out, inp

    def send(self, event: str, **data: Any) -> None:
        self._out.write(json.dumps({"event": event, **data}) + "\n")
        self._out.flush()

    def sync(self, event: str, **data: Any) -> dict:
        """Report `event` and wait until the parent replies; returns the reply."""
        self.send(event, **data)
        line = self._in.readline()
        if not line:
            os._exit(3)  # parent gone
        return json.loads(line)


def _child_main(argv: list[str]) -> int:
    from mmlab.kernel import libc

    parent = int(os.environ.get("MMLAB_PARENT_PID", "0"))
    libc.set_pdeathsig(signal.SIGKILL)
    if parent and os.getppid() != parent:  # parent died before prctl took effect
        return 3
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    target, args = argv[0], json.loads(argv[1])
    module, func = target.split(":")
    fn = getattr(importlib.import_module(module), func)
    out = os.fdopen(os.dup(1), "w", buffering=1)
    ctx = ChildContext(out, sys.stdin)
    try:
        fn(ctx, **args)
    except OSError as e:
        ctx.send("error", type=type(e).__name__, errno=e.errno, message=str(e))
        return 1
    except Exception as e:  # reported to the parent, which raises ChildError with it
        ctx.send("error", type=type(e).__name__, errno=None, message=str(e))
        return 1
    ctx.send("done")
    return 0


# --------------------------------------------------------------------------------------- parent side
class Child:
    """A running child experiment; use as a context manager so it is always killed and reaped."""

    def __init__(self, target: str, timeout_s: float = 120.0, **args: Any):
        self.target, self.timeout_s, self.args = target, timeout_s, args
        self.proc: subprocess.Popen | None = None
        self.pidfd: int | None = None
        self.last_event: dict | None = None
        self._buf = b""
        self.returncode: int | None = None
        self.signals_sent: set[int] = set()

    def start(self) -> Child:
        env = dict(os.environ, MMLAB_PARENT_PID=str(os.getpid()), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mmlab.kernel.child", self.target, json.dumps(self.args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, close_fds=True)
        self.pidfd = os.pidfd_open(self.proc.pid)
        self.started_monotonic = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Child:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill_and_reap()

    def _stderr_tail(self) -> str:
        assert self.proc is not None and self.proc.stderr is not None
        try:
            os.set_blocking(self.proc.stderr.fileno(), False)
            data = self.proc.stderr.read() or b""
        except (OSError, ValueError):
            data = b""
        lines = data.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def recv(self, timeout_s: float | None = None) -> dict:
        """The next event from the child; ChildTimeout if none in time, ChildDied if it exited, ChildError
        if it reported an error."""
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildTimeout(f"child {self.target} (pid {self.pid}) hung: sent nothing for "
                                   f"{self.timeout_s if timeout_s is None else timeout_s:g}s (timeout_s); it is killed; "
                                   f"last event: {self.last_event}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise self._died(self.reap())
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        msg = json.loads(line)
        self.last_event = msg
        if msg.get("event") == "error":
            err = ChildError(f"{msg['message']}")
            err.errno = msg.get("errno")  # type: ignore[attr-defined]
            err.error_type = msg.get("type")  # type: ignore[attr-defined]
            raise err
        return msg

    def expect(self, event: str, timeout_s: float | None = None) -> dict:
        msg = self.recv(timeout_s)
        if msg.get("event") != event:
            raise ChildError(f"child {self.target}: expected {event!r}, got {msg}")
        return msg

    def reply(self, **data: Any) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(data) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:  # the child died (or closed stdin) meanwhile: say which, as recv does
            try:
                rc = self.proc.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                raise ChildTimeout(f"child {self.target} (pid {self.pid}) hung: closed its input but did not exit "
                                   f"within {self.timeout_s:g}s (timeout_s); it is killed") from None
            self.returncode = rc
            raise self._died(rc) from None

    def _died(self, rc: int) -> ChildDied:
        """ChildDied for a child found dead: killed by a signal mmlab sent or not, or exited early."""
        ours = rc < 0 and -rc in self.signals_sent
        how = (f"was killed by {describe_status(rc)}" + (" (sent by mmlab)" if ours else
                                                           ", not sent by mmlab (the OOM killer or another process?)")
               if rc < 0 else f"exited early with {describe_status(rc)} before finishing")
        return ChildDied(f"child {self.target} (pid {self.pid}) {how}; last event: {self.last_event}; "
                         f"{self._stderr_tail()}".rstrip("; "), rc)

    def wait_exit(self, timeout_s: float) -> bool:
        """Block until the child has exited (not reaped yet), by polling its pidfd; True if it did."""
        assert self.pidfd is not None
        ready, _, _ = select.select([self.pidfd], [], [], timeout_s)
        return bool(ready)

    def reap(self) -> int:
        assert self.proc is not None
        self.returncode = self.proc.wait()
        return self.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send a signal through the pidfd: never hits a recycled pid."""
        assert self.pidfd is not None
        self.signals_sent.add(int(sig))
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass

    def kill_and_reap(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.kill(signal.SIGKILL)
            self.proc.wait()
        self.returncode = self.proc.returncode
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
        pidfd, self.pidfd = self.pidfd, None  # forget first, so an interrupt cannot close it twice
        if pidfd is not None:
            os.close(pidfd)


def describe_status(returncode: int | None) -> str:
    if returncode is None:
        return "no status"
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
