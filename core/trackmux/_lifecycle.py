"""What happens to a process's open trackers when it exits, forks, or is told to stop.

* **Exit** (``atexit``): every tracker still open finishes its runs and delivers for up to
  30 s, like ``disconnect()``.
* **Fork** (``os.register_at_fork``): a forked child never touches its parent's trackers.
  Their journal, engine thread, sockets and locks stay the parent's: in the child every
  call that would use them raises :class:`~trackmux.TrackerClosedError` saying so (create a
  new ``Tracker`` in the child for a run of its own), ``disconnect()``, context-manager exit
  and interpreter exit do nothing for them, and their objects are never finalized in the
  child (finalizing could flush a copied buffer into the parent's journal, or close the
  parent's database from the wrong process).
* **SIGTERM** (SLURM, Kubernetes, ``multiprocessing``'s ``terminate()``): installed from the
  main thread when the first tracker connects, chained to the handler it replaces.

  - With no Python handler before it (the default disposition), the handler commits
    what is buffered to the journal, ends every open run as ``PREEMPTED``, delivers for
    up to :data:`PREEMPT_TIMEOUT` seconds, releases the journals, then restores the
    default disposition and re-raises the signal: the process ends with the status a
    SIGTERM gives (-15, or 143 in a shell). A second SIGTERM meanwhile ends it at once.
  - With a Python handler before it (a user's), or one installed after it that calls it
    (PyTorch Lightning composes the handler it finds), that handler decides how the process
    stops: trackmux commits what is buffered to the journal (and calls the one before
    it). The trackers stay open (a checkpoint step may still log); runs that end later
    (context exit, ``disconnect()``, interpreter exit, ``finish()`` with an exit code) end
    as ``PREEMPTED`` unless ``finish(status=...)`` names another state, and close
    delivering for at most :data:`PREEMPT_TIMEOUT` seconds.
  - ``SIG_IGN`` or a handler installed from C is left alone.

The handler runs between two bytecodes of the main thread, which may be inside trackmux
itself, holding a lock the delivery needs (the hot path's). It checks that each tracker's
locks are free; if one is not, it returns and has the signal sent again 10 ms later, after
the interrupted call finished.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from trackmux_spec import JobStatus

__all__ = ["PREEMPT_TIMEOUT", "closing_status", "closing_timeout", "preempted", "register",
           "unregister"]

logger = logging.getLogger("trackmux")

#: Seconds from SIGTERM until the process ends (with the default disposition), and the
#: longest a run's delivery waits once the process was told to stop.
PREEMPT_TIMEOUT = 5.0

#: Deferrals of the SIGTERM work while the main thread holds a trackmux lock (10 ms each).
_MAX_DEFERRALS = 50


class LiveTracker(Protocol):
    """What this module needs from a connected tracker (``_TrackerBase``)."""

    def _close_at_exit(self) -> None: ...

    def _close_blocking(self, timeout: float | None, status: JobStatus) -> Any: ...

    def _commit_blocking(self, timeout: float, final: JobStatus | None = None) -> None: ...

    def _locks_free(self, timeout: float) -> bool: ...

    def _abandon_after_fork(self, parent_pid: int) -> None: ...


#: Every connected tracker, held until it closes: one the program no longer references
#: (made in a function that returned without closing it) still finishes its runs at exit.
_LIVE: set[LiveTracker] = set()
_PID = os.getpid()


def register(tracker: LiveTracker) -> None:
    """Track a connected tracker: closed at exit, abandoned in forked children, preempted
    by SIGTERM (the handler is installed now if this is the main thread)."""
    _LIVE.add(tracker)
    _install_sigterm_handler()


def unregister(tracker: LiveTracker) -> None:
    """Stop tracking a tracker (it is closing)."""
    _LIVE.discard(tracker)


@atexit.register
def _close_at_exit() -> None:
    for tracker in list(_LIVE):
        with contextlib.suppress(Exception):
            tracker._close_at_exit()


# -- fork ---------------------------------------------------------------------------------

#: The parent's trackers, kept from finalization in a forked child.
_ABANDONED: list[object] = []


def _after_fork_in_child() -> None:
    global _PID, _phase, _preempted
    parent, _PID = _PID, os.getpid()
    _phase, _preempted = "idle", False
    trackers = list(_LIVE)
    _LIVE.clear()
    if not trackers:
        return
    import ctypes  # only when there is something to keep: `import trackmux` stays lean

    for tracker in trackers:
        with contextlib.suppress(Exception):
            tracker._abandon_after_fork(parent)
        # Never finalized in this process: a leaked reference keeps the tracker, its
        # engine, journals and sessions alive through interpreter shutdown, so no buffered
        # file is flushed and no database or lock is closed from the child.
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(tracker))
        _ABANDONED.append(tracker)


os.register_at_fork(after_in_child=_after_fork_in_child)


# -- SIGTERM ------------------------------------------------------------------------------

_installed = False
_previous: Any = None
_phase = "idle"  # "deferred" (waiting for a trackmux lock), "stopping"
_preempted = False
_deadline = 0.0
_deferrals = 0


def preempted() -> bool:
    """Whether this process received SIGTERM while trackers were open."""
    return _preempted


def closing_status(status: JobStatus) -> JobStatus:
    """The final state of a run closed without an explicit ``finish()``: ``PREEMPTED``
    once the process was told to stop, else ``status``."""
    if _preempted and status in (JobStatus.FINISHED, JobStatus.FAILED):
        return JobStatus.PREEMPTED
    return status


def closing_timeout(timeout: float | None) -> float | None:
    """How long a close may deliver: at most :data:`PREEMPT_TIMEOUT` after SIGTERM."""
    if not _preempted:
        return timeout
    return PREEMPT_TIMEOUT if timeout is None else min(timeout, PREEMPT_TIMEOUT)


def _install_sigterm_handler() -> None:
    global _installed, _previous
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if current is signal.SIG_IGN or current is None:
        logger.debug("SIGTERM is ignored or handled outside Python; trackmux leaves it alone")
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    _previous = current
    _installed = True


def _on_sigterm(signum: int, frame: Any) -> None:
    global _phase, _preempted, _deadline, _deferrals
    if _phase == "stopping":
        _die(signum)  # a second SIGTERM while delivering: at once
    if _phase == "idle":
        _preempted = True
        _deadline = time.monotonic() + PREEMPT_TIMEOUT
        _deferrals = 0
    trackers = list(_LIVE)
    if _deferrals < _MAX_DEFERRALS and not all(t._locks_free(0.02) for t in trackers):
        # the main thread was interrupted inside trackmux: let that call finish first
        _phase = "deferred"
        _deferrals += 1
        threading.Timer(0.01, _send_again, (signum,)).start()
        return
    previous = _previous
    if callable(previous) or signal.getsignal(signal.SIGTERM) is not _on_sigterm:
        # A Python handler installed before trackmux, or one installed after it that calls
        # it (Lightning composes the handler it finds): that one decides how the process
        # stops. trackmux commits, and the runs end as preempted when they are closed.
        _phase = "stopping"
        try:
            if trackers:
                logger.warning(
                    "SIGTERM: trackmux committed its journal; the runs will end as preempted"
                )
            _run_bounded([_commit_of(t) for t in trackers])
        finally:
            _phase = "idle"
        if callable(previous):
            previous(signum, frame)
        return
    _phase = "stopping"
    _run_bounded([_commit_of(t, JobStatus.PREEMPTED) for t in trackers])
    if trackers:
        logger.warning(
            "SIGTERM: trackmux journaled every record and ended the runs as preempted; "
            "delivering for up to %.0f s (what is not delivered stays in the journal; this "
            "sends it later: %s)",
            PREEMPT_TIMEOUT,
            _sync_hint(trackers),
        )
    _run_bounded([_close_of(t) for t in trackers])
    _die(signum)


def _sync_hint(trackers: list[Any]) -> str:
    from ._hints import sync_command

    commands: list[str] = []
    for tracker in trackers:
        settings = getattr(tracker, "settings", None)
        for name in getattr(settings, "trackers", ()):
            command = sync_command(settings.data_dir, name)
            if command not in commands:
                commands.append(command)
    return " ; ".join(commands) or "trackmux sync --tracker NAME"


def _commit_of(tracker: LiveTracker, final: JobStatus | None = None) -> Callable[[], None]:
    return lambda: tracker._commit_blocking(max(0.0, _deadline - time.monotonic()), final)


def _close_of(tracker: LiveTracker) -> Callable[[], None]:
    return lambda: tracker._close_blocking(
        max(0.0, _deadline - time.monotonic()), JobStatus.PREEMPTED
    )


def _run_bounded(calls: list[Callable[[], None]]) -> None:
    """Run ``calls`` on threads of their own; wait for them until the deadline."""

    def quietly(call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:
            logger.exception("trackmux could not end a tracker session on SIGTERM")

    threads = [
        threading.Thread(target=quietly, args=(call,), name="trackmux-sigterm", daemon=True)
        for call in calls
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, _deadline - time.monotonic()))


def _send_again(signum: int) -> None:
    with contextlib.suppress(Exception):
        signal.pthread_kill(threading.main_thread().ident, signum)  # type: ignore[arg-type]


def _die(signum: int) -> None:
    """End the process the way ``signum`` with its default disposition does."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)  # not reached: the default disposition ended the process
