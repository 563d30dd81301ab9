"""Kill figures: segments killed per second with 100k unused segments in the metadata DB.

``run(url) -> dict`` is what ``bench/run.py`` calls, once on a SQLite file and once on PostgreSQL (where it works in
a schema of its own, dropped afterwards). ``python -m bench.kill [URL]`` prints the figures; without a URL it uses a
temporary SQLite file.

* 100k unused segments whose files do not exist (metadata only; a missing file counts as deleted, so this measures
  the metadata side: per batch one lock critical section with the claim, one reference-count read, one delete),
  killed with Druid's default ``batchSize`` 100 (1000 batches) after a timed dry run of the same kill.
* 10k unused segments with tiny real files in local deep storage, killed with batchSize 100 (adds the unlinks and
  the removal of the emptied directories).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench.metadata_db import isolated, main_over_url
from druidflow.intervals import MS_HOUR, Interval, parse_instant
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.ids import storage_dir
from druidflow.segments.shardspec import NumberedShardSpec

METADATA_ONLY = 100_000
WITH_FILES = 10_000
PARTITIONS = 5
VERSION = "2024-02-01T00:00:00.000Z"
START = parse_instant("2020-01-01")


def make_segments(count: int, data_source: str, root: Path) -> list[DataSegment]:
    """``count`` segments in hourly chunks of 5 partitions, with local loadSpecs under ``root``."""
    specs = [NumberedShardSpec(partition_num=p, partitions=PARTITIONS) for p in range(PARTITIONS)]
    out = []
    for i in range(count):
        hour, p = divmod(i, PARTITIONS)
        iv = Interval(START + hour * MS_HOUR, START + (hour + 1) * MS_HOUR)
        path = root / storage_dir(data_source, iv, VERSION, p) / "index.parquet"
        out.append(
            DataSegment(
                data_source=data_source,
                interval=iv,
                version=VERSION,
                shard_spec=specs[p],
                load_spec={"type": "local", "path": str(path)},
                dimensions="page,user",
                metrics="count",
                size=1000,
                num_rows=10,
            )
        )
    return out


def _analyze(rt) -> None:
    """Refresh PostgreSQL's statistics after the bulk setup, as autovacuum does within a minute in production
    (with none, the planner guesses a sequential scan for the shared-file lookup by load_path)."""
    if rt.store.engine.dialect.name == "postgresql":
        with rt.store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE druidflow_segments")


def _timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def run(url: str) -> dict:
    """Kill 100k unused segments (metadata only) and 10k with tiny files; segments killed per second."""
    from druidflow.tasks import kill
    from druidflow.tasks.runtime import Runtime

    with tempfile.TemporaryDirectory(prefix="druidflow-bench-kill-") as tmp, isolated(url, "druidflow_bench_kill") as db_url:
        root = Path(tmp) / "deep"
        rt = Runtime.from_urls(db_url, str(root), Path(tmp) / "work")
        try:
            rt.store.publish_segments(make_segments(METADATA_ONLY, "bench_meta", root))
            rt.store.mark_unused("bench_meta", reason="dropped-by-user")
            _analyze(rt)
            spec = {"type": "kill", "dataSource": "bench_meta", "interval": "2000-01-01/2100-01-01", "batchSize": 100}
            plan, dry_s = _timed(lambda: kill.run(spec, rt, dry_run=True))
            report, kill_s = _timed(lambda: kill.run(spec, rt))
            assert plan.num_segments_killed == report.num_segments_killed == METADATA_ONLY, report.summary()
            assert not rt.store.segments("bench_meta", include_unused=True)

            segments = make_segments(WITH_FILES, "bench_files", root)
            for s in segments:  # written directly: a push fsyncs, which only slows the setup down
                path = Path(s.load_spec["path"])
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"x" * 64)
            rt.store.publish_segments(segments)
            rt.store.mark_unused("bench_files", reason="dropped-by-user")
            _analyze(rt)
            spec = {"type": "kill", "dataSource": "bench_files", "interval": "2000-01-01/2100-01-01", "batchSize": 100}
            files_report, files_s = _timed(lambda: kill.run(spec, rt))
            assert files_report.num_files_deleted == WITH_FILES, files_report.summary()
            assert not any((root / "bench_files").rglob("*.parquet"))
        finally:
            rt.store.engine.dispose()
    return {
        "kill_100k_metadata_only_s": round(kill_s, 2),
        "kill_100k_segments_per_s": round(METADATA_ONLY / kill_s),
        "kill_100k_batches": report.num_batches_processed,
        "kill_100k_dry_run_s": round(dry_s, 2),
        "kill_10k_with_files_s": round(files_s, 2),
        "kill_10k_with_files_segments_per_s": round(WITH_FILES / files_s),
    }


def main(argv: list[str]) -> int:
    return main_over_url(run, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
