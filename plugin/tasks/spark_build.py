"""The build of an ``index_hadoop`` task as one Spark job, over the index task's own build code.

    splits (one row each) ─mapInArrow─▶ [scan: partition statistics] ─▶ driver decides shards (parallel.decide)
          ─mapInArrow─▶ partial rows: each split parsed and bucketed by (time chunk, partition), rolled up (the
                        combiner), as Arrow IPC payloads keyed by (chunk, partition)
          ─groupBy(chunk, partition).applyInArrow─▶ each key's rows rolled up again by the same IncrementalIndex
                        and cut into segment files pushed to deep storage ─▶ segment descriptors, collected

The driver (this process) keeps the locks, versions and publish: executors only read input, build and push files.
Spark's shuffle replaces ``index_parallel``'s partial files; the parser, bucket assignment, rollup and segment
writer are :mod:`druidflow.tasks.parallel`'s and :mod:`druidflow.tasks.index`'s, so rows come out identical.
Executors rebuild the :class:`Runtime` from its URLs (same metadata DB and deep storage as the driver).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from typing import Any, Optional

import pyarrow as pa
import pyarrow.ipc as ipc

from druidflow import exceptions
from druidflow.exceptions import MissingExtraError, SpecError
from druidflow.ingest.builder import tune_allocator
from druidflow.inputs.splits import InputSplit, plan_splits
from druidflow.segments.descriptor import DataSegment
from druidflow.specs.base import DruidModel
from druidflow.specs.tasks import IndexTask
from druidflow.tasks import parallel
from druidflow.tasks.index import BuildResult
from druidflow.tasks.parallel import FinalPlan, MergeUnit, ParallelPlan, PartialFile, PartialResult, SplitScan
from druidflow.tasks.parallel.merge_phase import merge_tables
from druidflow.tasks.parallel.partial_phase import PartialBuilder
from druidflow.tasks.parallel.split_planning import split_batches
from druidflow.tasks.runtime import Runtime

SPARK_EXTRA = "pip install 'druidflow[spark]'"
DEFAULT_MASTER = "local[*]"
HADOOP_SPLIT_BYTES = 128 << 20  # a Hadoop block: one split per file piece of this size
_META = -1  # the chunk value of a partial row that carries a split's counters instead of rows
_PARTIAL_SCHEMA = "chunk long, part long, payload binary, meta string"
_ERROR = re.compile(r"druidflow\.exceptions\.(\w+): (.+)")


def missing_pyspark_message() -> str:
    return f"index_hadoop runs its build as a Spark job and needs pyspark, which is not installed: {SPARK_EXTRA}"


def require_pyspark() -> Any:
    try:
        import pyspark  # noqa: F401
        from pyspark.sql import SparkSession
    except ImportError:
        raise MissingExtraError(missing_pyspark_message()) from None
    return SparkSession


class SparkJob(DruidModel):
    """What every executor function is handed (as JSON): the task, the plan so far and where the runtime is."""

    task: dict[str, Any]
    plan: dict[str, Any]
    metadata_url: str
    deep_storage: str
    work_dir: str
    units: dict[str, dict[str, Any]] = {}

    def runtime(self) -> Runtime:
        return Runtime.from_urls(self.metadata_url, self.deep_storage, self.work_dir, migrate=False)


# ------------------------------------------------------------------------------------------------ session


def spark_session(conf: dict[str, str], app_name: str) -> tuple[Any, bool]:
    """The active Spark session (configured with ``conf`` where Spark allows it at run time) or a new one; and
    whether it was created here (and so is stopped when the job is done).

    The master is ``spark.master`` from ``conf`` (jobProperties), else ``DRUIDFLOW_SPARK_MASTER``, else what
    spark-submit set, else ``local[*]``.
    """
    SparkSession = require_pyspark()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    active = SparkSession.getActiveSession()
    if active is not None:
        for key, value in conf.items():
            current = active.conf.get(key, None)
            if current == value:
                continue
            if not active.conf.isModifiable(key) and not key.startswith("spark.hadoop."):
                raise SpecError(
                    f"spec.tuningConfig.jobProperties.{key}", value, f"a Spark session is already running with {current!r}; it cannot change"
                )
            if key.startswith("spark.hadoop."):
                active.sparkContext._jsc.hadoopConfiguration().set(key[len("spark.hadoop."):], value)
            else:
                active.conf.set(key, value)
        return active, False
    from pyspark import SparkConf

    builder = SparkSession.builder.appName(app_name)
    master = conf.get("spark.master") or os.environ.get("DRUIDFLOW_SPARK_MASTER")
    if master or not SparkConf().contains("spark.master"):
        builder = builder.master(master or DEFAULT_MASTER)
    defaults = {"spark.ui.enabled": "false", "spark.sql.execution.arrow.pyspark.enabled": "true"}
    for key, value in {**defaults, **conf}.items():
        if key != "spark.master":
            builder = builder.config(key, value)
    return builder.getOrCreate(), True


# ------------------------------------------------------------------------------------------------ the job


def plan_hadoop_splits(task: IndexTask, combine_text: bool, concurrency: int) -> list[InputSplit]:
    """One split per file or 128 MiB piece of one (Hadoop's FileInputFormat); with ``combineText``, small files
    share splits up to that size (CombineTextInputFormat)."""
    from druidflow.inputs.splits import MaxSizeSplitHint

    io = task.spec.io_config
    hint = MaxSizeSplitHint(max_split_size=HADOOP_SPLIT_BYTES, max_num_files=1000 if combine_text else 1)
    return plan_splits(io.input_source, io.input_format, hint, concurrency)


def run_build(task: IndexTask, conf: dict[str, str], rt: Runtime, *, combine_text: bool) -> tuple[FinalPlan, list[BuildResult]]:
    """The whole build as one Spark job; the driver locks chunks found in the data and returns the final plan and
    the pushed (unpublished) segments."""
    spark, owned = spark_session(conf, f"druidflow-{task.task_id}")
    try:
        return _run(spark, task, conf, rt, combine_text=combine_text)
    except Exception as exc:
        raise _druidflow_error(exc) from None
    finally:
        if owned:
            spark.stop()


def _run(spark: Any, task: IndexTask, conf: dict[str, str], rt: Runtime, *, combine_text: bool) -> tuple[FinalPlan, list[BuildResult]]:
    from functools import partial as bind

    the_plan = parallel.plan(task, rt)
    splits = plan_hadoop_splits(task, combine_text, spark.sparkContext.defaultParallelism)
    the_plan = the_plan.model_copy(update={"splits": splits})
    rows = [(s.index, s.model_dump_json()) for s in splits]
    split_df = spark.createDataFrame(spark.sparkContext.parallelize(rows, max(1, len(rows))), "split int, spec string")
    job = SparkJob(
        task=task.model_dump(),
        plan={},
        metadata_url=rt.store.engine.url.render_as_string(hide_password=False),
        deep_storage=rt.storage.uri,
        work_dir=str(rt.work_dir),
    )
    if the_plan.scan:
        scans = split_df.mapInArrow(bind(_scan_splits, job.model_copy(update={"plan": the_plan.model_dump()}).model_dump_json()), "scan string").collect()
        the_plan = parallel.decide(task, the_plan, [SplitScan.model_validate_json(r.scan) for r in scans], rt)
    job = job.model_copy(update={"plan": the_plan.model_dump()})
    partials = split_df.mapInArrow(bind(_partial_splits, job.model_dump_json()), _PARTIAL_SCHEMA).persist()
    try:
        metas = [PartialResult.model_validate_json(r.meta) for r in partials.where(f"chunk = {_META}").select("meta").collect()]
        units = parallel.merges(task, the_plan, metas, rt)  # locks the chunks found in the data, if not known before
        by_key = {_key(u): u.model_dump() for u in units}
        if "spark.sql.shuffle.partitions" not in conf:
            spark.conf.set("spark.sql.shuffle.partitions", str(max(1, min(len(by_key), 4 * spark.sparkContext.defaultParallelism))))
        merge_job = job.model_copy(update={"units": by_key}).model_dump_json()
        built = (
            partials.where(f"chunk <> {_META}")
            .select("chunk", "part", "payload")
            .groupBy("chunk", "part")
            .applyInArrow(_merger(merge_job), "segments string")
            .collect()
        )
    finally:
        partials.unpersist()
    segments = [DataSegment.parse(s) for r in built for s in _segment_dicts(r.segments)]
    final = parallel.final_plan(task, the_plan, units, metas)
    return final, [BuildResult(task_id=task.task_id, segments=segments)]


def _segment_dicts(text: str) -> list[dict[str, Any]]:
    return list(json.loads(text))


def _merger(job_json: str) -> Any:
    """The grouped function with the type hints Spark reads its kind from (a ``partial`` has none)."""

    def merge(table: pa.Table) -> pa.Table:
        return _merge_group(job_json, table)

    return merge


def _key(unit: MergeUnit) -> str:
    chunk = unit.chunks[0]
    return f"{chunk.interval.start}:{chunk.shards[0].partition_num if chunk.shards else 0}"


def _druidflow_error(exc: Exception) -> Exception:
    """A Druidflow error raised in an executor, as that error again (Spark wraps it in its own exception)."""
    if isinstance(exc, exceptions.DruidflowError):
        return exc
    found = _ERROR.findall(str(exc))
    if found:
        name, message = found[-1]
        kind = getattr(exceptions, name, None)
        if isinstance(kind, type) and issubclass(kind, exceptions.DruidflowError):
            if kind is SpecError:
                return exceptions.InputError(message)
            return kind(message)
    return exceptions.RetryableError(f"the Spark job failed: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")


# ------------------------------------------------------------------------------------------ on executors


def _unpack(job_json: str) -> tuple[SparkJob, IndexTask, Runtime]:
    job = SparkJob.model_validate_json(job_json)
    return job, IndexTask.parse(job.task, ""), job.runtime()


def _splits(batches: Iterator[pa.RecordBatch]) -> Iterator[InputSplit]:
    for batch in batches:
        for text in batch.column("spec").to_pylist():
            yield InputSplit.model_validate_json(text)


def _scan_splits(job_json: str, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    job, task, rt = _unpack(job_json)
    the_plan = ParallelPlan.parse(job.plan)
    for split in _splits(batches):
        scan = parallel.scan(task, the_plan, split, rt)
        yield pa.record_batch({"scan": pa.array([scan.model_dump_json()], pa.string())})


def _partial_splits(job_json: str, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    job, task, rt = _unpack(job_json)
    the_plan = ParallelPlan.parse(job.plan)
    for split in _splits(batches):
        yield from _partial_rows(task, the_plan, split, rt)


def _batch(chunks: list[int], parts: list[int], payloads: list[Optional[bytes]], metas: list[Optional[str]]) -> pa.RecordBatch:
    return pa.record_batch(
        {
            "chunk": pa.array(chunks, pa.int64()),
            "part": pa.array(parts, pa.int64()),
            "payload": pa.array(payloads, pa.binary()),
            "meta": pa.array(metas, pa.string()),
        }
    )


def _partial_rows(task: IndexTask, the_plan: ParallelPlan, split: InputSplit, rt: Runtime) -> Iterator[pa.RecordBatch]:
    """One split's rows bucketed per (chunk, partition) and rolled up by ``index_parallel``'s partial builder (the
    map-side combine), streamed out as IPC payloads; last, one row with the split's counters."""
    out: list[tuple[int, int, bytes]] = []

    def collect(start: int, partition: int, table: pa.Table) -> None:
        stream = pa.BufferOutputStream()
        with ipc.new_stream(stream, table.schema) as writer:
            writer.write_table(table)
        out.append((start, partition, stream.getvalue().to_pybytes()))

    def drain() -> Iterator[pa.RecordBatch]:
        if out:
            yield _batch([o[0] for o in out], [o[1] for o in out], [o[2] for o in out], [None] * len(out))
            out.clear()

    scratch = rt.scratch(f"{task.task_id[:40]}-spark-partial-")
    tune_allocator()
    try:
        builder = PartialBuilder(task, the_plan, scratch, collect)
        for batch in split_batches(task, split, rt):
            builder.add(batch)
            yield from drain()
        builder.finish()
        yield from drain()
        files = [PartialFile(chunk_start=s, partition_num=p, load_spec={}, rows=n) for (s, p), n in sorted(builder.rows.items())]
        meta = builder.result(split.index, "spark", files)
        yield _batch([_META], [split.index], [None], [meta.model_dump_json()])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _merge_group(job_json: str, table: pa.Table) -> pa.Table:
    """One (chunk, partition)'s partial rows rolled up into its final segment(s), pushed to deep storage."""
    job, task, rt = _unpack(job_json)
    key = f"{table.column('chunk')[0].as_py()}:{table.column('part')[0].as_py()}"
    unit = MergeUnit.parse(job.units[key])
    partials = (ipc.open_stream(payload).read_all() for payload in table.column("payload").to_pylist())
    built = merge_tables(task, unit, unit.chunks[0], partials, rt)
    return pa.table({"segments": pa.array([json.dumps([s.model_dump() for s in built.segments])], pa.string())})
