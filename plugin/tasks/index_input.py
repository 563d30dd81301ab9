"""How the ``index`` task reads its input: the reader over the spec's input source, the parse-exception policy
of its tuningConfig, and the parser settings the determine and build passes share."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Optional

import pyarrow as pa

from druidflow.ingest.stats import UNLIMITED, ParseExceptionHandler
from druidflow.ingest.task_input import open_task_input
from druidflow.specs.tasks import IndexTask
from druidflow.specs.tuning import HashedPartitionsSpec
from druidflow.tasks.runtime import Runtime

# The index task's logger, whichever of its modules logs: one name to filter a task's parse exceptions by.
log = logging.getLogger("druidflow.tasks.index")


def parse_handler(task: IndexTask, log_errors: bool = True, saved: bool = True) -> ParseExceptionHandler:
    """The tuningConfig's parse-exception policy; ``saved=False`` for a build that must not save reports (only
    the primary unit does, so that each row's report is saved once)."""
    tuning = task.spec.tuning_config
    max_exc, max_saved = tuning.max_parse_exceptions, tuning.max_saved_parse_exceptions if saved else 0
    if tuning.report_parse_exceptions:
        max_exc, max_saved = 0, min(1, max_saved)
    return ParseExceptionHandler(
        max_parse_exceptions=max_exc if max_exc is not None else UNLIMITED,
        max_saved=max_saved or 0,
        log=log if (tuning.log_parse_exceptions and log_errors) else None,
    )


def task_reader(task: IndexTask, rt: Runtime, dimensions: Sequence[str] = ()) -> Any:
    """The input reader; declared string dimensions are read dictionary-encoded, which rollup then only unifies.

    A ``druid`` input source re-reads this deployment's own segments (compaction, re-indexing).
    """
    io = task.spec.io_config
    dictionary = pa.dictionary(pa.int32(), pa.string())
    return open_task_input(
        io.input_source,
        io.input_format,
        store=rt.store,
        storage=rt.storage,
        timestamp_column=task.spec.data_schema.timestamp_spec.column,
        column_types={d: dictionary for d in dimensions},
        text_fields=text_fields(task),
    )


def text_fields(task: IndexTask) -> Optional[frozenset[str]]:
    """The input fields whose numbers may become text — string dimensions, and the hash partitioning key — for
    which the reader keeps each JSON number's kind (``1`` vs ``1.0``); None (any field) when dimensions are
    discovered."""
    spec = task.spec.data_schema.dimensions_spec
    if spec.discovers:
        return None
    schemas = spec.dimension_schemas
    fields = {d.name for d in schemas if d.type == "string"}
    partitions = task.spec.tuning_config.effective_partitions_spec
    if isinstance(partitions, HashedPartitionsSpec):
        fields |= set(partitions.partition_dimensions) or {d.name for d in schemas}
    return frozenset(fields)


def string_dimensions(task: IndexTask) -> list[str]:
    spec = task.spec.data_schema.dimensions_spec
    return [d.name for d in spec.dimension_schemas if d.type == "string"]


def list_delimiter(task: IndexTask) -> Optional[str]:
    delimiter: Optional[str] = getattr(task.spec.io_config.input_format, "list_delimiter", None)
    return delimiter
