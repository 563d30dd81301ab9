"""Turn raw input batches into rows ready for rollup, counting rows the way Druid does.

Per batch, vectorised, in Druid's processing order: timestamp (``timestampSpec``) → transforms and filter
(``transformSpec``) → time-chunk routing (rows outside the task's chunks are *thrown away*) → dimensions and
metric inputs (``dimensionsSpec``, ``metricsSpec``). A row whose timestamp cannot be parsed is *unparseable*
and dropped; a row where some other field fails to convert is kept with that field null and counted as
*processed with error*; every other kept row is *processed*.

The output table has ``__time`` (truncated to the query granularity), ``__chunk`` (the start of the row's
time chunk), one column per dimension, one column per aggregator holding that row's value (``count``: 1),
and for first/last aggregators a companion column with the row's raw time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from druidflow.ingest.casts import parse_timestamps, to_number
from druidflow.ingest.rollup import MetricColumn, companion_time_column, metric_columns
from druidflow.ingest.stats import ParseExceptionHandler, RowStats
from druidflow.inputs.json_numbers import companion_name, integral_text, is_companion, list_text

TIME = "__time"
CHUNK = "__chunk"
BUCKET = "__bucket"
# Druid's murmur3_32 of each row's hash-partitioning key (hashed partitioning only; see druidflow.ingest.hashing),
# computed from the raw columns while they are still at hand and consumed by ``assign``.
HASH = "__hash"
# Joins the values of a multi-value dimension while rows are rolled up (Druid compares the whole array);
# the segment writer splits them back into a list column.
MULTI_VALUE_SEPARATOR = "\x1f"
# Stands for a null element inside a joined multi-value row (``["k", null]``): Druid keeps such elements.
MULTI_VALUE_NULL = "\x1e"
# Every string dimension leaves the parser dictionary-encoded, whatever the input delivered (plain text, a list,
# or nothing at all in a batch where the field is missing), so that batches always concatenate.
STRING_DIMENSION = pa.dictionary(pa.int32(), pa.string())
_SAMPLE_ROWS = 10
_DIM_TYPES = {"long": pa.int64(), "float": pa.float32(), "double": pa.float64()}


@dataclass
class ParsedBatch:
    table: pa.Table
    stats: RowStats


@dataclass
class RowParser:
    """Parses batches for one ingestion (a dataSchema plus the input format's list delimiter).

    ``chunks`` are the time chunks rows may go to, as sorted ``Interval`` objects, or None to accept any
    chunk (the determine-intervals pass). Rows in no chunk are thrown away.
    """

    data_schema: Any
    list_delimiter: Optional[str] = None
    chunks: Optional[Sequence[Any]] = None
    handler: ParseExceptionHandler = field(default_factory=ParseExceptionHandler)
    multi_value_dimensions: set[str] = field(default_factory=set)
    dimensions: Optional[list[Any]] = None  # resolved DimensionSchema list (discovered on the first batch)
    # Splits work between build units that read the same input: maps each parsed row to this unit's output
    # bucket (>= 0) or -1 for a row another unit builds. Such rows are not counted here at all; rows that no
    # unit owns (thrown away, unparseable) are counted only when ``count_unowned`` (by one unit of the task).
    assign: Optional[Callable[[pa.Table], np.ndarray]] = None
    count_unowned: bool = True
    # Set for hashed partitioning: the partitionDimensions of Druid's hash key (empty: every dimension and time).
    hash_partition_dimensions: Optional[Sequence[str]] = None

    def __post_init__(self) -> None:
        schema = self.data_schema
        self.timestamp_spec = schema.timestamp_spec
        gran = schema.granularity_spec
        self.segment_granularity = gran.segment_granularity
        self.query_granularity = gran.query_granularity
        self.aggregators = list(schema.metrics_spec)
        self.metrics: list[MetricColumn] = metric_columns(self.aggregators)
        self.transform_spec = schema.transform_spec
        if self.chunks is not None:
            self._chunk_starts = np.array([c.start for c in self.chunks], dtype=np.int64)
            self._chunk_ends = np.array([c.end for c in self.chunks], dtype=np.int64)

    # ------------------------------------------------------------------ public

    def resolve_dimensions(self, input_schema: pa.Schema, non_flat: frozenset[str] = frozenset()) -> list[Any]:
        if self.dimensions is None:
            if non_flat:
                input_schema = pa.schema([f for f in input_schema if f.name not in non_flat])
            self.dimensions = self.data_schema.dimensions_for(input_schema)
        return self.dimensions

    def parse(
        self,
        batch: pa.RecordBatch | pa.Table,
        unparseable_input: Sequence[Any] = (),
        bytes_read: int = 0,
        times: Optional[pa.Array] = None,
        non_flat_fields: frozenset[str] = frozenset(),
        integral_numbers: Optional[Mapping[str, pa.Array]] = None,
    ) -> ParsedBatch:
        """Parse one input batch. ``unparseable_input`` are rows the reader already could not parse; ``times``, when
        given, are the rows' times (epoch ms), used instead of the ``timestampSpec``; ``non_flat_fields`` are left
        out of schemaless discovery; ``integral_numbers`` says which rows of double columns were written as
        integers (JSON ``1``, a long in Druid: its text is ``"1"`` in a string dimension and a hash key)."""
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        stats = RowStats(processed_bytes=bytes_read)
        if unparseable_input:
            stats = stats.plus(RowStats(unparseable=len(unparseable_input)))
            self.handler.record(
                len(unparseable_input),
                [(getattr(f, "raw", None), getattr(f, "message", str(f))) for f in unparseable_input[:_SAMPLE_ROWS]],
                "unparseable",
            )
        dims = self.resolve_dimensions(table.schema, non_flat_fields)
        if table.num_rows == 0:
            return ParsedBatch(self.empty_table(dims), stats)

        raw_time = self._timestamps(table) if times is None else _combine(times)
        bad_time = pc.is_null(raw_time)
        n_bad = pc.sum(bad_time).as_py() or 0
        keep = None
        if n_bad:
            self._record_rows(table, bad_time, n_bad, "unparseable", "Unparseable timestamp found! Check timestampSpec")
            keep = pc.invert(bad_time)
            table, raw_time = table.filter(keep), raw_time.filter(keep)
            stats = stats.plus(RowStats(unparseable=n_bad))
        table = _set(table, TIME, raw_time)
        for name, mask in (integral_numbers or {}).items():
            if name in table.column_names:  # carried as hidden columns, so that they follow every row filter
                table = table.append_column(companion_name(name), mask.filter(keep) if n_bad else mask)

        table, thrown = self._transform_and_filter(table)
        stats = stats.plus(thrown)
        raw_time = table.column(TIME)

        chunk, inside = self._route(raw_time)
        if inside is not None:
            outside = table.num_rows - (pc.sum(inside).as_py() or 0)
            if outside:
                table, chunk, raw_time = table.filter(inside), chunk.filter(inside), raw_time.filter(inside)
                stats = stats.plus(RowStats(thrown_away=outside, thrown_away_by_reason={"outsideIntervals": outside}))

        columns: dict[str, Any] = {
            TIME: _truncate(self.query_granularity, raw_time),
            CHUNK: chunk,
        }
        if self.hash_partition_dimensions is not None:
            from druidflow.ingest.hashing import row_hashes  # brings numba along: only hashed runs pay for it

            names = [d.name for d in dims]
            keyed = _as_java_text(table, names)  # integer-written JSON numbers as Druid's text ("1", not "1.0")
            hashes = row_hashes(keyed, columns[TIME], names, self.hash_partition_dimensions, self.list_delimiter)
            columns[HASH] = pa.array(hashes, pa.int32())
        errors = np.zeros(table.num_rows, dtype=bool)
        messages: list[str] = []
        for dim in dims:
            col, err = self._dimension(table, dim)
            columns[dim.name] = col
            if err is not None and err.any():
                errors |= err
                messages.append(f"could not convert dimension {dim.name!r} to {dim.type}")
        for agg, metric in zip(self.aggregators, self.metrics):
            for name, values, err in self._metric(table, agg, metric, raw_time):
                columns[name] = values
                if err is not None and err.any():
                    errors |= err
                    messages.append(f"could not parse metric input for {agg.name!r}")
        out = pa.table(columns)
        if self.assign is not None:
            bucket = self.assign(out)
            mine = bucket >= 0
            if not mine.all():
                keep = pa.array(mine)
                out, table, errors, bucket = out.filter(keep), table.filter(keep), errors[mine], bucket[mine]
            out = out.append_column(BUCKET, pa.array(bucket, pa.int64()))
        if HASH in out.column_names:
            out = out.drop_columns([HASH])
        if not self.count_unowned:
            stats = RowStats()
        n_err = int(errors.sum())
        if n_err:
            self._record_rows(table, pa.array(errors), n_err, "processedWithError", "; ".join(messages))
        stats = stats.plus(RowStats(processed=out.num_rows - n_err, processed_with_error=n_err))
        return ParsedBatch(out, stats)

    def output_schema_names(self) -> list[str]:
        dims = self.dimensions or []
        return [TIME, CHUNK] + [d.name for d in dims] + [c for m in self.metrics for c in m.columns]

    # ------------------------------------------------------------------ steps

    def _timestamps(self, table: pa.Table) -> pa.Array:
        spec = self.timestamp_spec
        n = table.num_rows
        if spec.column in table.column_names:
            parsed = parse_timestamps(table.column(spec.column), spec.format)
        else:
            parsed = pa.nulls(n, pa.int64())
        missing = spec.missing_value_ms
        if missing is not None:
            parsed = pc.fill_null(parsed, missing)
        return parsed

    def _transform_and_filter(self, table: pa.Table) -> tuple[pa.Table, RowStats]:
        spec = self.transform_spec
        if spec is None:
            return table, RowStats()
        original = table
        table, split = self._multi_value_view(table, getattr(spec, "required_columns", frozenset()))
        if getattr(spec, "transforms", None):
            table = spec.apply(table) if not hasattr(spec, "apply_transforms") else spec.apply_transforms(table)
            # A transform's output replaces the value as read: what was said about its numbers no longer holds.
            stale = [companion_name(c) for c in getattr(spec, "output_columns", ()) if companion_name(c) in table.column_names]
            table = table.drop_columns(stale) if stale else table
            if table.column(TIME).type != pa.int64():
                table = _set(table, TIME, parse_timestamps(table.column(TIME), "auto"))
        # Columns split only for the transforms go on as read (the dimension step splits them itself).
        written = set(getattr(spec, "output_columns", ()))
        for name in split - written:
            table = _set(table, name, original.column(name))
        if getattr(spec, "filter", None) is None:
            return table, RowStats()
        view, _ = self._multi_value_view(table, spec.filter.required_columns) if split else (table, set())
        mask = pc.fill_null(spec.filter_mask(view), False)
        dropped = table.num_rows - (pc.sum(mask).as_py() or 0)
        if not dropped:
            return table, RowStats()
        return table.filter(mask), RowStats(thrown_away=dropped, thrown_away_by_reason={"filtered": dropped})

    def _multi_value_view(self, table: pa.Table, names: Any) -> tuple[pa.Table, set[str]]:
        """``table`` with each string column in ``names`` that holds the list delimiter split into a list column,
        and the names split: Druid's CSV/TSV parser turns such a value into a multi-value list before the
        transforms run, so ``array_length(tags)`` sees an array (a batch's column is split as a whole, as the
        dimension step does)."""
        delim = self.list_delimiter
        split: set[str] = set()
        if not delim:
            return table, split
        for name in sorted(n for n in names if n in table.column_names and n != TIME):
            col = _combine(table.column(name))
            if pa.types.is_dictionary(col.type) and pa.types.is_string(col.type.value_type):
                col = col.cast(col.type.value_type)
            if pa.types.is_string(col.type) and pc.any(pc.match_substring(col, delim)).as_py():
                table = _set(table, name, pc.split_pattern(col, delim))
                split.add(name)
        return table, split

    def _route(self, raw_time: pa.Array) -> tuple[pa.Array, Optional[pa.Array]]:
        """Each row's chunk start, and (when the chunks are fixed) which rows fall inside one."""
        times = _numpy(raw_time)
        if self.segment_granularity is not None:
            starts = _numpy(_truncate(self.segment_granularity, raw_time))
            if self.chunks is None:
                return pa.array(starts, pa.int64()), None
            pos = np.searchsorted(self._chunk_starts, starts)
            pos_c = np.minimum(pos, len(self._chunk_starts) - 1)
            inside = (pos < len(self._chunk_starts)) & (self._chunk_starts[pos_c] == starts)
            return pa.array(starts, pa.int64()), pa.array(inside)
        # arbitrary granularity: the given intervals are the chunks
        assert self.chunks is not None
        pos = np.searchsorted(self._chunk_starts, times, side="right") - 1
        pos_c = np.maximum(pos, 0)
        inside = (pos >= 0) & (times < self._chunk_ends[pos_c])
        return pa.array(self._chunk_starts[pos_c], pa.int64()), pa.array(inside)

    def _dimension(self, table: pa.Table, dim: Any) -> tuple[pa.Array, Optional[np.ndarray]]:
        n = table.num_rows
        if dim.name not in table.column_names:
            return pa.nulls(n, STRING_DIMENSION if dim.type == "string" else _DIM_TYPES[dim.type]), None
        col = _combine(table.column(dim.name))
        if dim.type == "string":
            col = _number_text(table, dim.name, col)
        if dim.type != "string":
            values, err = to_number(col, _DIM_TYPES[dim.type])
            return values, err.to_numpy(zero_copy_only=False)
        out = self._string_dimension(col, dim)
        if out.type == STRING_DIMENSION:
            return out, None
        if pa.types.is_dictionary(out.type):
            return out.cast(STRING_DIMENSION), None
        return pc.dictionary_encode(out), None

    def _string_dimension(self, col: pa.Array, dim: Any) -> pa.Array:
        t = col.type
        if pa.types.is_dictionary(t):
            if pa.types.is_string(t.value_type):
                delim = self.list_delimiter
                if not (delim and pc.any(pc.match_substring(col.dictionary, delim)).as_py()):
                    return col
            col = col.cast(t.value_type)
            t = col.type
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            self.multi_value_dimensions.add(dim.name)
            return _join_multi_value(col, dim.effective_multi_value_handling)
        if pa.types.is_struct(t) or pa.types.is_map(t):
            return pa.array([None if v is None else json.dumps(v, separators=(",", ":"), default=str) for v in col.to_pylist()], pa.string())
        if not pa.types.is_string(t):
            col = _stringify(col)
        delim = self.list_delimiter
        if delim and pc.any(pc.match_substring(col, delim)).as_py():
            self.multi_value_dimensions.add(dim.name)
            return _join_multi_value(pc.split_pattern(col, delim), dim.effective_multi_value_handling)
        return col

    def _metric(
        self, table: pa.Table, agg: Any, metric: MetricColumn, raw_time: pa.Array
    ) -> Iterator[tuple[str, pa.Array, Optional[np.ndarray]]]:
        n = table.num_rows
        matched = None
        if agg.type == "filtered":
            matched = _numpy(pc.fill_null(agg.filter.mask(table), False)).astype(bool)
            agg = agg.delegate
        if agg.kind == "count":
            yield metric.name, pa.array(np.ones(n, dtype=np.int64) if matched is None else matched.astype(np.int64)), None
            return
        if agg.kind == "sketch":
            values, err = sketch_input(table, agg)
            if matched is not None:
                values = pc.if_else(pa.array(matched), values, pa.scalar(None, values.type))
                err = err & matched if err is not None else None
            yield metric.name, values, err
            return
        expression = getattr(agg, "expression", None)
        if expression:
            source = agg.compiled_expression.evaluate(table)
        elif agg.input_column in table.column_names:
            source = table.column(agg.input_column)
        else:
            source = pa.nulls(n, metric.arrow_type)
        if pa.types.is_string(metric.arrow_type):
            values, err = chop_utf8(_stringify(_combine(source)), agg.max_string_bytes), None
        else:
            values, err = to_number(_combine(source), metric.arrow_type)
            err = err.to_numpy(zero_copy_only=False)
        if matched is not None:
            # Rows the filter rejects give the aggregator nothing: no value, and (first/last) a time never chosen.
            values = pc.if_else(pa.array(matched), values, pa.scalar(None, values.type))
            if err is not None:
                err = err & matched
        yield metric.name, values, err
        if metric.companion:
            time_col = getattr(agg, "time_column", None) or TIME
            if time_col == TIME:
                comp = raw_time
            elif time_col in table.column_names:
                comp = parse_timestamps(table.column(time_col), "auto")
            else:
                comp = raw_time
            comp = pc.fill_null(comp, 0)
            if matched is not None:
                never = np.iinfo(np.int64).max if metric.kind == "first" else np.iinfo(np.int64).min
                comp = pc.if_else(pa.array(matched), comp, pa.scalar(never, comp.type))
            yield companion_time_column(metric.name), comp, None

    # ------------------------------------------------------------------ helpers

    def _record_rows(self, table: pa.Table, mask: pa.Array, count: int, kind: str, message: str) -> None:
        table = table.drop_columns([c for c in table.column_names if is_companion(c)])
        want = max(_SAMPLE_ROWS, len(self.handler.saved) and self.handler.saved.maxlen or 0)
        idx = np.flatnonzero(_numpy(pc.fill_null(mask, False)))[:want]
        rows = table.take(pa.array(idx)).to_pylist() if len(idx) else []
        samples: list[tuple[Optional[str], str]] = [(json.dumps(r, default=str), message) for r in rows]
        self.handler.record(count, samples, kind)

    def empty_table(self, dims: list[Any]) -> pa.Table:
        cols: dict[str, pa.Array] = {TIME: pa.array([], pa.int64()), CHUNK: pa.array([], pa.int64())}
        for d in dims:
            cols[d.name] = pa.array([], STRING_DIMENSION if d.type == "string" else _DIM_TYPES[d.type])
        for m in self.metrics:
            cols[m.name] = pa.array([], m.arrow_type)
            if m.companion:
                cols[m.companion] = pa.array([], pa.int64())
        return pa.table(cols)


def sketch_input(table: pa.Table, agg: Any) -> tuple[pa.Array, Optional[np.ndarray]]:
    """A sketch aggregator's per-row input for rollup: serialized sketches (binary: a segment's sketch column, or text
    decoded from base64 where the aggregator reads sketches), numbers (quantiles), or each row's values as a
    list<string> (distinct counts; ``cardinality`` lists every field's values, or with ``byRow`` one joined value)."""
    from druidflow.sketches import decode_input_sketches, is_sketch_column

    n = table.num_rows
    spec = agg.sketch
    names = agg.fields if agg.type == "cardinality" else [agg.input_column]
    present = [c for c in names if c in table.column_names]
    if agg.type != "cardinality" and present:
        col = _combine(table.column(present[0]))
        if is_sketch_column(col):
            return col.cast(pa.binary()), None
        if agg.input_is_sketch:
            blobs, bad = decode_input_sketches(col, spec.family, agg.type)
            return blobs, bad
        if spec.family == "quantiles":
            values, err = to_number(col, pa.float64())
            return values, err.to_numpy(zero_copy_only=False)
    if spec.family == "quantiles":
        return pa.nulls(n, pa.float64()), None
    lists = [_as_string_lists(_combine(table.column(c))) for c in present]
    if not lists:
        return pa.nulls(n, pa.list_(pa.string())), None
    if agg.type == "cardinality" and agg.by_row:
        # One value per row: the fields' (sorted) values joined, so equal rows hash alike (Druid's byRow).
        parts = [pc.binary_join(pc.fill_null(col, pa.scalar([], col.type)), "\x02") for col in lists]
        joined = pc.binary_join_element_wise(*parts, "\x01") if len(parts) > 1 else parts[0]
        return _single_lists(joined), None
    if len(lists) == 1:
        return lists[0], None
    flat = pa.chunked_array([pc.list_flatten(c) for c in lists]).combine_chunks()
    parents = np.concatenate([pc.list_parent_indices(c).to_numpy(zero_copy_only=False) for c in lists])
    order = np.argsort(parents, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(parents, minlength=n))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), flat.take(pa.array(order))), None


def _as_string_lists(col: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        return col.cast(pa.list_(pa.string()))
    if pa.types.is_struct(col.type) or pa.types.is_map(col.type):
        col = pa.array([None if v is None else json.dumps(v, separators=(",", ":"), default=str) for v in col.to_pylist()], pa.string())
    return _single_lists(col if pa.types.is_string(col.type) else _stringify(col))


def _single_lists(col: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(np.arange(len(col) + 1, dtype=np.int32)), col)


def _as_java_text(table: pa.Table, names: Sequence[str]) -> pa.Table:
    """``table`` with each of ``names`` that is a double column (or arrays of doubles) with integer-written values
    (a companion column) turned into ``String.valueOf`` of its values, the raw values Druid's hash key holds."""
    for name in names:
        if companion_name(name) in table.column_names and name in table.column_names:
            table = _set(table, name, _number_text(table, name, _combine(table.column(name))))
    return table


def _number_text(table: pa.Table, name: str, col: pa.Array) -> pa.Array:
    """A double column, or a column of arrays of doubles, as Druid's text of each number: ``"1"`` where the
    companion column says it was written as an integer, Java's ``Double.toString`` otherwise. Other columns as
    they are (a double column without a companion keeps the dimension step's own rendering)."""
    comp = companion_name(name)
    flags = _combine(table.column(comp)) if comp in table.column_names else None
    if pa.types.is_float64(col.type) and flags is not None:
        return integral_text(col, flags)
    if (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)) and pa.types.is_float64(col.type.value_type):
        return list_text(col, flags)
    return col


def _set(table: pa.Table, name: str, values: Any) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.schema.get_field_index(name), name, values)
    return table.append_column(name, values)


def _combine(col: Any) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _numpy(arr: Any) -> np.ndarray:
    arr = _combine(arr)
    return arr.to_numpy(zero_copy_only=False)


def _truncate(granularity: Any, times: Any) -> pa.Array:
    if granularity is None:
        return _combine(times)
    out = granularity.truncate(_combine(times))
    if isinstance(out, np.ndarray):
        return pa.array(out, pa.int64())
    return _combine(out)


def chop_utf8(col: pa.Array, max_bytes: int) -> pa.Array:
    """Strings longer than ``max_bytes`` UTF-8 bytes cut to at most that many, never inside a character (Druid's
    ``maxStringBytes``). Only the rows over the limit are touched."""
    too_long = pc.fill_null(pc.greater(pc.binary_length(col), max_bytes), False)
    if not pc.any(too_long).as_py():
        return col
    rows = np.flatnonzero(_numpy(too_long))
    chopped = pa.array([v.encode()[:max_bytes].decode("utf-8", "ignore") for v in col.take(pa.array(rows)).to_pylist()], pa.string())
    positions = np.zeros(len(col), dtype=np.int64)
    positions[rows] = np.arange(len(rows))
    return pc.if_else(too_long, chopped.take(pa.array(positions)), col)


def _stringify(col: pa.Array) -> pa.Array:
    if pa.types.is_boolean(col.type):
        return pc.if_else(col, "true", "false")
    if pa.types.is_floating(col.type):
        # Druid renders whole doubles with ".0" (Java's Double.toString); Arrow would render "1".
        s = col.cast(pa.string())
        whole = pc.and_(pc.is_finite(col), pc.equal(col, pc.floor(col)))
        return pc.if_else(pc.fill_null(whole, False), pc.binary_join_element_wise(s, ".0", ""), s)
    return col.cast(pa.string())


def _join_multi_value(col: pa.Array, handling: str) -> pa.Array:
    """list<string> → one string per row (values joined), sorted (and de-duplicated) as ``handling`` says.

    As in Druid, a null element stays in the row (as :data:`MULTI_VALUE_NULL`, sorted first), and a row with no
    elements, or only one null element, is null.
    """
    col = _combine(col)
    if not pa.types.is_string(col.type.value_type):
        col = col.cast(pa.list_(pa.string()))
    if handling in ("sorted_array", "sorted_set"):
        parents = pc.list_parent_indices(col)
        values = pc.list_flatten(col)
        order = pc.sort_indices(
            pa.table({"p": parents, "v": values}), sort_keys=[("p", "ascending", "at_start"), ("v", "ascending", "at_start")]
        )
        values = values.take(order)
        parents = parents.take(order)
        if handling == "sorted_set" and len(values):
            v = values.to_numpy(zero_copy_only=False)
            p = parents.to_numpy(zero_copy_only=False)
            keep = np.ones(len(v), dtype=bool)
            keep[1:] = (v[1:] != v[:-1]) | (p[1:] != p[:-1])
            values = values.filter(pa.array(keep))
            parents = parents.filter(pa.array(keep))
        counts = np.bincount(parents.to_numpy(zero_copy_only=False), minlength=len(col))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        col = pa.ListArray.from_arrays(pa.array(offsets), values, mask=pc.is_null(col))
    first, last = col.offsets[0].as_py(), col.offsets[-1].as_py()
    flat = col.values.slice(first, last - first)
    if flat.null_count:
        offsets = pc.subtract(col.offsets, first)
        col = pa.ListArray.from_arrays(offsets, pc.fill_null(flat, MULTI_VALUE_NULL), mask=pc.is_null(col))
    joined = pc.binary_join(col, MULTI_VALUE_SEPARATOR)
    empty = pc.or_(pc.equal(pc.list_value_length(col), 0), pc.equal(joined, MULTI_VALUE_NULL))
    return pc.if_else(pc.fill_null(empty, True), pa.scalar(None, pa.string()), joined)
