"""Guava's ``murmur3_32`` (MurmurHash3 x86_32, seed 0) of every string of an Arrow array, compiled with numba.

Strings are hashed where Arrow keeps them (the array's offsets and data buffers), one compiled loop over all of
them: about 0.1 s per million 120-byte keys, where a numpy version stepping every key through its blocks at once
took 1.1 s and one ``mmh3`` call per key 0.3 s. :func:`murmur3_32_keys` hashes keys that are joined from
fragments (hash partitioning's JSON keys) without building them as Arrow strings. The compiled code is cached
next to this module (numba's ``cache=True``); loading it costs a fixed ~0.5-1 s per process. Arithmetic is done
in 64 bits and masked, since numba widens 32-bit integer products.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

_MASK = np.uint64(0xFFFFFFFF)
_C1 = np.uint64(0xCC9E2D51)
_C2 = np.uint64(0x1B873593)


@njit(cache=True, nogil=True, inline="always")
def _mix_block(h: np.uint64, k: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """One whole 4-byte block ``k`` mixed into ``h``."""
    h ^= _scramble(k)
    h = ((h << np.uint64(13)) | (h >> np.uint64(19))) & _MASK
    return (h * np.uint64(5) + np.uint64(0xE6546B64)) & _MASK


@njit(cache=True, nogil=True, inline="always")
def _scramble(k: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    k = (k * _C1) & _MASK
    k = ((k << np.uint64(15)) | (k >> np.uint64(17))) & _MASK
    return (k * _C2) & _MASK


@njit(cache=True, nogil=True, inline="always")
def _finish(h: np.uint64, data: np.ndarray, tail: int | np.integer[Any], length: int | np.integer[Any]) -> np.uint32:  # pragma: no cover - compiled
    """The last ``length & 3`` bytes (from ``data[tail]``) and the final avalanche of a key of ``length`` bytes."""
    rest = length & 3
    if rest:
        k = np.uint64(0)
        for q in range(rest - 1, -1, -1):
            k = (k << np.uint64(8)) | np.uint64(data[tail + q])
        h ^= _scramble(k)
    h ^= np.uint64(length) & _MASK
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & _MASK
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & _MASK
    h ^= h >> np.uint64(16)
    return np.uint32(h)


@njit(cache=True, nogil=True)
def _hash_bytes(data: np.ndarray, start: int | np.integer[Any], length: int | np.integer[Any]) -> np.uint32:  # pragma: no cover - compiled
    """murmur3_32 (seed 0) of ``data[start:start + length]``, in 64-bit arithmetic masked to 32 bits."""
    h = np.uint64(0)
    p = start
    for _ in range(length >> 2):
        k = (
            np.uint64(data[p])
            | (np.uint64(data[p + 1]) << np.uint64(8))
            | (np.uint64(data[p + 2]) << np.uint64(16))
            | (np.uint64(data[p + 3]) << np.uint64(24))
        )
        h = _mix_block(h, k)
        p += 4
    return _finish(h, data, p, length)


@njit(cache=True, nogil=True)
def _hash_scratch(scratch: np.ndarray, words: np.ndarray, length: int) -> np.uint32:  # pragma: no cover - compiled
    """murmur3_32 (seed 0) of ``scratch[:length]``, its whole 4-byte blocks read through ``words`` (a little-endian
    uint32 view of the same buffer)."""
    h = np.uint64(0)
    for w in range(length >> 2):
        h = _mix_block(h, np.uint64(words[w]))
    return _finish(h, scratch, length - (length & 3), length)


@njit(cache=True, nogil=True)
def _murmur3_32(data: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in range(len(offsets) - 1):
        out[i] = _hash_bytes(data, np.int64(offsets[i]), np.int64(offsets[i + 1]) - np.int64(offsets[i]))


def murmur3_32(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The signed 32-bit murmur3 of each string's UTF-8 bytes (a null hashes as the empty string)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        hashes = murmur3_32(pc.fill_null(values.dictionary.cast(pa.string()), ""))
        empty = murmur3_32(pa.array([""]))[0]
        idx = values.indices.to_numpy(zero_copy_only=False) if not values.null_count else np.asarray(pc.fill_null(values.indices, -1))
        return np.where(idx >= 0, hashes[np.maximum(idx, 0)] if len(hashes) else empty, empty).astype(np.int32)
    offset_type: type[np.signedinteger[Any]]
    if pa.types.is_large_string(values.type) or pa.types.is_large_binary(values.type):
        offset_type = np.int64
    elif pa.types.is_string(values.type) or pa.types.is_binary(values.type):
        offset_type = np.int32
    else:
        raise TypeError(f"murmur3_32 hashes strings, not {values.type}")
    if values.null_count:
        values = pc.fill_null(values, pa.scalar("", values.type))
    n = len(values)
    out = np.zeros(n, dtype=np.uint32)
    if n == 0:
        return out.view(np.int32)
    _, offsets_buf, data_buf = values.buffers()[:3]
    width = np.dtype(offset_type).itemsize
    offsets = np.frombuffer(offsets_buf, dtype=offset_type, count=n + 1, offset=values.offset * width)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None and data_buf.size else np.zeros(1, np.uint8)
    _murmur3_32(data, offsets, out)
    return out.view(np.int32)



@njit(cache=True, nogil=True)
def _murmur3_32_keys(
    times: np.ndarray,
    use_time: bool,
    head: np.ndarray,
    tail: np.ndarray,
    consts: np.ndarray,
    const_offsets: np.ndarray,
    skip_absent: np.ndarray,
    data: np.ndarray,
    offsets: np.ndarray,
    bases: np.ndarray,
    rows: np.ndarray,
    scratch: np.ndarray,
    words: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Hash, per row ``i``, the bytes ``[`` + (time digits) + ``head`` + its pieces joined by ``,`` + ``tail``.
    Piece ``j`` of row ``i`` is ``prefix[j] + body + suffix[j]``, the body being byte string ``bases[j] +
    rows[j, i]`` of ``data``/``offsets``; where ``rows[j, i]`` is -1 the piece is ``absent[j]``, or left out
    (with its comma) when ``skip_absent[j]``. ``prefix``/``suffix``/``absent`` of piece ``j`` are byte strings
    ``3j``, ``3j + 1``, ``3j + 2`` of ``consts``/``const_offsets``. Each key is laid out in ``scratch`` (large
    enough for the longest) and hashed from there."""
    digits = np.empty(24, dtype=np.uint8)
    for i in range(len(out)):
        scratch[0] = 91  # "["
        n = 1
        if use_time:
            t = times[i]
            u = -t if t < 0 else t
            nd = 0
            while True:
                digits[nd] = 48 + (u % 10)
                u //= 10
                nd += 1
                if u == 0:
                    break
            if t < 0:
                scratch[n] = 45  # "-"
                n += 1
            for q in range(nd - 1, -1, -1):
                scratch[n] = digits[q]
                n += 1
        for q in range(len(head)):
            scratch[n] = head[q]
            n += 1
        first = True
        for j in range(rows.shape[0]):
            r = rows[j, i]
            if r < 0 and skip_absent[j]:
                continue
            if not first:
                scratch[n] = 44  # ","
                n += 1
            first = False
            if r < 0:
                for q in range(const_offsets[3 * j + 2], const_offsets[3 * j + 3]):
                    scratch[n] = consts[q]
                    n += 1
                continue
            for q in range(const_offsets[3 * j], const_offsets[3 * j + 1]):
                scratch[n] = consts[q]
                n += 1
            p = bases[j] + r
            for q in range(offsets[p], offsets[p + 1]):
                scratch[n] = data[q]
                n += 1
            for q in range(const_offsets[3 * j + 1], const_offsets[3 * j + 2]):
                scratch[n] = consts[q]
                n += 1
        for q in range(len(tail)):
            scratch[n] = tail[q]
            n += 1
        out[i] = _hash_scratch(scratch, words, n)


def _bytes_array(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=np.uint8).copy() if b else np.zeros(0, np.uint8)


def murmur3_32_keys(
    times: Optional[np.ndarray],
    head: bytes,
    tail: bytes,
    bodies: Sequence[pa.Array],
    rows: np.ndarray,
    prefixes: Sequence[bytes],
    suffixes: Sequence[bytes],
    absents: Sequence[Optional[bytes]],
) -> np.ndarray:
    """murmur3_32, for every row ``i``, of ``"[" + str(times[i]) + head + ",".join(pieces) + tail`` (``times``
    None: no time) without building those strings. Piece ``j`` is ``prefixes[j] + bodies[j][rows[j, i]] +
    suffixes[j]``, or ``absents[j]`` where ``rows[j, i]`` is -1 (an absent of None leaves the piece out)."""
    n = rows.shape[1]
    out = np.zeros(n, dtype=np.uint32)
    if n == 0:
        return out.view(np.int32)
    strings = [pc.fill_null(b.cast(pa.string()), "") for b in bodies]
    joined = pa.concat_arrays(strings) if strings else pa.array([""], pa.string())
    if not len(joined):
        joined = pa.array([""], pa.string())
    _, offsets_buf, data_buf = joined.buffers()[:3]
    offsets = np.frombuffer(offsets_buf, dtype=np.int32, count=len(joined) + 1, offset=joined.offset * 4)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None and data_buf.size else np.zeros(1, np.uint8)
    bases = np.cumsum([0] + [len(b) for b in strings[:-1]]).astype(np.int64) if strings else np.zeros(0, np.int64)
    consts = [c for j in range(len(strings)) for c in (prefixes[j], suffixes[j], absents[j] or b"")]
    const_offsets = np.cumsum([0] + [len(c) for c in consts]).astype(np.int64)
    longest = sum(
        int(pc.max(pc.binary_length(b)).as_py() or 0) + len(prefixes[j]) + len(suffixes[j]) + len(absents[j] or b"")
        for j, b in enumerate(strings)
    )
    scratch = np.zeros((longest + len(strings) + len(head) + len(tail) + 32 + 3) // 4 * 4, dtype=np.uint8)
    words = scratch.view("<u4")  # the whole 4-byte blocks, read as Guava reads them (little-endian)
    use_time = times is not None
    _murmur3_32_keys(
        np.ascontiguousarray(times, dtype=np.int64) if use_time else np.zeros(1, dtype=np.int64),
        use_time,
        _bytes_array(head),
        _bytes_array(tail),
        _bytes_array(b"".join(consts)),
        const_offsets,
        np.array([a is None for a in absents], dtype=np.bool_),
        data,
        offsets,
        bases,
        np.ascontiguousarray(rows, dtype=np.int32),
        scratch,
        words,
        out,
    )
    return out.view(np.int32)


def warm_up_in_background() -> threading.Thread:
    """Load the compiled kernels in a thread, so that numba's fixed start-up cost overlaps the reading of the
    first input block instead of delaying the first hash (a later caller waits for the same load)."""

    def load() -> None:
        murmur3_32_keys(np.zeros(1, np.int64), b"", b"", [pa.array(["x"], pa.string())], np.zeros((1, 1), np.int32), [b""], [b""], [None])

    thread = threading.Thread(target=load, name="druidflow-murmur-warm-up", daemon=True)
    thread.start()
    return thread
