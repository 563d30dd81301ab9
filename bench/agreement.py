"""Do the engines' outputs mean the same thing? Per-day row counts and metric totals, read back from Parquet.

A *summary* is ``{"rolled_up": bool, "days": {"2024-01-01": {"rows", "count", "added", "deleted", "delta"}}}``.
Rolled-up outputs (Druidflow's segments, the peers' files) carry a ``count`` column and must agree on every field.
A raw output (the floor: no rollup, no ``count``) counts one per row, and must agree on the totals only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.columns import METRICS, MS_PER_DAY

FIELDS = ("rows", "count", *METRICS)
TOTALS = ("count", *METRICS)
_UNITS_PER_MS = {"ms": 1, "us": 1000, "ns": 1_000_000}


def epoch_ms(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A timestamp (any unit or zone) or integer-milliseconds column as int64 epoch milliseconds."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        raw = column.cast(pa.int64()).to_numpy()
        return raw * 1000 if kind.unit == "s" else raw // _UNITS_PER_MS[kind.unit]
    if pa.types.is_integer(kind):
        return column.cast(pa.int64()).to_numpy()
    raise TypeError(f"time column has type {kind}; expected a timestamp or integer milliseconds")


def summarize(root: str | Path) -> dict:
    """The per-day summary of every Parquet file under ``root`` (searched recursively).

    The time column is ``__time`` when present, else ``timestamp``; the output counts as rolled up when it has a
    ``count`` column.
    """
    files = sorted(Path(root).rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files under {root}")
    days: dict[str, dict[str, int]] = {}
    rolled_up: set[bool] = set()
    for path in files:
        names = pq.read_schema(path).names
        time_column = "__time" if "__time" in names else "timestamp"
        has_count = "count" in names
        rolled_up.add(has_count)
        table = pq.read_table(path, columns=[time_column, *(["count"] if has_count else []), *METRICS])
        day = epoch_ms(table.column(time_column)) // MS_PER_DAY
        per_day = pa.table(
            {
                "day": day,
                "count": table.column("count").cast(pa.int64()) if has_count else pa.repeat(1, len(day)).cast(pa.int64()),
                **{m: table.column(m).cast(pa.int64()) for m in METRICS},
            }
        ).group_by("day").aggregate([("day", "count"), *[(c, "sum") for c in TOTALS]])
        for row in per_day.to_pylist():  # one row per day: a handful
            entry = days.setdefault(str(np.datetime64(row["day"], "D")), dict.fromkeys(FIELDS, 0))
            entry["rows"] += row["day_count"]
            for field in TOTALS:
                entry[field] += row[f"{field}_sum"]
    if len(rolled_up) > 1:
        raise ValueError(f"{root}: some files have a count column and some do not")
    return {"rolled_up": rolled_up.pop(), "days": dict(sorted(days.items()))}


def total(summary: Mapping, field: str = "count") -> int:
    """A field summed over all days."""
    return sum(day[field] for day in summary["days"].values())


def check_agreement(summaries: Mapping[str, Mapping], expected_rows: int | None = None) -> list[str]:
    """What differs between the summaries, as readable lines; empty when they all agree.

    Each summary is compared with a reference: Druidflow's when present, else the first rolled-up one. With
    ``expected_rows``, each output's total ``count`` must also equal the number of input rows.
    """
    problems: list[str] = []
    if expected_rows is not None:
        for name, summary in summaries.items():
            if (got := total(summary)) != expected_rows:
                problems.append(f"{name}: total count {got:,} but the input has {expected_rows:,} rows")
    if len(summaries) < 2:
        return problems
    rolled = [name for name, s in summaries.items() if s["rolled_up"]]
    reference = "druidflow" if "druidflow" in rolled else (rolled[0] if rolled else next(iter(summaries)))
    ref = summaries[reference]
    for name, summary in summaries.items():
        if name == reference:
            continue
        fields = FIELDS if (summary["rolled_up"] and ref["rolled_up"]) else TOTALS
        for day in sorted(set(ref["days"]) | set(summary["days"])):
            a, b = ref["days"].get(day), summary["days"].get(day)
            if a is None or b is None:
                problems.append(f"{day}: present in {reference if b is None else name} only")
                continue
            for field in fields:
                if a[field] != b[field]:
                    problems.append(f"{day} {field}: {reference}={a[field]:,} {name}={b[field]:,}")
    return problems
