"""Druid SQL's sketch functions for ``druidflow query``, as DuckDB functions over the segments' sketch columns.

Aggregates (they union the sketches of the rows they see, across segments, then finish):
``APPROX_COUNT_DISTINCT_DS_THETA(x)``, ``APPROX_COUNT_DISTINCT_DS_HLL(x)``, ``APPROX_QUANTILE_DS(x, fraction)`` (each
also counts or ranks a raw column, building the sketch from its values, as Druid's do), ``DS_THETA(x)``, ``DS_HLL(x)``,
``DS_QUANTILES_SKETCH(x)`` (the unioned sketch itself). Scalars: ``THETA_SKETCH_ESTIMATE(s)``,
``HLL_SKETCH_ESTIMATE(s [, round])``, ``DS_GET_QUANTILE(s, fraction)``.

DuckDB runs no Python aggregate functions, so each aggregate is a macro over ``list(x)`` and a vectorised Python
scalar; a macro takes no ``FILTER`` clause: write ``DS_THETA(CASE WHEN cond THEN theta_uid END)`` instead.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from druidflow import sketches
from druidflow.exceptions import SpecError


def _each(fn: Any, *cols: pa.Array) -> list[Any]:
    lists = [c.to_pylist() for c in cols]
    return [fn(*vals) for vals in zip(*lists)]


def _union(col: pa.Array) -> pa.Array:
    return pa.array(_each(sketches.union_any, col), pa.binary())


def _estimate(col: pa.Array) -> pa.Array:
    return pa.array(_each(sketches.estimate, col), pa.float64())


def _quantile(col: pa.Array, fractions: pa.Array) -> pa.Array:
    return pa.array(_each(sketches.quantile, col, fractions), pa.float64())


def _raw(family: sketches.Family) -> Any:
    spec = sketches.SketchSpec(family, lg_k=14 if family == "theta" else 12, hll_type="HLL_8")

    def build(col: pa.Array) -> pa.Array:
        out: list[bytes | None] = []
        for values in col.to_pylist():
            sketch = sketches.build_one(spec, values)
            out.append(sketch)
        return pa.array(out, pa.binary())

    return build


def register(con: Any, duckdb: Any) -> bool:
    """Create the functions on ``con``; False (nothing created) when the DataSketches library is not installed."""
    try:
        sketches.library()
    except SpecError:
        return False
    from duckdb.sqltypes import BLOB, DOUBLE, VARCHAR

    blobs, texts, doubles = duckdb.list_type(BLOB), duckdb.list_type(VARCHAR), duckdb.list_type(DOUBLE)
    con.create_function("__df_union", _union, [blobs], BLOB, type="arrow")
    con.create_function("__df_estimate", _estimate, [BLOB], DOUBLE, type="arrow")
    con.create_function("__df_quantile", _quantile, [BLOB, DOUBLE], DOUBLE, type="arrow")
    con.create_function("__df_theta_of", _raw("theta"), [texts], BLOB, type="arrow")
    con.create_function("__df_hll_of", _raw("hll"), [texts], BLOB, type="arrow")
    con.create_function("__df_quantiles_of", _raw("quantiles"), [doubles], BLOB, type="arrow")

    def sketch_of(family: str, cast: str) -> str:
        # Sketch columns (BLOB) are unioned; any other column is a raw column whose values are sketched.
        return (f"CASE WHEN typeof(any_value(x)) = 'BLOB' THEN __df_union(list(x::BLOB)) "
                f"ELSE __df_{family}_of(list({cast})) END")

    theta, hll = sketch_of("theta", "x::VARCHAR"), sketch_of("hll", "x::VARCHAR")
    quantiles = sketch_of("quantiles", "TRY_CAST(x AS DOUBLE)")
    for sql in (
        f"CREATE MACRO DS_THETA(x) AS {theta}",
        f"CREATE MACRO DS_HLL(x) AS {hll}",
        f"CREATE MACRO DS_QUANTILES_SKETCH(x) AS {quantiles}",
        f"CREATE MACRO APPROX_COUNT_DISTINCT_DS_THETA(x) AS __df_estimate({theta})",
        f"CREATE MACRO APPROX_COUNT_DISTINCT_DS_HLL(x) AS __df_estimate({hll})",
        f"CREATE MACRO APPROX_QUANTILE_DS(x, fraction) AS __df_quantile({quantiles}, fraction)",
        "CREATE MACRO THETA_SKETCH_ESTIMATE(s) AS __df_estimate(s)",
        ("CREATE MACRO HLL_SKETCH_ESTIMATE(s, round := false) AS "
         "CASE WHEN round THEN round(__df_estimate(s)) ELSE __df_estimate(s) END"),
        "CREATE MACRO DS_GET_QUANTILE(s, fraction) AS __df_quantile(s, fraction)",
    ):
        con.execute(sql)
    return True
