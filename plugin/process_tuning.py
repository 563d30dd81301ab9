"""Process-wide tuning (glibc's allocator), done only for an entry point that owns the process.

The engine is also a library: a program that imports it and runs a task must find its process as it left it.
So the allocator tweaks below act only inside :func:`owned_process`, which the CLI's ``main`` and the operators'
engine steps (an Airflow task runs in its own process) enter, and which undoes them on exit. Called as a library,
:func:`tune_allocator` and :func:`trim_allocator` do nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

_M_MMAP_THRESHOLD = -3
# glibc's own starting value; mallopt has no getter, so this is what owned_process restores.
_GLIBC_DEFAULT_MMAP_THRESHOLD = 128 * 1024
_TUNED_MMAP_THRESHOLD = 1 << 20

_libc_handle: Optional[Any] = None
_libc_loaded = False
_owned_depth = 0
_allocator_tuned = False


def _libc() -> Optional[Any]:
    global _libc_handle, _libc_loaded
    if not _libc_loaded:
        _libc_loaded = True
        try:
            import ctypes

            _libc_handle = ctypes.CDLL("libc.so.6")
        except OSError:
            _libc_handle = None
    return _libc_handle


def _mallopt(param: int, value: int) -> bool:
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(param, value))


def process_owned() -> bool:
    """Whether the running code is inside :func:`owned_process` (tuning allowed)."""
    return _owned_depth > 0


def allocator_tuned() -> bool:
    """Whether glibc's mmap threshold is currently set by :func:`tune_allocator`."""
    return _allocator_tuned


@contextmanager
def owned_process() -> Iterator[None]:
    """Allow process-wide tuning for the block; the outermost exit restores glibc's mmap threshold."""
    global _owned_depth, _allocator_tuned
    _owned_depth += 1
    try:
        yield
    finally:
        _owned_depth -= 1
        if _owned_depth == 0 and _allocator_tuned:
            _mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT_MMAP_THRESHOLD)
            _allocator_tuned = False


def tune_allocator() -> None:
    """Serve every C allocation over 1 MiB from its own mapping (glibc only; inside :func:`owned_process` only).

    Batches, numpy temporaries and read buffers are megabytes each. By default glibc raises its mmap threshold
    as such blocks are freed, after which they come from the heap, whose freed holes stay resident: over a long
    build the resident size then creeps up with the input although live data stays bounded. Mapped blocks go
    back to the OS the moment they are freed.
    """
    global _allocator_tuned
    if _allocator_tuned or not process_owned():
        return
    _allocator_tuned = _mallopt(_M_MMAP_THRESHOLD, _TUNED_MMAP_THRESHOLD)


def trim_allocator() -> None:
    """Return the C heap's free pages to the OS (glibc's malloc_trim; inside :func:`owned_process` only)."""
    if not process_owned():
        return
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
