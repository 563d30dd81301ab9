"""Hashed partitioning on the reference job, for the harness's ``DRUIDFLOW_BENCH_ENTRY``.

    DRUIDFLOW_BENCH_ENTRY=bench.hashed.run_num_shards python -m bench.run --rows 5M --engines druidflow,duckdb
    DRUIDFLOW_BENCH_ENTRY=bench.hashed.run_target     python -m bench.run --rows 5M --engines druidflow,duckdb

``run_num_shards``: perfect rollup into 3 hash shards per day (intervals given, so no determine pass).
``run_target``: perfect rollup with ``targetRowsPerSegment`` 300,000, so a determine pass estimates each day's
distinct rows with HyperLogLog first. Both keep the reference job's output, so the agreement check still applies.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

from druidflow.tasks.index import run_local


def _hashed(spec: dict[str, Any], partitions: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    tuning = spec["spec"].setdefault("tuningConfig", {"type": "index"})
    tuning["forceGuaranteedRollup"] = True
    tuning["partitionsSpec"] = partitions
    return spec


def run_num_shards(spec: dict[str, Any], *, metadata_url: Optional[str] = None, deep_storage: Optional[str] = None) -> dict[str, Any]:
    return run_local(_hashed(spec, {"type": "hashed", "numShards": 3}), metadata_url=metadata_url, deep_storage=deep_storage)


def run_target(spec: dict[str, Any], *, metadata_url: Optional[str] = None, deep_storage: Optional[str] = None) -> dict[str, Any]:
    partitions = {"type": "hashed", "targetRowsPerSegment": 300_000}
    return run_local(_hashed(spec, partitions), metadata_url=metadata_url, deep_storage=deep_storage)
