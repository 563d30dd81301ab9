"""``druidflow query SQL``: SQL over the visible timeline (see :mod:`druidflow.sql`), printed as a table, CSV or
JSON lines."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


def register(sub: Any) -> None:
    p = sub.add_parser(
        "query",
        help="run SQL over the visible segments (DuckDB; e.g. SELECT page, COUNT(*) FROM wikipedia GROUP BY 1)",
    )
    p.add_argument("sql", help="the query; dataSources are tables (also as druid.<name>), __time is UTC")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format (default: table)")
    p.set_defaults(func=cmd_query)


def _printable(table: pa.Table) -> pa.Table:
    """Timestamps as Druid prints them (``2015-09-12T00:00:00.000Z``: Arrow's ``%S`` carries the milliseconds)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            col = table.column(i).cast(pa.timestamp("ms", tz="UTC"))
            table = table.set_column(i, field.name, pc.strftime(col, format="%Y-%m-%dT%H:%M:%SZ").cast(pa.string()))
    return table


def cmd_query(args: argparse.Namespace) -> int:
    from druidflow.cli import _runtime, _table
    from druidflow.sql import run_sql

    rt = _runtime(args)
    result = _printable(run_sql(rt.store, rt.storage, args.sql))
    rows = result.to_pylist()
    if args.format == "json":
        for row in rows:
            sys.stdout.write(json.dumps(row, default=str) + "\n")
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.column_names)
        writer.writerows([list(r.values()) for r in rows])
    else:
        _table(result.column_names, [["" if v is None else v for v in r.values()] for r in rows])
    return 0
