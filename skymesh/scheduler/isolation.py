"""Run solver work in child processes with an address-space cap and a watchdog.

MIP and CP solvers do not always honour their time limits (HiGHS ignored one for 15 minutes, SCIP reached 22.6 GB
on 2 cores; reference §3; CP-SAT overran a 10 s limit by more than 5 s in presolve here on a loaded machine), and a
solver that eats the machine takes the whole scheduler with it. A child is forked from a "forkserver" (a clean
process: no inherited gRPC threads or event loop; solver modules preloaded), caps its own address space with
`resource.setrlimit(RLIMIT_AS)` and sends back one pickled result; the parent kills it when its deadline passes.
Two children can run side by side (`Isolated.start`), e.g. the primal search and the Lagrangian bound on 2 cores.

Imports: the standard library only.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import resource
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

__all__ = ["CancelScope", "Isolated", "SolveCancelled", "report_progress", "run_isolated", "warm_up"]

log = logging.getLogger(__name__)

T = TypeVar("T")


# In a child: its pipe to the parent and the threads sending its progress reports (see `report_progress`).
_to_parent: Connection | None = None
_senders: list[threading.Thread] = []
_send_lock = threading.Lock()


def report_progress(value: Any) -> None:
    """From inside an isolated child: hand `value` to the parent now (`Isolated.progress`), while the child goes on.

    Sent from a thread, so the child never waits on a parent that is busy elsewhere (a pipe holds 64 KB); outside
    a child it does nothing."""
    conn = _to_parent
    if conn is None:
        return

    def send() -> None:
        with _send_lock:
            conn.send(("progress", value, 0))

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    _senders.append(thread)


def _child(conn: Connection, fn: Callable[..., Any], args: tuple[Any, ...], memory_limit_bytes: int) -> None:
    global _to_parent
    _to_parent = conn
    try:
        if memory_limit_bytes > 0:
            _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            cap = memory_limit_bytes if hard == resource.RLIM_INFINITY else min(hard, memory_limit_bytes)
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        value = fn(*args)
        answer: tuple[str, Any, int] = ("ok", value, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    except MemoryError:
        answer = ("error", "memory limit reached", 0)
    except BaseException as exc:  # the parent logs it and falls back
        answer = ("error", f"{type(exc).__name__}: {exc}", 0)
    try:
        for thread in _senders:  # progress reports go first: the answer is the last message
            thread.join()
        with _send_lock:
            conn.send(answer)
    finally:
        conn.close()


# Modules the fork server imports once, so each solver child starts in milliseconds instead of re-importing numpy
# and OR-Tools (about a second on a loaded 2-core machine, a tenth of a 10 s budget).
PRELOAD = (
    "numpy",
    "ortools.sat.python.cp_model",
    "ortools.math_opt.python.mathopt",
    "ortools.math_opt.core.python.solver",
    "skymesh.scheduler.cpsat",
    "skymesh.scheduler.improve",
    "skymesh.scheduler.lpguided",
    "skymesh.scheduler.exact",
)


def _context() -> Any:
    """A "forkserver" context: children fork from a clean, single-threaded server process (never from the gRPC
    server with its threads and event loop), with the solver modules already imported."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


def warm_up() -> None:
    """Start the fork server now, without waiting for it: its preload (numpy, OR-Tools; 2.5 s on 2 busy cores) then
    overlaps with the caller's own work (visibility) instead of delaying the first solver child inside its deadline."""
    from multiprocessing import forkserver

    _context()
    forkserver.ensure_running()


class SolveCancelled(BaseException):
    """The caller went away: the solve's children were killed and no new one starts. A BaseException (like
    asyncio's CancelledError), so no solver's fallback `except Exception` swallows it."""


class CancelScope:
    """Cancellation for the solver children one thread starts: `cancel()` (from any thread) kills the live ones, and
    the thread's next start or wait raises SolveCancelled, so a cancelled plan stops instead of running on."""

    _current = threading.local()

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self._live: set[Isolated[Any]] = set()
        self._lock = threading.Lock()

    @classmethod
    def current(cls) -> CancelScope | None:
        return getattr(cls._current, "scope", None)

    def enter(self) -> None:
        """Make this the calling thread's scope (until `exit`)."""
        CancelScope._current.scope = self

    def exit(self) -> None:
        CancelScope._current.scope = None

    @classmethod
    def checkpoint(cls) -> None:
        """Raise SolveCancelled when the calling thread's scope was cancelled (no scope: never).

        The hook for the plan's in-process phases (visibility between its chunks, the greedy pass, explanations):
        a cancelled plan stops at its next checkpoint instead of running to the end. Cheap: call it every few
        thousand items, not per item."""
        scope = cls.current()
        if scope is not None and scope.cancelled.is_set():
            raise SolveCancelled("the plan was cancelled")

    def cancel(self) -> None:
        self.cancelled.set()
        with self._lock:
            live = list(self._live)
        for job in live:
            job.kill()

    def _add(self, job: Isolated[Any]) -> None:
        with self._lock:
            self._live.add(job)

    def _discard(self, job: Isolated[Any]) -> None:
        with self._lock:
            self._live.discard(job)


class Isolated(Generic[T]):
    """One child process computing `fn(*args)`; `result()` waits for it until the deadline, then kills it."""

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...], *, memory_limit_bytes: int = 8 << 30) -> None:
        self._scope = CancelScope.current()
        if self._scope is not None and self._scope.cancelled.is_set():
            raise SolveCancelled("the plan was cancelled")
        ctx = _context()
        self._conn, child = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_child, args=(child, fn, args, memory_limit_bytes), daemon=True)
        self._proc.start()
        child.close()
        self.name = getattr(fn, "__name__", "solver")
        self.peak_rss_bytes = 0  # the child's peak resident set (Linux ru_maxrss), once it has answered
        self._answer: tuple[str, Any, int] | None = None  # the child's last message, once read
        if self._scope is not None:
            self._scope._add(self)

    @classmethod
    def start(cls, fn: Callable[..., T], args: tuple[Any, ...], *, memory_limit_bytes: int = 8 << 30) -> Isolated[T]:
        return cls(fn, args, memory_limit_bytes=memory_limit_bytes)

    def progress(self, timeout_s: float) -> tuple[bool, Any]:
        """Wait up to `timeout_s` for the child's next `report_progress`: (True, value); (False, None) when the child
        answered, failed or died first, or the time ran out. The child keeps running either way."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while self._answer is None and self._wait(deadline - time.monotonic()):
            kind, payload, rss = self._receive()
            if kind == "progress":
                return True, payload
            self._answer = (kind, payload, rss)
        return False, None

    def answered(self, timeout_s: float) -> bool:
        """Whether the child answered (or failed) within `timeout_s`; unread progress reports are skipped."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while self._answer is None and self._wait(deadline - time.monotonic()):
            kind, payload, rss = self._receive()
            if kind != "progress":
                self._answer = (kind, payload, rss)
        return self._answer is not None

    def result(self, timeout_s: float) -> T | None:
        """The child's answer; None when it failed, ran out of memory or outlived `timeout_s` (then it is killed).
        Progress reports not read by `progress` are skipped."""
        try:
            if not self.answered(timeout_s) or self._answer is None:
                log.warning("%s: child outlived its %.1f s watchdog; killing it", self.name, timeout_s)
                return None
            kind, payload, self.peak_rss_bytes = self._answer
            if kind == "ok":
                return payload  # type: ignore[no-any-return]
            if kind == "died":
                log.warning("%s: child died without an answer (exit code %s)", self.name, self._proc.exitcode)
            else:
                log.warning("%s: child failed: %s", self.name, payload)
            return None
        finally:
            self.kill()

    def _receive(self) -> tuple[str, Any, int]:
        """One message from the child, once `_wait` said there is one; ("died", None, 0) when it died instead."""
        try:
            message: tuple[str, Any, int] = self._conn.recv()
        except EOFError:
            return "died", None, 0
        except OSError:  # closed by a cancel from another thread between the poll and the read
            if self._scope is not None and self._scope.cancelled.is_set():
                raise SolveCancelled("the plan was cancelled") from None
            raise
        return message

    def _wait(self, timeout_s: float) -> bool:
        """Whether the child answered within `timeout_s`; raises SolveCancelled when the scope is cancelled first."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            if self._scope is not None and self._scope.cancelled.is_set():
                raise SolveCancelled("the plan was cancelled")
            try:
                if self._conn.poll(max(0.0, min(0.2, deadline - time.monotonic()))):
                    return True
            except OSError:  # killed (closed) by a cancel from another thread
                if self._scope is not None and self._scope.cancelled.is_set():
                    raise SolveCancelled("the plan was cancelled") from None
                raise
            if time.monotonic() >= deadline:
                return False

    def kill(self) -> None:
        if self._scope is not None:
            self._scope._discard(self)
        self._conn.close()
        if self._proc.is_alive():
            self._proc.kill()
        self._proc.join(timeout=5)


def run_isolated(
    fn: Callable[..., T], args: tuple[Any, ...], *, timeout_s: float, memory_limit_bytes: int = 8 << 30
) -> T | None:
    """`fn(*args)` in a spawned child; None when it fails, runs out of memory or outlives `timeout_s`.

    `fn` must be a module-level function and `args` picklable.
    """
    t0 = time.monotonic()
    job = Isolated.start(fn, args, memory_limit_bytes=memory_limit_bytes)
    return job.result(timeout_s - (time.monotonic() - t0))
