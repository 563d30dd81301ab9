"""Array and apply expressions over a list column, next to DuckDB's list lambdas and polars' list operations.

``python -m bench.expressions [--rows 200000] [--repeat 3]`` builds a list<int64> column (0 to 9 elements a row,
deterministic), evaluates each Druid expression with Druidflow and the equivalent DuckDB SQL and polars
expression in the same process, checks that Druidflow and DuckDB agree, and prints the best time of each and
Druidflow's ratio to each peer. Absolute times are noisy on a shared machine; read the ratios.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from druidflow.expressions import compile_expression

if TYPE_CHECKING:
    import duckdb

CASES: list[tuple[str, str, Callable[[Any, Any], Any]]] = [
    ("map((x) -> x * 2 + 1, v)", "SELECT list_transform(v, lambda x: x * 2 + 1) AS r FROM t",
     lambda pl, df: df.select(pl.col("v").list.eval(pl.element() * 2 + 1))),
    ("filter((x) -> x > 50, v)", "SELECT list_filter(v, lambda x: x > 50) AS r FROM t",
     lambda pl, df: df.select(pl.col("v").list.eval(pl.element().filter(pl.element() > 50)))),
    ("fold((x, acc) -> acc + x, v, 0)", "SELECT list_reduce(list_prepend(0, v), lambda acc, x: acc + x) AS r FROM t",
     lambda pl, df: df.select(pl.col("v").list.sum())),
    ("array_contains(v, 7)", "SELECT list_contains(v, 7)::BIGINT AS r FROM t",
     lambda pl, df: df.select(pl.col("v").list.contains(7))),
]


def _best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _duckdb_query(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    return con.sql(sql).to_arrow_table()


def main() -> None:
    import duckdb
    import polars as pl

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    lengths = rng.integers(0, 10, args.rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    table = pa.table({"v": pa.ListArray.from_arrays(pa.array(offsets), pa.array(rng.integers(0, 100, int(offsets[-1]))))})
    con = duckdb.connect()
    con.register("t", table)
    df = pl.from_arrow(table)
    print(f"{args.rows} rows, {int(offsets[-1])} elements")
    for expression, sql, polars_fn in CASES:
        compiled = compile_expression(expression)
        ours = compiled.evaluate(table).to_pylist()
        theirs = con.sql(sql).to_arrow_table().column("r").to_pylist()
        # DuckDB's list_filter keeps an empty list where Druid's filter gives null (no element matched)
        theirs = [None if expression.startswith("filter") and r == [] else r for r in theirs]
        if ours != theirs:
            raise SystemExit(f"{expression}: Druidflow and DuckDB disagree")
        t_ours = _best(partial(compiled.evaluate, table), args.repeat)
        t_duck = _best(partial(_duckdb_query, con, sql), args.repeat)
        t_polars = _best(partial(polars_fn, pl, df), args.repeat)
        print(f"{expression:34s} druidflow {t_ours * 1000:7.1f} ms | duckdb {t_duck * 1000:7.1f} ms "
              f"({t_ours / t_duck:4.1f}x) | polars {t_polars * 1000:7.1f} ms ({t_ours / t_polars:4.1f}x)")


if __name__ == "__main__":
    main()
