"""SQL over the visible timeline: ``druidflow query "SELECT ... FROM wikipedia WHERE __time >= ..."``.

Each dataSource the query names becomes a DuckDB view of exactly what a Druid query sees: the used segments of
complete, highest-version partition sets, and a partly overshadowed segment only on the part of its interval still
visible. Segment files are read where they lie (DuckDB prunes row groups by the ``__time`` statistics every segment
carries), so a query on one day of a year-long dataSource reads one day. ``__time`` is a ``TIMESTAMP WITH TIME
ZONE`` and the session's time zone is UTC, as in Druid SQL, so ``TIMESTAMP '2015-09-12 00:00:00'`` means UTC.
``druid.<name>`` works too (Druid SQL's schema).

Druid SQL's sketch functions (``APPROX_COUNT_DISTINCT_DS_THETA``, ``THETA_SKETCH_ESTIMATE``, ``DS_GET_QUANTILE``...)
are defined when the ``sketches`` extra is installed (:mod:`druidflow.sql_sketches`).

DuckDB is an optional dependency (the ``query`` extra).
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import pyarrow as pa

from druidflow.exceptions import QueryError
from druidflow.intervals import format_instant
from druidflow.metadata.store import MetadataStore
from druidflow.storage import DeepStorage

DRUID_SCHEMA = "druid"


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise QueryError("druidflow query needs DuckDB: pip install 'druidflow[query]'") from exc
    return duckdb


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _view_sql(parts: list[tuple[str, str | None]]) -> str:
    """One SELECT per visible piece: the whole file, or only the rows inside the part of it still visible."""
    selects = []
    for path, window in parts:
        select = f"SELECT * FROM read_parquet({_literal(path)})"
        selects.append(select if window is None else f"{select} WHERE {window}")
    return " UNION ALL BY NAME ".join(selects)


def run_sql(store: MetadataStore, storage: DeepStorage, sql: str) -> pa.Table:
    """Run ``sql`` over the visible timelines of the dataSources it names; the result as an Arrow table."""
    from druidflow.sql_sketches import register

    duckdb = _duckdb()
    con = duckdb.connect()
    register(con, duckdb)
    try:
        referenced = con.get_table_names(sql)
    except duckdb.Error as exc:
        con.close()
        raise QueryError(f"not valid SQL: {_first_line(exc)}") from exc
    known = set(store.datasources(used_only=True))
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE SCHEMA {DRUID_SCHEMA}")
    with ExitStack() as files:
        for name in sorted(referenced & known):
            parts = _visible_parts(store, storage, name, files)
            # A dataSource whose every segment is a tombstone has no rows and no columns beyond __time.
            body = _view_sql(parts) if parts else "SELECT CAST(NULL AS TIMESTAMPTZ) AS __time WHERE false"
            for qualified in (_quote(name), f"{DRUID_SCHEMA}.{_quote(name)}"):
                con.execute(f"CREATE VIEW {qualified} AS {body}")
        try:
            relation = con.sql(sql)
            return relation.to_arrow_table() if relation is not None else pa.table({})
        except duckdb.CatalogException as exc:
            missing = sorted(referenced - known)
            hint = f" (no used segments for dataSource {', '.join(map(repr, missing))}; `druidflow segments` lists them)" if missing else ""
            raise QueryError(f"{_first_line(exc)}{hint}") from exc
        except duckdb.Error as exc:
            raise QueryError(_first_line(exc)) from exc
        finally:
            con.close()


def _visible_parts(store: MetadataStore, storage: DeepStorage, name: str, files: ExitStack) -> list[tuple[str, str | None]]:
    parts: list[tuple[str, str | None]] = []
    for entry in store.timeline(name).visible():  # only the visible sets' payloads are read
        window = None
        if entry.interval != entry.true_interval:
            window = (
                f"__time >= TIMESTAMPTZ {_literal(format_instant(entry.interval.start))} "
                f"AND __time < TIMESTAMPTZ {_literal(format_instant(entry.interval.end))}"
            )
        for segment in entry.segments:
            if not segment.is_tombstone:
                parts.append((str(files.enter_context(storage.open_local(segment.load_spec))), window))
    return parts


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
