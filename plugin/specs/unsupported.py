"""Spec fields Druidflow accepts only at their default value.

Druid's specs carry knobs for parts of Druid that have no counterpart here (the JVM's persist threads, bitmap
indexes, the Overlord's task slots, the parallel task's sub-task chat). Accepting such a field with a value other
than its default and doing nothing with it would silently run a different task than the one written, so a
non-default value is refused, naming the field; the default (which describes what Druidflow does anyway) and an
absent field are fine. ``docs/spec-fields.md`` lists every accepted field and what becomes of it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from druidflow.exceptions import SpecError

_NO_SLOTS = "Druidflow runs every task in its own process or Airflow task; it has no task slots to reserve"
_NO_BITMAPS = "Druidflow segments are Parquet files without bitmap indexes"
_NO_JVM = "it tunes Druid's JVM indexer, which Druidflow does not have"
_NO_PARALLEL = "it configures Druid's parallel sub-tasks; Druidflow splits the build into units itself (one Airflow task each)"
_PARALLEL_TASK = "only an index_parallel task runs sub-tasks (this field is honoured there)"

#: model class name -> {python field name: why a non-default value cannot be honoured}
DEFAULT_ONLY: dict[str, dict[str, str]] = {
    "TaskResource": {"availability_group": _NO_SLOTS, "required_capacity": _NO_SLOTS},
    "DimensionSchema": {"create_bitmap_index": _NO_BITMAPS},
    "BitmapSpec": {"type": _NO_BITMAPS, "compress_run_on_serialization": _NO_BITMAPS},
    "StringDictionaryEncoding": {
        "type": "Parquet dictionary-encodes strings itself; front coding has no Parquet equivalent",
        "bucket_size": "front coding has no Parquet equivalent",
        "format_version": "front coding has no Parquet equivalent",
    },
    "IndexSpec": {
        "complex_metric_compression": "Druidflow has no complex metrics",
        "json_compression": "Druidflow has no JSON columns",
    },
    "AppendableIndexSpec": {"preserve_existing_metrics": _NO_JVM},
    "IndexTuningConfig": {
        "skip_bytes_in_memory_overhead_check": _NO_JVM,
        "max_pending_persists": _NO_JVM,
        "num_persist_threads": _NO_JVM,
        "max_columns_to_merge": _NO_JVM,
        "segment_write_out_medium_factory": _NO_JVM,
        "push_timeout": "pushes to deep storage are not timed out by Druidflow",
        "await_segment_availability_timeout_millis": "there are no historicals to wait for: published segments are queryable at once",
        "max_retry": _PARALLEL_TASK,
        "task_status_check_period_ms": _NO_PARALLEL,
        "chat_handler_timeout": _NO_PARALLEL,
        "chat_handler_num_retries": _NO_PARALLEL,
        "max_num_segments_to_merge": _NO_PARALLEL,
        "total_num_merge_tasks": _PARALLEL_TASK,
        "split_hint_spec": _PARALLEL_TASK,
        "max_allowed_lock_count": _NO_PARALLEL,
    },
    **{
        task: {"segment_write_out_medium_factory": _NO_JVM}
        for task in ("_SegmentListTask", "MergeTask", "AppendTask", "SameIntervalMergeTask", "ConvertSegmentTask")
    },
    "S3ClientConfig": {
        "disable_chunked_encoding": "boto3 decides chunked encoding itself",
        "force_global_bucket_access_enabled": "boto3 resolves the bucket's region itself",
    },
    "JsonInputFormat": {
        "assume_newline_delimited": "JSON input is always read as one JSON value per line",
        "use_json_node_reader": "JSON input is always read as one JSON value per line",
    },
    "IngestSegmentFirehose": {"max_input_segment_bytes_per_task": _NO_PARALLEL},
    "SingleDimensionPartitionsSpec": {"assume_grouped": "the partitioning pass always groups the rows itself"},
    "DimensionRangePartitionsSpec": {"assume_grouped": "the partitioning pass always groups the rows itself"},
}

_PREFETCH = {
    "max_cache_capacity_bytes": "the readers stream their input; nothing is cached or prefetched",
    "max_fetch_capacity_bytes": "the readers stream their input; nothing is cached or prefetched",
    "prefetch_trigger_bytes": "the readers stream their input; nothing is cached or prefetched",
    "fetch_timeout": "the readers stream their input with the client's own timeouts",
    "max_fetch_retry": "the readers stream their input with the client's own retries",
}
for _name in ("HttpFirehose", "StaticS3Firehose"):
    DEFAULT_ONLY[_name] = _PREFETCH


#: Task context keys accepted only at their default.
CONTEXT_DEFAULT_ONLY: dict[str, tuple[Any, str]] = {
    "storeEmptyColumns": (True, "Druidflow always stores every declared column, empty or not"),
}


def refuse_non_defaults(model: BaseModel, path: str = "", allowed: frozenset[str] = frozenset()) -> None:
    """Raise :class:`SpecError` for the first field of ``model`` (or of a model inside it) listed in
    :data:`DEFAULT_ONLY` whose value was given and differs from its default (and, for a task, for a context key of
    :data:`CONTEXT_DEFAULT_ONLY`). Fields named in ``allowed`` are honoured by the caller (``index_parallel``)."""
    context = getattr(model, "context", None) if not path else None
    if isinstance(context, dict):
        for key, (default, reason) in CONTEXT_DEFAULT_ONLY.items():
            if key in context and _flag(context[key]) != default:
                raise SpecError(f"context.{key}", context[key], f"is not supported: {reason}; remove it")
    rules = DEFAULT_ONLY.get(type(model).__name__, {})
    fields = type(model).model_fields
    for name in model.model_fields_set:
        info = fields.get(name)
        if info is None:
            continue
        value = getattr(model, name)
        where = f"{path}.{info.alias or name}" if path else (info.alias or name)
        if name in rules and name not in allowed and value is not None and not _is_default(value, info):
            raise SpecError(where, _plain(value), f"is not supported: {rules[name]}; remove it")
    for name, info in fields.items():
        value = getattr(model, name, None)
        where = f"{path}.{info.alias or name}" if path else (info.alias or name)
        _walk(value, where, allowed)


def _walk(value: Any, path: str, allowed: frozenset[str] = frozenset()) -> None:
    if isinstance(value, BaseModel):
        refuse_non_defaults(value, path, allowed)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]", allowed)


def _is_default(value: Any, info: Any) -> bool:
    if info.default_factory is not None:
        default = info.default_factory()
    else:
        default = info.default
    if isinstance(value, BaseModel) and isinstance(default, BaseModel):
        return value.model_dump() == default.model_dump()
    return value == default


def _flag(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _plain(value: Any) -> Any:
    return value.model_dump(by_alias=True) if isinstance(value, BaseModel) else value
