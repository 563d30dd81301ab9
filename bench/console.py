"""The console's page queries on a busy dataSource: 100k segments (hourly chunks, overwritten and incomplete sets,
as in :mod:`bench.metadata`), 20k tasks, and what each page asks the database, timed.

``measure(url) -> dict`` seeds a fresh database and returns ``{page: seconds}`` (best of a few runs) plus, on
SQLite, each page query's plan. ``python -m bench.console [URL]`` prints them; without a URL it uses a temporary
SQLite file. The tests in ``tests/airflow/test_console_speed.py`` call the same functions.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from druidflow.airflow.console import queries as q
from druidflow.airflow.console.timeline_view import timeline_window
from druidflow.intervals import MS_DAY, format_instant
from druidflow.metadata.store import MetadataStore
from druidflow.metadata.tables import segments, tasks

SEGMENTS = 100_000
TASKS = 20_000
DS = "bench"
RUNS = 3


def seed(url: str, segments: int = SEGMENTS, n_tasks: int = TASKS) -> MetadataStore:
    """A migrated database with ``segments`` segments of ``bench`` and ``n_tasks`` tasks."""
    from bench.metadata import make_segments

    store = MetadataStore(url)
    store.migrate()
    store.publish_segments(make_segments(segments, DS))
    rows = []
    for i in range(n_tasks):
        created = format_instant(1_700_000_000_000 + i * 1000)
        status = ("SUCCESS", "FAILED", "RUNNING")[i % 3]
        rows.append({
            "id": f"index_{DS}_{i:06d}", "type": ("index", "compact", "kill")[i % 3 if i % 7 else 0],
            "dataSource": DS if i % 2 else "other", "group_id": f"g{i}", "status": status,
            "active": status == "RUNNING", "payload": json.dumps({"type": "index", "padding": "x" * 2000}),
            "status_payload": json.dumps({"id": str(i), "status": status, "duration": 1234}), "report": None,
            "error_msg": None, "created_date": created, "updated_date": created,
        })
    with store.engine.begin() as conn:
        conn.execute(tasks.insert(), rows)
    return store


def _extent(conn: sa.Connection) -> tuple[int, int]:
    extent = q.datasource_extent(conn, DS)
    if extent is None:
        raise RuntimeError(f"{DS}: no segments seeded")
    return extent


def pages(store: MetadataStore) -> dict[str, Callable[[], Any]]:
    """Each page's database work, as the console's routes do it."""
    engine = store.engine
    with engine.connect() as conn:
        start, end = _extent(conn)
        some = conn.execute(sa.select(segments.c.start_ms, segments.c.end_ms, segments.c.version)
                            .where(segments.c.dataSource == DS).limit(1)).one()

    def run(fn: Callable[[sa.Connection], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with engine.connect() as conn:
                return fn(conn)
        return call

    return {
        "datasources": run(q.datasource_summaries),
        "timeline, whole extent (density)": run(lambda c: timeline_window(c, DS, None, None)),
        "timeline, one month (sets)": run(lambda c: timeline_window(c, DS, start, start + 30 * MS_DAY)),
        "chunk segments, one page": run(lambda c: q.chunk_segments(c, DS, some[0], some[1], some[2], offset=0, limit=50)),
        "chunk writers": run(lambda c: q.writer_tasks(c, DS, some[2])),
        "tasks, newest page": run(lambda c: q.task_page(c, limit=50)),
        "tasks, filtered (type+status+dataSource), page 10": run(
            lambda c: q.task_page(c, data_source=DS, task_type="compact", status="FAILED", offset=450, limit=50)),
        "task types": run(q.task_types),
        "task detail": run(lambda c: q.task_detail(c, f"index_{DS}_000001")),
    }


def timed(fn: Callable[[], Any], runs: int = RUNS) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def sqlite_plans(store: MetadataStore) -> dict[str, list[str]]:
    """SQLite's plan for the page queries that touch the big tables: every step must use an index."""
    with store.engine.connect() as conn:
        start, end = _extent(conn)
    statements = {
        "datasources": (
            "SELECT dataSource, used, count(*), sum(num_rows), sum(size), min(start_ms), max(end_ms) "
            "FROM druidflow_segments GROUP BY dataSource, used", {}),
        "timeline sets": (
            "SELECT start_ms, end_ms, version, used, count(*), sum(size), sum(num_rows), min(partition_num), "
            "max(partition_num) FROM druidflow_segments WHERE dataSource = :ds AND used IN (0, 1) AND start_ms < :e "
            "AND end_ms > :s "
            "GROUP BY used, start_ms, end_ms, version ORDER BY used, start_ms, end_ms, version LIMIT 2001",
            {"ds": DS, "s": start, "e": start + 30 * MS_DAY}),
        "tasks page": ("SELECT id FROM druidflow_tasks ORDER BY created_date DESC, id DESC LIMIT 51", {}),
        "tasks by status": ("SELECT id FROM druidflow_tasks WHERE status = 'FAILED' ORDER BY created_date DESC LIMIT 51", {}),
        "tasks by type": ("SELECT id FROM druidflow_tasks WHERE type = 'compact' ORDER BY created_date DESC LIMIT 51", {}),
    }
    out = {}
    with store.engine.connect() as conn:
        for name, (sql, params) in statements.items():
            out[name] = [str(r[-1]) for r in conn.execute(sa.text("EXPLAIN QUERY PLAN " + sql), params)]
    return out


def measure(url: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    store = seed(url)
    seeded = time.perf_counter() - t0
    result: dict[str, Any] = {"seed_seconds": round(seeded, 1),
                              "pages": {name: round(timed(fn), 4) for name, fn in pages(store).items()}}
    if store.engine.dialect.name == "sqlite":
        result["sqlite_plans"] = sqlite_plans(store)
    return result


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        url = argv[1]
    else:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='druidflow-console-bench-')}/metadata.db"
    result = measure(url)
    print(f"{SEGMENTS:,} segments, {TASKS:,} tasks on {url.split(':')[0]} (seeded in {result['seed_seconds']} s)")
    for name, seconds in result["pages"].items():
        print(f"  {name:<52} {seconds * 1000:8.1f} ms")
    for name, plan in result.get("sqlite_plans", {}).items():
        print(f"  plan {name}: {' | '.join(plan)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
