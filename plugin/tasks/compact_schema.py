"""The output schema of a ``compact`` task: what its spec gives, the rest inferred from the input segments as Druid
does (dimensions newest segment first, metrics in their combining form, rollup, the finest query granularity, and
the output time chunks)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

from druidflow.aggregators import merge_aggregators
from druidflow.exceptions import SpecError
from druidflow.granularity import AllGranularity, Granularity
from druidflow.ingest.rollup import companion_time_column
from druidflow.intervals import ETERNITY, Interval
from druidflow.segments.descriptor import DataSegment
from druidflow.specs.dimensions import DimensionSchema, DimensionsSpec, DimensionType
from druidflow.specs.tasks import CompactTask
from druidflow.tasks.runtime import Runtime

log = logging.getLogger("druidflow.tasks.compact")

# Standard granularities, finest first: the one a kept segment interval is a single bucket of names it.
_STANDARD_GRANULARITIES = tuple(
    Granularity.parse(name)
    for name in ("SECOND", "MINUTE", "FIVE_MINUTE", "TEN_MINUTE", "FIFTEEN_MINUTE", "THIRTY_MINUTE", "HOUR",
                 "SIX_HOUR", "EIGHT_HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR")
)  # fmt: skip


class OutputSchema(NamedTuple):
    """The dataSchema parts a compaction writes with (given or inferred)."""

    dimensions_spec: DimensionsSpec
    metrics_spec: list[Any]
    rollup: bool
    query_granularity: Granularity
    segment_granularity: Optional[Granularity]
    chunks: list[Interval]
    """The output time chunks: target-granularity buckets, or the inputs' own (unioned) intervals."""


def infer_schema(task: CompactTask, segments: Sequence[DataSegment], rt: Runtime) -> tuple[OutputSchema, list[str]]:
    """The output schema: what the task gives, the rest inferred from the segments as Druid does.

    Returns the schema and the names of the fields that were inferred.
    """
    inferred: list[str] = []
    newest_first = sorted(segments, key=lambda s: (s.interval.start, s.interval.end, s.version, s.partition_num), reverse=True)
    gran = task.granularity_spec

    given_dims = task.dimensions_spec
    if given_dims is not None and given_dims.dimensions:
        dims_spec = given_dims
    else:
        excluded = set(given_dims.dimension_exclusions) if given_dims is not None else set()
        dims_spec = infer_dimensions(newest_first, excluded, rt)
        inferred.append("dimensionsSpec")

    if task.metrics_spec is not None:
        metrics = list(task.metrics_spec)
        if any(m.type == "count" for m in metrics) and any(s.rollup for s in segments):
            log.warning(
                "compact %s: metricsSpec has a 'count', which counts the rolled-up rows of the input segments, not the "
                "original events; use {\"type\": \"longSum\", \"name\": ..., \"fieldName\": <count column>} to add counts up",
                task.task_id,
            )
    else:
        metrics = infer_metrics(newest_first)
        inferred.append("metricsSpec")

    rollup = gran.rollup if gran is not None and gran.rollup is not None else None
    if rollup is None:
        rollup = all(s.rollup is True for s in segments)
        inferred.append("rollup")

    query = gran.query_granularity if gran is not None and gran.query_granularity is not None else None
    if query is None:
        query = Granularity.finest(query_granularity_of(s) for s in segments)
        inferred.append("queryGranularity")

    target = target_granularity(task)
    if target is not None:
        chunks = target.expand([s.interval for s in segments])  # only the buckets some input touches
        segment_granularity: Optional[Granularity] = target
    else:
        chunks = union_overlapping([s.interval for s in segments])
        segment_granularity = common_granularity(chunks)
        inferred.append("segmentGranularity")
    return OutputSchema(dims_spec, metrics, rollup, query, segment_granularity, chunks), inferred


def infer_dimensions(newest_first: Sequence[DataSegment], excluded: set[str], rt: Runtime) -> DimensionsSpec:
    """Newest segment first: each dimension takes its position and type from the newest segment that has it."""
    order: list[str] = []
    types: dict[str, DimensionType] = {}
    for segment in newest_first:
        new = [d for d in segment.dimension_names if d not in types and d not in excluded]
        if not new:
            continue
        found = column_types(segment, rt)
        for name in new:
            types[name] = found.get(name, "string")
            order.append(name)
    return DimensionsSpec(dimensions=[name if types[name] == "string" else DimensionSchema(type=types[name], name=name) for name in order])


def column_types(segment: DataSegment, rt: Runtime) -> dict[str, DimensionType]:
    """Druid dimension types of a segment file's columns (read from its Parquet footer only)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with rt.storage.open_local(segment.load_spec) as path:
        schema = pq.read_schema(path)
    out: dict[str, DimensionType] = {}
    for field in schema:
        t = field.type
        if pa.types.is_integer(t):
            out[field.name] = "long"
        elif pa.types.is_float32(t):
            out[field.name] = "float"
        elif pa.types.is_floating(t):
            out[field.name] = "double"
        else:
            out[field.name] = "string"
    return out


def infer_metrics(newest_first: Sequence[DataSegment]) -> list[Any]:
    """The combining forms of the segments' aggregators, merged by name (a mismatch is a SpecError)."""
    for s in newest_first:
        if s.metric_names and not s.aggregators:
            raise SpecError(
                "metricsSpec",
                None,
                f"segment {s.id} has metric columns {s.metric_names} but records no aggregators to re-aggregate them "
                "with; give metricsSpec",
            )
    return merge_aggregators([[stored_form(a) for a in s.aggregators] for s in newest_first])


def stored_form(aggregator: dict[str, Any]) -> dict[str, Any]:
    """First/last metrics are stored with their time in ``__time_<name>``: their combining form must read it. A
    filtered metric's column holds its inner aggregator's values, re-combined without the filter."""
    kind = str(aggregator.get("type", ""))
    if kind == "filtered":
        inner = dict(aggregator.get("aggregator") or {})
        return stored_form({**inner, "name": aggregator.get("name", inner.get("name"))})
    if kind.endswith(("First", "Last")):
        name = aggregator.get("name")
        return {**aggregator, "fieldName": name, "timeColumn": companion_time_column(str(name))}
    return aggregator


def query_granularity_of(segment: DataSegment) -> Granularity:
    try:
        return Granularity.parse(segment.query_granularity) if segment.query_granularity is not None else Granularity.parse("NONE")
    except SpecError:
        return Granularity.parse("NONE")


def target_granularity(task: CompactTask) -> Optional[Granularity]:
    gran = task.granularity_spec
    return gran.segment_granularity if gran is not None else None


def is_aligned(interval: Interval, granularity: Granularity) -> bool:
    if isinstance(granularity, AllGranularity):
        return True
    return granularity.bucket_start(interval.start) == interval.start and granularity.bucket_start(interval.end) == interval.end


def align(interval: Interval, granularity: Granularity) -> Interval:
    """The smallest run of whole ``granularity`` buckets covering ``interval``."""
    if isinstance(granularity, AllGranularity):
        return ETERNITY
    start = granularity.bucket_start(interval.start)
    end_bucket = granularity.bucket_start(interval.end)
    end = end_bucket if end_bucket == interval.end else granularity.next_bucket_start(end_bucket)
    return Interval(start, end)


def union_overlapping(intervals: Sequence[Interval]) -> list[Interval]:
    """Overlapping intervals merged (abutting ones stay apart): the chunks of a compaction that keeps granularity."""
    out: list[Interval] = []
    for iv in sorted(intervals):
        if out and iv.start < out[-1].end:
            if iv.end > out[-1].end:
                out[-1] = Interval(out[-1].start, iv.end)
        else:
            out.append(iv)
    return out


def common_granularity(chunks: Sequence[Interval]) -> Optional[Granularity]:
    """The standard granularity every chunk is exactly one bucket of, or None."""
    for g in _STANDARD_GRANULARITIES:
        if all(g.bucket(c.start) == c for c in chunks):
            return g
    return None
