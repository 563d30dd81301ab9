"""The engines the harness times, each run by ``bench.run`` in a fresh child process.

``python -m bench.engines ENGINE --input PATH --format csv|json --out DIR --result FILE`` runs one engine once on
the reference job and writes ``{"status": "ok"|"unavailable"|"failed", "wall_s": ..., ...}`` to FILE. ``wall_s``
covers the job only (read, roll up, write): the interpreter start and the engine's imports come before the clock,
for every engine alike. ``peak_rss_bytes`` is the child's own high-water mark (``VmHWM``), imports included.

* ``druidflow``: Druidflow's index engine in-process, ``druidflow.tasks.index.run_local``, writing Parquet
  segments under ``<out>/deep`` and its metadata to SQLite in ``<out>``.
* ``polars``: what a user would write instead: read, truncate to the hour, group by hour and the six dimensions,
  count and sums, one Parquet (LZ4) file per day.
* ``duckdb``: the same in SQL, ``COPY ... (FORMAT parquet, COMPRESSION lz4, PARTITION_BY day)``.
* ``floor``: ``pyarrow`` read and one Parquet LZ4 file written back, no rollup: no engine can be faster.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench.columns import DIMENSIONS, METRICS
from bench.reference_spec import reference_spec

ENGINES = ("druidflow", "polars", "duckdb", "floor")
PEERS = ("polars", "duckdb")
# Overridable so that another build of the same signature can be measured in its place (and the harness tested).
DRUIDFLOW_ENTRY = os.environ.get("DRUIDFLOW_BENCH_ENTRY", "druidflow.tasks.index.run_local")
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"  # polars (chrono) syntax


class EngineUnavailable(Exception):
    """The engine cannot be imported here (e.g. Druidflow's index build is not written yet)."""


def output_root(engine: str, out_dir: Path) -> Path:
    """Where an engine's output files are: Druidflow's deep storage, or the run's output directory."""
    return out_dir / "deep" if engine == "druidflow" else out_dir / "parquet"


def prepare_metadata(metadata_url: str) -> None:
    """Create the run's metadata tables before the clock, as a user's existing metadata DB already has them: the
    build is timed, not a first-ever schema creation (``druidflow run``'s own fixed cost is ``bench.overhead``)."""
    from druidflow.metadata.migrate import upgrade

    upgrade(metadata_url)


def _druidflow(input_path: Path, input_format: str, out_dir: Path, max_rows_in_memory: int) -> Callable[[], dict]:
    module_name, function_name = DRUIDFLOW_ENTRY.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # the module exists but is broken: that is a failure, not an absence
        raise EngineUnavailable(f"{module_name} does not exist yet") from exc
    run_local = getattr(module, function_name, None)
    if run_local is None:
        raise EngineUnavailable(f"{module_name} has no {function_name} yet")
    spec = reference_spec(input_path.resolve(), input_format, max_rows_in_memory=max_rows_in_memory)
    metadata_url = f"sqlite:///{(out_dir / 'metadata.db').resolve()}"
    deep_storage = str(output_root("druidflow", out_dir).resolve())
    prepare_metadata(metadata_url)

    def job() -> dict:
        report = run_local(spec, metadata_url=metadata_url, deep_storage=deep_storage)
        if hasattr(report, "model_dump"):  # a pydantic report model rather than a dict
            report = report.model_dump(mode="json", by_alias=True)
        return {"report": report}

    return job


def _polars(input_path: Path, input_format: str, out_dir: Path, max_rows_in_memory: int) -> Callable[[], dict]:
    import polars as pl

    root = output_root("polars", out_dir)

    def job() -> dict:
        frame = pl.scan_csv(input_path) if input_format == "csv" else pl.scan_ndjson(input_path)
        hour = pl.col("timestamp").str.to_datetime(TIMESTAMP_FORMAT, time_unit="ms", time_zone="UTC").dt.truncate("1h")
        rolled = (
            frame.group_by(hour.alias("__time"), *DIMENSIONS)
            .agg(pl.len().cast(pl.Int64).alias("count"), *[pl.col(m).sum() for m in METRICS])
            .with_columns(pl.col("__time").dt.truncate("1d").alias("day"))
            # The streaming engine: on 5M rows it took about 35 % less CPU and 10 % less memory than the in-memory
            # one here, so the comparison is against polars at its best.
            .collect(engine="streaming")
        )
        root.mkdir(parents=True)
        days = rolled.partition_by("day", as_dict=True, include_key=False)
        for (day,), part in days.items():
            part.write_parquet(root / f"{day:%Y-%m-%d}.parquet", compression="lz4")
        return {"files": len(days)}

    return job


def _duckdb(input_path: Path, input_format: str, out_dir: Path, max_rows_in_memory: int) -> Callable[[], dict]:
    import duckdb

    root = output_root("duckdb", out_dir)
    types = {"timestamp": "TIMESTAMP", **{d: "VARCHAR" for d in DIMENSIONS}, "isRobot": "BOOLEAN"}
    types.update({m: "BIGINT" for m in METRICS})
    columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in types.items()) + "}"
    source = (
        f"read_csv('{input_path}', header = true, columns = {columns})"
        if input_format == "csv"
        else f"read_json('{input_path}', format = 'newline_delimited', columns = {columns})"
    )
    dims = ", ".join(f'"{d}"' for d in DIMENSIONS)
    sums = ", ".join(f'sum("{m}")::BIGINT AS "{m}"' for m in METRICS)
    sql = f"""
        COPY (
            SELECT date_trunc('hour', "timestamp") AS __time, {dims}, count(*) AS "count", {sums},
                   date_trunc('day', "timestamp")::DATE AS day
            FROM {source}
            GROUP BY ALL
        ) TO '{root}' (FORMAT parquet, COMPRESSION lz4, PARTITION_BY (day))
    """

    def job() -> dict:
        con = duckdb.connect()
        con.execute(sql)
        con.close()
        return {}

    return job


def _floor(input_path: Path, input_format: str, out_dir: Path, max_rows_in_memory: int) -> Callable[[], dict]:
    import pyarrow.csv
    import pyarrow.json
    import pyarrow.parquet as pq

    root = output_root("floor", out_dir)

    def job() -> dict:
        read = pyarrow.csv.read_csv if input_format == "csv" else pyarrow.json.read_json
        table = read(input_path)
        root.mkdir(parents=True)
        pq.write_table(table, root / "all.parquet", compression="lz4")
        return {}

    return job


def peak_rss_bytes() -> int:
    """This process's peak RSS: ``VmHWM`` from /proc (falls back to ``getrusage`` off Linux).

    ``VmHWM`` belongs to the memory map created at ``exec``; ``ru_maxrss`` would also count the parent's RSS, which
    Linux carries into the child's maximum when it forks and execs.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


_PREPARE = {"druidflow": _druidflow, "polars": _polars, "duckdb": _duckdb, "floor": _floor}


def run_engine(engine: str, input_path: Path, input_format: str, out_dir: Path, max_rows_in_memory: int) -> dict:
    """Run ``engine`` once; the result's ``wall_s`` times the job alone. Never raises: failures are reported."""
    try:
        job = _PREPARE[engine](input_path, input_format, out_dir, max_rows_in_memory)
        rss_before = peak_rss_bytes()
    except EngineUnavailable as exc:
        return {"status": "unavailable", "reason": str(exc)}
    except Exception as exc:
        return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    started = time.perf_counter()
    try:
        extra = job()
    except Exception as exc:
        return {
            "status": "failed",
            "wall_s": time.perf_counter() - started,
            "reason": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
        }
    wall_s = time.perf_counter() - started
    return {"status": "ok", "wall_s": wall_s, "peak_rss_bytes": peak_rss_bytes(), "rss_before_job_bytes": rss_before, **extra}


def main(argv: list[str] | None = None) -> int:
    """Child-process entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.engines")
    parser.add_argument("engine", choices=ENGINES)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--format", choices=["csv", "json"], default="csv")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--result", required=True, type=Path)
    parser.add_argument("--max-rows-in-memory", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = run_engine(args.engine, args.input, args.format, args.out, args.max_rows_in_memory)
    args.result.write_text(json.dumps(result, default=str))
    return 0 if result["status"] in ("ok", "unavailable") else 1


if __name__ == "__main__":
    sys.exit(main())
