"""``druidflow query``: SQL over exactly the rows a Druid query sees (real segments, SQLite/PostgreSQL, local and
S3 deep storage), and the command line as a user runs it."""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pytest

from druidflow.exceptions import QueryError
from druidflow.sql import run_sql
from druidflow.tasks import index
from druidflow.tasks.runtime import Runtime
from tests.tasks.test_index import inline_spec, rows_of, sample_spec
from tests.test_cli import druidflow

# Two days of hourly rows, 10 per hour (480 in all); value v = the hour of the day.
DAYS = "\n".join(
    json.dumps({"ts": f"2024-01-{d:02d}T{h:02d}:{m:02d}:00Z", "d": f"k{m % 3}", "v": h})
    for d in (1, 2) for h in range(24) for m in range(10)
)


@pytest.fixture
def rt(db_url, tmp_path) -> Runtime:
    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")


def _overwrite_hours(rt: Runtime) -> None:
    """A newer HOUR-granularity version over 2024-01-01T06/T08: one row per hour with v = 1000."""
    data = "\n".join(json.dumps({"ts": f"2024-01-01T{h:02d}:30:00Z", "d": "new", "v": 1000}) for h in (6, 7))
    spec = inline_spec(data, intervals=["2024-01-01T06:00/2024-01-01T08:00"])
    spec["spec"]["dataSchema"]["granularitySpec"]["segmentGranularity"] = "HOUR"
    index.run(spec, rt)


def test_sql_sees_exactly_the_visible_rows_of_a_partly_overshadowed_timeline(rt):
    index.run(inline_spec(DAYS, rollup=False), rt)
    _overwrite_hours(rt)
    expected = rows_of(rt, "t")
    got = run_sql(rt.store, rt.storage, 'SELECT COUNT(*) AS n, SUM("count") AS c, SUM(v) AS v FROM t').to_pylist()
    assert got == [{"n": expected.num_rows, "c": pc.sum(expected["count"]).as_py(), "v": pc.sum(expected["v"]).as_py()}]
    # 480 input rows, the 20 of hours 06 and 07 replaced by 2 new ones.
    assert got[0]["n"] == 480 - 20 + 2
    hours = run_sql(rt.store, rt.storage, "SELECT d, v FROM t WHERE __time >= TIMESTAMP '2024-01-01 06:00:00' AND __time < TIMESTAMP '2024-01-01 08:00:00'")
    assert hours.to_pylist() == [{"d": "new", "v": 1000}, {"d": "new", "v": 1000}]


def test_the_druid_tutorial_query_shape_runs_unchanged(rt):
    # Druid's "Querying data" tutorial (docs/tutorials/tutorial-query.md), pointed at the bundled sample's dates.
    index.run(sample_spec(), rt)
    sql = """
        SELECT page, COUNT(*) AS Edits
        FROM wikipedia
        WHERE "__time" BETWEEN TIMESTAMP '2024-01-02 00:00:00' AND TIMESTAMP '2024-01-03 00:00:00'
        GROUP BY page ORDER BY Edits DESC LIMIT 10
    """
    top = run_sql(rt.store, rt.storage, sql).to_pylist()
    assert len(top) == 10 and top[0]["Edits"] >= top[-1]["Edits"]
    day = rows_of(rt, "wikipedia", "2024-01-02/2024-01-03T00:00:00.001")
    counts = pc.value_counts(day["page"]).to_pylist()
    assert top[0]["Edits"] == max(c["counts"] for c in counts)
    qualified = run_sql(rt.store, rt.storage, 'SELECT COUNT(*) AS n FROM druid."wikipedia"').to_pylist()
    assert qualified == [{"n": rows_of(rt, "wikipedia").num_rows}]


def test_time_literals_are_utc_as_in_druid_sql(tmp_path, sqlite_url):
    import os

    rt = Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), tmp_path / "work")
    index.run(inline_spec(DAYS, rollup=False), rt)
    # A user in New York: DuckDB's session zone would follow TZ and shift the window by five hours.
    env = dict(os.environ, DRUIDFLOW_METADATA_URL=sqlite_url, DRUIDFLOW_DEEP_STORAGE=str(tmp_path / "deep"), TZ="America/New_York")
    sql = "SELECT COUNT(*) AS n, MIN(v) AS h FROM t WHERE __time >= TIMESTAMP '2024-01-01 23:00:00' AND __time < TIMESTAMP '2024-01-02 00:00:00'"
    out = druidflow("query", sql, "--format", "json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"n": 10, "h": 23}


def test_errors_name_what_is_wrong(rt):
    index.run(inline_spec(DAYS), rt)
    with pytest.raises(QueryError, match="no used segments for dataSource 'nope'"):
        run_sql(rt.store, rt.storage, "SELECT * FROM nope")
    with pytest.raises(QueryError, match="not valid SQL"):
        run_sql(rt.store, rt.storage, "SELEC 1")
    with pytest.raises(QueryError, match="missing_column"):
        run_sql(rt.store, rt.storage, "SELECT missing_column FROM t")


def test_segments_on_s3_are_queried_too(db_url, tmp_path, s3_server):
    bucket = s3_server.make_bucket()
    rt = Runtime.from_urls(db_url, f"s3://{bucket}/segments", tmp_path / "work", **s3_server.options)
    index.run(inline_spec(DAYS, rollup=False), rt)
    assert run_sql(rt.store, rt.storage, "SELECT COUNT(*) AS n FROM t").to_pylist() == [{"n": 480}]


def test_cli_prints_a_table_json_and_one_line_errors(tmp_path, sqlite_url):
    import os

    env = dict(os.environ, DRUIDFLOW_METADATA_URL=sqlite_url, DRUIDFLOW_DEEP_STORAGE=str(tmp_path / "deep"))
    assert druidflow("run", "examples/wikipedia-index.json", env=env).returncode == 0
    table = druidflow("query", 'SELECT COUNT(*) AS n, MIN(__time) AS first FROM wikipedia', env=env)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["n", "first"]
    assert table.stdout.splitlines()[2].split() == ["16000", "2024-01-01T00:00:00.000Z"]
    lines = druidflow("query", "SELECT page FROM wikipedia ORDER BY page LIMIT 2", "--format", "json", env=env)
    assert [set(json.loads(line)) for line in lines.stdout.splitlines()] == [{"page"}, {"page"}]
    bad = druidflow("query", "SELECT * FROM nope", env=env)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "nope" in bad.stderr
