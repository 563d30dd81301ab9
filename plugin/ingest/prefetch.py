"""Read ahead: produce the next input batches on a background thread while the current one is processed.

Reading and parsing CSV/JSON in Arrow, and the numpy work of rollup, both release the GIL, so on a machine with
two cores the reader and the builder overlap instead of taking turns. The queue is short, so memory stays at a
couple of batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


def prefetched(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` with up to ``depth`` of them produced ahead on a daemon thread; errors are re-raised here."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put((item, None))
        except BaseException as exc:
            q.put((_DONE, exc))
            return
        q.put((_DONE, None))

    thread = threading.Thread(target=produce, name="druidflow-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = q.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
