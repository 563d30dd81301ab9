"""Keep a Druid task's lock lease alive while one of its Airflow steps runs.

A lock's lease expires unless its task heartbeats; a long build would otherwise lose its locks half-way. Each step
runs :class:`LeaseHeartbeat` around its work: a daemon thread beats every ``interval_s`` seconds. A revoked lock
stops the beating and is re-raised by :meth:`LeaseHeartbeat.check` (the publish step re-checks revocation inside its
own transaction anyway, so nothing is published on a revoked lock even if the step itself does not notice).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from druidflow.exceptions import LockRevokedError, TerminalError

log = logging.getLogger(__name__)

#: Seconds between heartbeats when the caller does not say; well under any sensible lease.
DEFAULT_INTERVAL_S = 10.0


class LeaseHeartbeat:
    """Call ``beat()`` every ``interval_s`` seconds on a daemon thread while the ``with`` block runs.

    :param beat: renews the lease (e.g. ``lambda: heartbeat(task_id, rt)``); raising
        :class:`~druidflow.exceptions.LockRevokedError` (or any terminal error) stops the thread and is kept for
        :meth:`check`; other errors are logged and the next beat tries again.
    :param interval_s: seconds between beats.
    :param name: thread name, for logs.
    """

    def __init__(self, beat: Callable[[], object], *, interval_s: float = DEFAULT_INTERVAL_S, name: str = "lease") -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        self._beat = beat
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"druidflow-heartbeat-{name}", daemon=True)
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
                return
            except Exception:  # noqa: BLE001 - a transient DB error must not kill the step; the next beat retries
                log.warning("Lock heartbeat failed; retrying in %.0fs", self._interval_s, exc_info=True)

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

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
