"""Keep a Druid task's lock lease alive while one of its Airflow steps runs.

A lock's lease expires unless its task heartbeats; a long build would otherwise lose its locks half-way. Each step
runs :class:`LeaseHeartbeat` around its work: a daemon thread beats every ``interval_s`` seconds. A revoked lock
(the beat raises :class:`~druidflow.exceptions.LockRevokedError`) stops the beating and, with ``stop_work``, the
work too: the error is raised in the thread that runs the ``with`` block at its next Python instruction, so a build
that can never be published ends early instead of running to its end. It is also re-raised by
:meth:`LeaseHeartbeat.check` (and the publish step re-checks revocation inside its own transaction anyway, so
nothing is published on a revoked lock even if the step itself does not notice).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable
from types import TracebackType

from druidflow.exceptions import LockRevokedError, TerminalError

log = logging.getLogger(__name__)

#: Seconds between heartbeats when the caller does not say; well under any sensible lease.
DEFAULT_INTERVAL_S = 10.0


class _WorkStopped(BaseException):
    """Raised asynchronously in the working thread when its lock was revoked; turned into the LockRevokedError."""


class LeaseHeartbeat:
    """Call ``beat()`` every ``interval_s`` seconds on a daemon thread while the ``with`` block runs.

    :param beat: renews the lease (e.g. ``lambda: heartbeat(task_id, rt)``); raising
        :class:`~druidflow.exceptions.LockRevokedError` (or any terminal error) stops the thread and is kept for
        :meth:`check`; other errors are logged and the next beat tries again.
    :param interval_s: seconds between beats.
    :param name: thread name, for logs.
    """

    def __init__(
        self,
        beat: Callable[[], object],
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        name: str = "lease",
        stop_work: bool = True,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        self._beat = beat
        self._interval_s = interval_s
        self._stop_work = stop_work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"druidflow-heartbeat-{name}", daemon=True)
        self._worker: int | None = None  # the thread running the with block
        self._guard = threading.Lock()
        self._interrupted = False
        self._closing = False
        self.beats = 0
        self.error: BaseException | None = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._beat()
                self.beats += 1
            except TerminalError as exc:  # revoked/not held: beating again cannot help
                self.error = exc
                log.error("Lock heartbeat stopped: %s", exc)
                if self._stop_work and isinstance(exc, LockRevokedError):
                    self._interrupt_worker()
                return
            except Exception:
                log.warning("Lock heartbeat failed; retrying in %.0fs", self._interval_s, exc_info=True)

    def _interrupt_worker(self) -> None:
        with self._guard:
            if self._closing or self._worker is None:
                return
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._worker), ctypes.py_object(_WorkStopped))
            self._interrupted = True

    def __enter__(self) -> LeaseHeartbeat:
        self._worker = threading.get_ident()
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stopped = exc_type is not None and issubclass(exc_type, _WorkStopped)
        try:
            self._close()
        except _WorkStopped:  # it arrived just as the block ended
            stopped = True
            self._close()
        self.stop()
        if stopped and self.error is not None:
            raise self.error from None

    def _close(self) -> None:
        with self._guard:
            self._closing = True
            if self._interrupted:
                # Not delivered yet (the block ended first): withdraw it, so that it cannot land after the block.
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._worker or 0), None)
                self._interrupted = False

    def stop(self) -> None:
        """Stop beating and wait for the thread to finish its current beat."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=max(self._interval_s, 30.0))

    @property
    def revoked(self) -> bool:
        """Whether a beat found the task's locks revoked."""
        return isinstance(self.error, LockRevokedError)

    def check(self) -> None:
        """Re-raise the terminal error a beat met, if any."""
        if self.error is not None:
            raise self.error
