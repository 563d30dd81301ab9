"""Compaction throughput on the reference dataset, next to the index task's.

The job: index the reference dataset (``bench/generate.py``, ``bench/reference_spec.py``: 7 DAY chunks, HOUR rollup)
``appends`` times with ``appendToExisting`` (so every day holds ``appends`` partitions, as a day of late-arriving
batches would), then compact the week with the inferred schema: read the visible segments back, roll the duplicate
keys up with the combining aggregators, write one segment set per day and publish it over the inputs. Druidflow's
engine in-process, no Airflow; SQLite metadata and local deep storage in a temporary directory.

Figures: index rows/s (input CSV rows over the index wall time, the first append alone) and compaction rows/s
(segment rows read over the compaction wall time), plus the event totals before and after, which must agree.

    python -m bench.compact --rows 1M [--appends 2] [--keep]

``run(rows=..., appends=...) -> dict`` is the same from Python.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from bench.generate import dataset_paths, generate, rows_label
from bench.reference_spec import DATA_SOURCE, INTERVAL, reference_spec

DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data"


def _event_totals(rt: Any) -> dict[str, int]:
    """Sums of every metric over the visible rows (read column by column, never the whole table at once)."""
    import pyarrow.compute as pc

    from druidflow.query import visible_rows

    sums = {"count": 0, "added": 0, "deleted": 0, "delta": 0}
    rows = 0
    for batch in visible_rows(rt.store, rt.storage, DATA_SOURCE, columns=list(sums)):
        rows += batch.num_rows
        for name in sums:
            sums[name] += pc.sum(batch.column(name)).as_py() or 0
    return {"rows": rows, **sums}


def run(
    rows: int = 1_000_000,
    *,
    appends: int = 2,
    data_dir: Path | str = DEFAULT_DATA_DIR,
    work_dir: Optional[Path | str] = None,
    keep: bool = False,
    max_rows_in_memory: int = 1_000_000,
) -> dict[str, Any]:
    """Index the ``rows``-row reference dataset ``appends`` times, compact the week, and return the figures."""
    from druidflow.tasks import compact, index
    from druidflow.tasks.runtime import Runtime

    if appends < 1:
        raise ValueError(f"appends: must be at least 1, got {appends!r}")
    path = dataset_paths(rows, data_dir, ("csv",))["csv"]
    generate(rows, data_dir, formats=("csv",))
    root = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix=f"druidflow-bench-compact-{rows_label(rows)}-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        rt = Runtime.from_urls(f"sqlite:///{root / 'metadata.db'}", str(root / "deep"), root / "work")
        index_seconds = []
        for i in range(appends):
            spec = reference_spec(path, "csv", max_rows_in_memory=max_rows_in_memory)
            spec["spec"]["ioConfig"]["appendToExisting"] = i > 0
            started = time.perf_counter()
            index.run(spec, rt)
            index_seconds.append(time.perf_counter() - started)
        inputs = rt.store.used_segments(DATA_SOURCE)
        before = _event_totals(rt)

        spec = {
            "type": "compact",
            "dataSource": DATA_SOURCE,
            "interval": INTERVAL,
            "tuningConfig": {"type": "index_parallel", "maxRowsInMemory": max_rows_in_memory},
        }
        started = time.perf_counter()
        report = compact.run(spec, rt)
        compact_s = time.perf_counter() - started
        after = _event_totals(rt)

        input_rows = sum(s.num_rows for s in inputs)
        output_rows = sum(s.num_rows for s in report.segments)
        return {
            "rows": rows,
            "appends": appends,
            "index": {
                "seconds": round(index_seconds[0], 3),
                "rows_per_s": round(rows / index_seconds[0]),
                "append_seconds": [round(s, 3) for s in index_seconds[1:]],
            },
            "compact": {
                "seconds": round(compact_s, 3),
                "input_segments": len(inputs),
                "input_rows": input_rows,
                "output_segments": len(report.segments),
                "output_rows": output_rows,
                "rows_per_s": round(input_rows / compact_s),
                "input_bytes": sum(s.size for s in inputs),
                "output_bytes": sum(s.size for s in report.segments),
            },
            "totals_before": before,
            "totals_after": after,
            "agree": {k: v for k, v in before.items() if k != "rows"} == {k: v for k, v in after.items() if k != "rows"}
            and before["count"] == appends * rows,
            "work_dir": str(root) if keep else None,
        }
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring); prints the figures and exits 1 if the totals disagree."""
    parser = argparse.ArgumentParser(prog="python -m bench.compact", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1M", help="1M, 5M or an integer (default 1M)")
    parser.add_argument("--appends", type=int, default=2, help="times the dataset is indexed before compacting (default 2)")
    parser.add_argument("--data", default=str(DEFAULT_DATA_DIR), help="dataset directory (default bench/data)")
    parser.add_argument("--keep", action="store_true", help="keep the metadata DB and deep storage")
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = parser.parse_args(argv)
    text = args.rows.strip().upper()
    rows = int(float(text[:-1]) * 1_000_000) if text.endswith("M") else int(float(text[:-1]) * 1_000) if text.endswith("K") else int(text)
    result = run(rows, appends=args.appends, data_dir=args.data, keep=args.keep)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        ix, cp = result["index"], result["compact"]
        print(f"reference dataset, {rows:,} rows, indexed {result['appends']}x (appendToExisting), compacted once")
        print(f"  index    {ix['seconds']:8.2f} s  {ix['rows_per_s']:>12,} rows/s   (input rows)")
        print(
            f"  compact  {cp['seconds']:8.2f} s  {cp['rows_per_s']:>12,} rows/s   (segment rows read: {cp['input_rows']:,} in "
            f"{cp['input_segments']} segments -> {cp['output_rows']:,} in {cp['output_segments']})"
        )
        print(f"  totals agree: {result['agree']}  (count {result['totals_after']['count']:,})")
    return 0 if result["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
