"""The ``index_parallel`` task: Druid's native parallel batch ingestion, as phases any worker can run.

    submit ─▶ acquire_locks ─▶ plan (split the input once)
          ─▶ scan (one per split: intervals and partition statistics, only when the partitionsSpec needs them)
          ─▶ decide (the chunks, their locks, versions and shards)
          ─▶ partial (one per split: its rows parsed, bucketed by (time chunk, partition) and rolled up, written
             to deep storage under ``_partials/<task>/<split>/<attempt>/``)
          ─▶ merges (the partials recorded for each split's successful attempt, grouped per (chunk, partition))
          ─▶ merge (one per (chunk, partition): its partials rolled up again into the final segment(s))
          ─▶ publish (one transaction, by the protocol's publisher) ─▶ release, partials deleted

As in Druid, rows are bucketed in the partial phase so that every row of one rollup key lands in the same
(chunk, partition) whichever split read it — Druid's hash of (truncated time, dimensions) for ``hashed``, the
dimension ranges decided from every split's value distribution for ``single_dim``/``range``, the chunk alone for
``dynamic`` — so the merge phase rolls up across splits: perfect rollup. A retried partial writes under a fresh
attempt directory and returns the files it wrote; the merges read exactly the files of the results handed to them,
so a killed attempt's leftovers are never counted (they go with the task's partial directory at the end).
Every hand-off is a frozen model dumping to JSON (XCom), and :meth:`ParallelDefinition.run` chains the phases in
one process (``druidflow run``).

The phases live in :mod:`.split_planning`, :mod:`.partial_phase`, :mod:`.merge_phase` and :mod:`.definition`;
their hand-offs in :mod:`.handoffs`. This package re-exports what the operators, DAGs and tests use.
"""

from __future__ import annotations

from druidflow.tasks.parallel.definition import DEFINITION, ParallelDefinition, run
from druidflow.tasks.parallel.handoffs import (
    DEFAULT_MAX_RETRY,
    HONOURED,
    PARTIALS,
    FinalPlan,
    MergeUnit,
    ParallelPlan,
    PartialFile,
    PartialResult,
    SplitScan,
    max_retry,
    partial_prefix,
)
from druidflow.tasks.parallel.merge_phase import cleanup, final_plan, merge, merges
from druidflow.tasks.parallel.partial_phase import partial
from druidflow.tasks.parallel.split_planning import decide, plan, scan

__all__ = [
    "DEFAULT_MAX_RETRY",
    "DEFINITION",
    "HONOURED",
    "PARTIALS",
    "FinalPlan",
    "MergeUnit",
    "ParallelDefinition",
    "ParallelPlan",
    "PartialFile",
    "PartialResult",
    "SplitScan",
    "cleanup",
    "decide",
    "final_plan",
    "max_retry",
    "merge",
    "merges",
    "partial",
    "partial_prefix",
    "plan",
    "run",
    "scan",
]
