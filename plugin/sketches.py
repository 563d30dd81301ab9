"""Apache DataSketches behind the sketch aggregators: build per rollup group, union on re-rollup, estimate.

A sketch column holds one serialized sketch per row, in the byte forms Druid stores: a compact theta sketch
(``thetaSketch``), a compact HLL sketch (``HLLSketchBuild``/``HLLSketchMerge``, and ``hyperUnique``/``cardinality``,
whose Druid-native HyperLogLogCollector format is not reproduced: a DataSketches HLL with 2^11 buckets stands for
it) and a compact quantiles DoublesSketch (``quantilesDoublesSketch``).

Building works on whole columns: the rows are taken in group order (the rollup's sort), cut into per-group runs,
and each run is fed to the library with ``deque(map(sketch.update, run))`` (theta and HLL have no batch update; the
loop runs inside C, calling only the library) or one ``update(ndarray)`` call (quantiles).
A group whose column already holds exactly one sketch keeps its bytes as they are, so re-rolling
rolled-up data (compaction, merge, the final merge of persists) changes nothing that need not change.

The library is the optional ``sketches`` extra; :func:`library` names it when it is missing.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from druidflow.exceptions import SpecError

Family = Literal["theta", "hll", "quantiles"]

#: The serialized preamble's family byte (offset 2) of each sketch family, as the DataSketches formats define it.
FAMILY_IDS: dict[int, Family] = {2: "theta", 3: "theta", 7: "hll", 8: "quantiles"}

#: ``hyperUnique``/``cardinality``: Druid's HyperLogLogCollector has 2^11 registers; the stand-in HLL has as many.
HYPER_UNIQUE_LG_K = 11


def library(aggregator_type: str = "sketch") -> ModuleType:
    """The ``datasketches`` module, or a SpecError naming the aggregator and the extra to install."""
    try:
        import datasketches
    except ImportError:
        raise SpecError(
            "type",
            aggregator_type,
            f"the {aggregator_type} aggregator needs the Apache DataSketches library: pip install 'druidflow[sketches]'",
        ) from None
    return datasketches


@dataclass(frozen=True)
class SketchSpec:
    """How a sketch column is built and merged. ``lg_k``: theta's log2(size) or HLL's lgK; ``k``: quantiles' k."""

    family: Family
    lg_k: int = 12
    hll_type: str = "HLL_4"
    k: int = 128


def is_sketch_column(arr: pa.Array | pa.ChunkedArray) -> bool:
    return pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type)


def aggregate(spec: SketchSpec, col: pa.Array, order: np.ndarray, starts: np.ndarray) -> pa.Array:
    """One serialized sketch per group. Rows ``order[starts[i]:starts[i+1]]`` are group ``i``; ``col`` holds serialized
    sketches (binary: they are unioned), raw values (list<string> for distinct counts, numbers for quantiles: a sketch
    is built of them). A group without any value gets an empty sketch, as Druid stores one."""
    ds = library()
    if is_sketch_column(col):
        return _merge(ds, spec, col, order, starts)
    if spec.family == "quantiles":
        return _build_quantiles(ds, spec, col, order, starts)
    return _build_distinct(ds, spec, col, order, starts)


def _group_ids(n: int, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
    ids = np.empty(n, dtype=np.int64)
    ids[order] = np.repeat(np.arange(len(starts), dtype=np.int64), np.diff(np.append(starts, len(order))))
    return ids


def _build_distinct(ds: ModuleType, spec: SketchSpec, col: pa.Array, order: np.ndarray, starts: np.ndarray) -> pa.Array:
    # Rows in group order, then their values: group i's values are one contiguous run of the flattened lists.
    grouped = col.take(pa.array(order))
    offsets = pc.fill_null(grouped.offsets, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    bounds = offsets[np.append(starts, len(order))] - offsets[0]
    flat = pc.list_flatten(grouped)
    if flat.null_count:
        valid = pc.is_valid(flat).to_numpy(zero_copy_only=False)
        bounds = np.concatenate([[0], np.cumsum(valid)])[bounds]
        flat = flat.filter(pa.array(valid))
    vals = flat.to_pylist()
    edges = bounds.tolist()
    out: list[bytes] = []
    for i in range(len(starts)):
        sketch = _new_distinct(ds, spec)
        deque(map(sketch.update, vals[edges[i] : edges[i + 1]]), maxlen=0)
        out.append(_serialize(sketch, spec))
    return pa.array(out, pa.binary())


def _new_distinct(ds: ModuleType, spec: SketchSpec) -> Any:
    if spec.family == "theta":
        return ds.update_theta_sketch(spec.lg_k)
    return ds.hll_sketch(spec.lg_k, getattr(ds.tgt_hll_type, spec.hll_type))


def _serialize(sketch: Any, spec: SketchSpec) -> bytes:
    if spec.family == "theta":
        return bytes(sketch.compact().serialize())
    if spec.family == "hll":
        return bytes(sketch.serialize_compact())
    return bytes(sketch.serialize())


def _build_quantiles(ds: ModuleType, spec: SketchSpec, col: pa.Array, order: np.ndarray, starts: np.ndarray) -> pa.Array:
    values = pc.fill_null(col.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)[order]
    bounds = np.append(starts, len(order)).tolist()
    out: list[bytes] = []
    for i in range(len(starts)):
        sketch = ds.quantiles_doubles_sketch(spec.k)
        run = values[bounds[i] : bounds[i + 1]]
        run = run[~np.isnan(run)]
        if len(run):
            sketch.update(np.ascontiguousarray(run))
        out.append(bytes(sketch.serialize()))
    return pa.array(out, pa.binary())


def _merge(ds: ModuleType, spec: SketchSpec, col: pa.Array, order: np.ndarray, starts: np.ndarray) -> pa.Array:
    valid = pc.is_valid(col).to_numpy(zero_copy_only=False)[order]
    present = np.add.reduceat(valid.astype(np.int64), starts) if len(starts) else np.zeros(0, np.int64)
    if (present == 1).all():
        # Every group holds one sketch already: its bytes are the result (re-rollup keeps the stored form).
        return col.take(pa.array(order[np.flatnonzero(valid)])).cast(pa.binary())
    blobs = col.take(pa.array(order)).to_pylist()
    bounds = np.append(starts, len(order)).tolist()
    out: list[bytes | None] = []
    for i in range(len(starts)):
        run = [b for b in blobs[bounds[i] : bounds[i + 1]] if b is not None]
        out.append(run[0] if len(run) == 1 else union(ds, spec, run))
    return pa.array(out, pa.binary())


def union(ds: ModuleType, spec: SketchSpec, blobs: list[bytes]) -> bytes:
    """The union of serialized sketches of ``spec``'s family, serialized as that family is stored."""
    if spec.family == "theta":
        u = ds.theta_union(spec.lg_k)
        for b in blobs:
            u.update(ds.compact_theta_sketch.deserialize(b))
        return bytes(u.get_result().serialize())
    if spec.family == "hll":
        hu = ds.hll_union(spec.lg_k)
        for b in blobs:
            hu.update(ds.hll_sketch.deserialize(b))
        return bytes(hu.get_result(getattr(ds.tgt_hll_type, spec.hll_type)).serialize_compact())
    q = ds.quantiles_doubles_sketch(spec.k)
    for b in blobs:
        q.merge(ds.quantiles_doubles_sketch.deserialize(b))
    return bytes(q.serialize())


def build_one(spec: SketchSpec, values: list[Any] | None) -> bytes:
    """One sketch of a list of raw values (nulls skipped): the query-time build of a raw column."""
    ds = library()
    present = [v for v in values or () if v is not None]
    if spec.family == "quantiles":
        sketch = ds.quantiles_doubles_sketch(spec.k)
        if present:
            sketch.update(np.asarray(present, dtype=np.float64))
        return bytes(sketch.serialize())
    sketch = _new_distinct(ds, spec)
    deque(map(sketch.update, present), maxlen=0)
    return _serialize(sketch, spec)


# ---------------------------------------------------------------------- input sketches and reading back


def decode_input_sketches(col: pa.Array, family: Family, aggregator_type: str) -> tuple[pa.Array, np.ndarray]:
    """Sketches in the input (Druid's ``isInputThetaSketch``, ``HLLSketchMerge``): binary as is, text as base64. Returns
    the binary column and the rows that held no valid sketch of ``family`` (those become null)."""
    ds = library(aggregator_type)
    blobs = col.to_pylist() if is_sketch_column(col) else [_b64(v) for v in col.cast(pa.string()).to_pylist()]
    bad = np.zeros(len(blobs), dtype=bool)
    for i, b in enumerate(blobs):
        if b is None:
            continue
        if family_of(b) != family or not _loads(ds, family, b):
            bad[i] = True
            blobs[i] = None
    return pa.array(blobs, pa.binary()), bad


def _b64(v: str | None) -> bytes | None:
    if v is None or v == "":
        return None
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _loads(ds: ModuleType, family: Family, b: bytes) -> bool:
    try:
        {"theta": ds.compact_theta_sketch, "hll": ds.hll_sketch, "quantiles": ds.quantiles_doubles_sketch}[family].deserialize(b)
    except (ValueError, IndexError, RuntimeError):  # what the library raises on a corrupt image
        return False
    return True


def family_of(blob: bytes) -> Family | None:
    """The family of a serialized sketch, read off its preamble (None when it is no sketch this module knows)."""
    return FAMILY_IDS.get(blob[2]) if len(blob) >= 8 else None


def estimate(blob: bytes | None) -> float | None:
    """The distinct-count estimate of a theta or HLL sketch, or a quantiles sketch's item count (Druid's finalized
    value of each); None for null."""
    if blob is None:
        return None
    ds = library()
    family = family_of(blob)
    if family == "theta":
        return float(ds.compact_theta_sketch.deserialize(blob).get_estimate())
    if family == "hll":
        return float(ds.hll_sketch.deserialize(blob).get_estimate())
    if family == "quantiles":
        return float(ds.quantiles_doubles_sketch.deserialize(blob).n)
    raise ValueError("not a serialized theta, HLL or quantiles sketch")


def union_any(blobs: list[bytes | None]) -> bytes | None:
    """The union of serialized sketches of one family (the family read off the first one); None when all are null."""
    present = [b for b in blobs if b is not None]
    if not present:
        return None
    family = family_of(present[0])
    if family is None or any(family_of(b) != family for b in present):
        raise ValueError("can only combine serialized sketches of one family (theta, HLL or quantiles)")
    ds = library()
    if family == "theta":
        spec = SketchSpec("theta", lg_k=_theta_lg_k(ds, present))
    elif family == "hll":
        spec = SketchSpec("hll", lg_k=max(ds.hll_sketch.deserialize(b).lg_config_k for b in present), hll_type="HLL_8")
    else:
        spec = SketchSpec("quantiles", k=max(ds.quantiles_doubles_sketch.deserialize(b).k for b in present))
    return present[0] if len(present) == 1 else union(ds, spec, present)


def _theta_lg_k(ds: ModuleType, blobs: list[bytes]) -> int:
    """A union's size for query-time merging: Druid's default 16384, larger when an input retains more entries."""
    retained = max(ds.compact_theta_sketch.deserialize(b).num_retained for b in blobs)
    return max(14, min(26, int(np.ceil(np.log2(max(retained, 1))))))


def quantile(blob: bytes | None, fraction: float) -> float | None:
    """The value at ``fraction`` (0..1) of a serialized quantiles sketch; None for null or an empty sketch."""
    if blob is None:
        return None
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction {fraction} is not between 0 and 1")
    sketch = library().quantiles_doubles_sketch.deserialize(blob)
    return None if sketch.is_empty() else float(sketch.get_quantile(fraction))
