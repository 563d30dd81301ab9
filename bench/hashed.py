"""Hashed partitioning against dynamic on the same data: prints both build times and their ratio (target ≤ 1.2).

    python -m bench.hashed --rows 1M [--format csv|json] [--repeat 3] [--shards 3]

Each run is a fresh child process (``python -m bench.engines druidflow``, so imports count for both), on the
reference job (``bench/reference_spec.py``: six dimensions, HOUR rollup, DAY chunks, 7 days, intervals given).
``hashed`` is the same spec with perfect rollup into ``numShards`` hash buckets per day (no determine pass);
``dynamic`` is the spec as it is. Runs alternate (dynamic, hashed, dynamic, ...) so that load drift on a shared
machine hits both; the medians are compared, of wall time (the target) and of the child's CPU time (steadier when
the machine is shared). Exit status 2 when the wall-time ratio misses the target.

The two entries are also usable with the main harness's ``DRUIDFLOW_BENCH_ENTRY``:

    DRUIDFLOW_BENCH_ENTRY=bench.hashed.run_num_shards python -m bench.run --rows 5M --engines druidflow,duckdb
    DRUIDFLOW_BENCH_ENTRY=bench.hashed.run_target     python -m bench.run --rows 5M --engines druidflow,duckdb

``run_target``: perfect rollup with ``targetRowsPerSegment`` 300,000, so a determine pass estimates each day's
distinct rows with HyperLogLog first.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

TARGET_RATIO = 1.2
REPO_ROOT = Path(__file__).resolve().parent.parent


def _hashed(spec: dict[str, Any], partitions: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    tuning = spec["spec"].setdefault("tuningConfig", {"type": "index"})
    tuning["forceGuaranteedRollup"] = True
    tuning["partitionsSpec"] = partitions
    return spec


def run_num_shards(spec: dict[str, Any], *, metadata_url: Optional[str] = None, deep_storage: Optional[str] = None) -> dict[str, Any]:
    from druidflow.tasks.index import run_local

    shards = int(os.environ.get("DRUIDFLOW_BENCH_SHARDS", "3"))
    return run_local(_hashed(spec, {"type": "hashed", "numShards": shards}), metadata_url=metadata_url, deep_storage=deep_storage)


def run_target(spec: dict[str, Any], *, metadata_url: Optional[str] = None, deep_storage: Optional[str] = None) -> dict[str, Any]:
    from druidflow.tasks.index import run_local

    partitions = {"type": "hashed", "targetRowsPerSegment": 300_000}
    return run_local(_hashed(spec, partitions), metadata_url=metadata_url, deep_storage=deep_storage)


def _run_once(mode: str, input_path: Path, fmt: str, work: Path, shards: int) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=work))
    result = out / "result.json"
    env = dict(os.environ, DRUIDFLOW_BENCH_SHARDS=str(shards))
    env["DRUIDFLOW_BENCH_ENTRY"] = "bench.hashed.run_num_shards" if mode == "hashed" else "druidflow.tasks.index.run_local"
    cmd = [sys.executable, "-m", "bench.engines", "druidflow", "--input", str(input_path), "--format", fmt, "--out", str(out), "--result", str(result)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=REPO_ROOT, env=env, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    data: dict[str, Any] = json.loads(result.read_text()) if result.exists() else {"status": "failed", "reason": "no result"}
    if data.get("status") != "ok":
        raise SystemExit(f"{mode} run failed: {data.get('reason')}\n{data.get('traceback', '')}")
    segments = data["report"]["segments"]
    return {"wall_s": data["wall_s"], "cpu_s": cpu_s, "rows": sum(s.get("num_rows", s.get("numRows", 0)) for s in segments), "segments": len(segments)}


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hashed", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1M", help="dataset size: 1M, 5M or an integer (default 1M)")
    parser.add_argument("--format", choices=["csv", "json"], default="csv")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shards", type=int, default=3, help="numShards of the hashed run (default 3)")
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "bench" / "data")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    from bench.generate import dataset_paths, generate, parse_rows

    rows = parse_rows(args.rows)
    generate(rows, args.data, formats=(args.format,), seed=args.seed)
    input_path = dataset_paths(rows, args.data, (args.format,))[args.format].resolve()
    runs: dict[str, list[dict[str, Any]]] = {"dynamic": [], "hashed": []}
    with tempfile.TemporaryDirectory(prefix="bench-hashed-") as work:
        for _ in range(args.repeat):
            for mode in ("dynamic", "hashed"):
                runs[mode].append(_run_once(mode, input_path, args.format, Path(work), args.shards))
    dynamic = statistics.median(r["wall_s"] for r in runs["dynamic"])
    hashed = statistics.median(r["wall_s"] for r in runs["hashed"])
    ratio = hashed / dynamic
    cpu_ratio = statistics.median(r["cpu_s"] for r in runs["hashed"]) / statistics.median(r["cpu_s"] for r in runs["dynamic"])
    same_rows = {r["rows"] for r in runs["dynamic"]} == {r["rows"] for r in runs["hashed"]}
    print(f"{rows:,} {args.format} rows, {args.repeat} runs each (median wall, fresh process each)")
    print(f"  dynamic                 {dynamic:7.2f} s  {runs['dynamic'][0]['segments']} segments, {runs['dynamic'][0]['rows']:,} rows")
    print(f"  hashed numShards={args.shards:<6} {hashed:7.2f} s  {runs['hashed'][0]['segments']} segments, {runs['hashed'][0]['rows']:,} rows")
    verdict = "ok" if ratio <= TARGET_RATIO else "MISSED"
    print(f"  hashed / dynamic        {ratio:7.2f}x  (target <= {TARGET_RATIO}x: {verdict})")
    cpu = {m: statistics.median(r["cpu_s"] for r in runs[m]) for m in runs}
    print(f"  CPU time ratio          {cpu_ratio:7.2f}x  ({cpu['hashed']:.2f} s / {cpu['dynamic']:.2f} s for the whole child process;"
          " steadier than wall time on a loaded machine)")
    if not same_rows:
        # Best-effort rollup may leave a key in two segments when a chunk outgrows maxRowsInMemory.
        print("  note: row totals differ (dynamic is best-effort rollup, hashed perfect)")
    return 0 if ratio <= TARGET_RATIO else 2


if __name__ == "__main__":
    sys.exit(main())
