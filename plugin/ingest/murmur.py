"""Guava's ``murmur3_32`` (MurmurHash3 x86_32, seed 0) of every string of an Arrow array, compiled with numba.

The keys are hashed where Arrow keeps them (the array's offsets and data buffers), one compiled loop over all
of them: about 0.1 s per million 120-byte keys, where a numpy version that steps every key through its blocks
together took 1.1 s and one ``mmh3`` call per key 0.3 s. The compiled code is cached next to this module.
Arithmetic is done in 64 bits and masked, since numba widens 32-bit integer products.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

@njit(cache=True, nogil=True)
def _murmur3_32(data: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    mask = np.uint64(0xFFFFFFFF)
    c1 = np.uint64(0xCC9E2D51)
    c2 = np.uint64(0x1B873593)
    for i in range(len(offsets) - 1):
        start = np.int64(offsets[i])
        length = np.int64(offsets[i + 1]) - start
        h = np.uint64(0)
        p = start
        for _ in range(length >> 2):
            k = (
                np.uint64(data[p])
                | (np.uint64(data[p + 1]) << np.uint64(8))
                | (np.uint64(data[p + 2]) << np.uint64(16))
                | (np.uint64(data[p + 3]) << np.uint64(24))
            )
            k = (k * c1) & mask
            k = ((k << np.uint64(15)) | (k >> np.uint64(17))) & mask
            k = (k * c2) & mask
            h ^= k
            h = ((h << np.uint64(13)) | (h >> np.uint64(19))) & mask
            h = (h * np.uint64(5) + np.uint64(0xE6546B64)) & mask
            p += 4
        tail = length & 3
        k = np.uint64(0)
        if tail >= 3:
            k ^= np.uint64(data[p + 2]) << np.uint64(16)
        if tail >= 2:
            k ^= np.uint64(data[p + 1]) << np.uint64(8)
        if tail >= 1:
            k ^= np.uint64(data[p])
            k = (k * c1) & mask
            k = ((k << np.uint64(15)) | (k >> np.uint64(17))) & mask
            k = (k * c2) & mask
            h ^= k
        h ^= np.uint64(length) & mask
        h ^= h >> np.uint64(16)
        h = (h * np.uint64(0x85EBCA6B)) & mask
        h ^= h >> np.uint64(13)
        h = (h * np.uint64(0xC2B2AE35)) & mask
        h ^= h >> np.uint64(16)
        out[i] = np.uint32(h)


def murmur3_32(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The signed 32-bit murmur3 of each string's UTF-8 bytes (a null hashes as the empty string)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        hashes = murmur3_32(pc.fill_null(values.dictionary.cast(pa.string()), ""))
        empty = murmur3_32(pa.array([""]))[0]
        idx = values.indices.to_numpy(zero_copy_only=False) if not values.null_count else np.asarray(pc.fill_null(values.indices, -1))
        return np.where(idx >= 0, hashes[np.maximum(idx, 0)] if len(hashes) else empty, empty).astype(np.int32)
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

