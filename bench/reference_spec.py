"""The reference job as a Druid ``index`` task (modern form): what every engine in the harness computes.

Rollup at HOUR query granularity over all six dimensions, ``count`` plus ``longSum`` of the three metrics, DAY
segments, dynamic partitioning, LZ4. ``examples/wikipedia-index.json`` is the same job over the bundled sample.
"""

from __future__ import annotations

from pathlib import Path

from bench.columns import DAYS, DIMENSIONS, METRICS

DATA_SOURCE = "wikipedia_bench"
INTERVAL = f"2024-01-01/2024-01-{1 + DAYS:02d}"
INPUT_FORMATS: dict[str, dict[str, str | bool]] = {
    "csv": {"type": "csv", "findColumnsFromHeader": True},
    "json": {"type": "json"},
}


def metrics_spec() -> list[dict]:
    """``count`` plus ``longSum`` of added, deleted and delta (each summing the input column of the same name)."""
    return [{"type": "count", "name": "count"}] + [{"type": "longSum", "name": m, "fieldName": m} for m in METRICS]


def reference_spec(
    input_path: str | Path,
    input_format: str = "csv",
    *,
    max_rows_in_memory: int = 1_000_000,
    data_source: str = DATA_SOURCE,
    intervals: list[str] | None = None,
) -> dict:
    """The reference ``index`` task reading ``input_path`` (a CSV with a header, or JSON lines).

    ``input_path`` becomes a ``local`` inputSource (``baseDir`` = its directory, ``filter`` = its name).
    ``intervals`` defaults to the dataset's 7 days, so no pass over the input is needed to find them.
    """
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format: expected one of {sorted(INPUT_FORMATS)}, got {input_format!r}")
    if max_rows_in_memory <= 0:
        raise ValueError(f"max_rows_in_memory: must be positive, got {max_rows_in_memory!r}")
    path = Path(input_path)
    return {
        "type": "index",
        "spec": {
            "dataSchema": {
                "dataSource": data_source,
                "timestampSpec": {"column": "timestamp", "format": "iso"},
                "dimensionsSpec": {"dimensions": list(DIMENSIONS)},
                "metricsSpec": metrics_spec(),
                "granularitySpec": {
                    "type": "uniform",
                    "segmentGranularity": "DAY",
                    "queryGranularity": "HOUR",
                    "rollup": True,
                    "intervals": list(intervals) if intervals is not None else [INTERVAL],
                },
            },
            "ioConfig": {
                "type": "index",
                "inputSource": {"type": "local", "baseDir": str(path.parent), "filter": path.name},
                "inputFormat": dict(INPUT_FORMATS[input_format]),
                "appendToExisting": False,
            },
            "tuningConfig": {
                "type": "index",
                "maxRowsInMemory": max_rows_in_memory,
                "partitionsSpec": {"type": "dynamic"},
                "indexSpec": {"dimensionCompression": "lz4", "metricCompression": "lz4"},
            },
        },
    }
