"""The sketch aggregators (thetaSketch, HLLSketchBuild/HLLSketchMerge, quantilesDoublesSketch, hyperUnique,
cardinality): parsed with Druid's fields and defaults, built per rollup group at ingestion, unioned by every re-rollup
(intermediate persists, compaction, merge, a segment read back as input) and estimated by druidflow read/query."""

from __future__ import annotations

import base64
import json
import sys

import datasketches as ds
import numpy as np
import pyarrow as pa
import pytest

from druidflow import sketches
from druidflow.aggregators import parse_aggregator, parse_metrics_spec
from druidflow.exceptions import SpecError
from druidflow.query import visible_rows
from druidflow.specs.tasks import parse_task
from druidflow.sql import run_sql
from druidflow.tasks import compact, index
from druidflow.tasks.dispatch import run_task
from druidflow.tasks.runtime import Runtime

# Druid's "Approximations with Theta sketches" tutorial (docs/tutorials/tutorial-sketches-theta.md, the final spec of
# its "Ingest data using Theta sketches" section), retyped.
TUTORIAL_DATA = (
    "date,uid,show,episode\n2022-05-19,alice,Game of Thrones,S1E1\n2022-05-19,alice,Game of Thrones,S1E2\n"
    "2022-05-19,alice,Game of Thrones,S1E1\n2022-05-19,bob,Bridgerton,S1E1\n2022-05-20,alice,Game of Thrones,S1E1\n"
    "2022-05-20,carol,Bridgerton,S1E2\n2022-05-20,dan,Bridgerton,S1E1\n2022-05-21,alice,Game of Thrones,S1E1\n"
    "2022-05-21,carol,Bridgerton,S1E1\n2022-05-21,erin,Game of Thrones,S1E1\n2022-05-21,alice,Bridgerton,S1E1\n"
    "2022-05-22,bob,Game of Thrones,S1E1\n2022-05-22,bob,Bridgerton,S1E1\n2022-05-22,carol,Bridgerton,S1E2\n"
    "2022-05-22,bob,Bridgerton,S1E1\n2022-05-22,erin,Game of Thrones,S1E1\n2022-05-22,erin,Bridgerton,S1E2\n"
    "2022-05-23,erin,Game of Thrones,S1E1\n2022-05-23,alice,Game of Thrones,S1E1"
)
TUTORIAL_SPEC = {
    "type": "index_parallel",
    "spec": {
        "ioConfig": {
            "type": "index_parallel",
            "inputSource": {"type": "inline", "data": TUTORIAL_DATA},
            "inputFormat": {"type": "csv", "findColumnsFromHeader": True},
        },
        "tuningConfig": {"type": "index_parallel", "partitionsSpec": {"type": "hashed"}, "forceGuaranteedRollup": True},
        "dataSchema": {
            "dataSource": "ts_tutorial",
            "timestampSpec": {"column": "date", "format": "auto"},
            "dimensionsSpec": {"dimensions": ["show", "episode"]},
            "granularitySpec": {"queryGranularity": "day", "rollup": True, "segmentGranularity": "day"},
            "metricsSpec": [{"name": "count", "type": "count"}, {"type": "thetaSketch", "name": "theta_uid", "fieldName": "uid"}],
        },
    },
}

# The aggregator forms of Druid's docs, retyped: datasketches-theta.md, datasketches-hll.md, datasketches-quantiles.md
# (with their documented defaults spelt out) and querying/hll-old.md (hyperUnique, cardinality).
DOC_FORMS = [
    {"type": "thetaSketch", "name": "theta", "fieldName": "user", "isInputThetaSketch": False, "size": 16384},
    {"type": "HLLSketchBuild", "name": "hll", "fieldName": "user", "lgK": 12, "tgtHllType": "HLL_4", "round": False},
    {"type": "quantilesDoublesSketch", "name": "q", "fieldName": "v", "k": 128},
    {"type": "hyperUnique", "name": "hu", "fieldName": "user", "isInputHyperUnique": False, "round": False},
    {"type": "cardinality", "name": "card", "fields": ["user", "d"], "byRow": False, "round": False},
]
METRICS = [{"type": "count", "name": "count"}, *DOC_FORMS,
           {"type": "cardinality", "name": "pairs", "fields": ["user", "d"], "byRow": True}]


@pytest.fixture
def rt(db_url, tmp_path) -> Runtime:
    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")


def spec(rows: list[dict], *, ds_name: str = "s", metrics=METRICS, query: str = "DAY", rollup: bool = True,
         append: bool = True, tuning: dict | None = None, dims=("d",)) -> dict:
    out = {
        "type": "index",
        "spec": {
            "dataSchema": {
                "dataSource": ds_name,
                "timestampSpec": {"column": "ts", "format": "iso"},
                "dimensionsSpec": {"dimensions": list(dims)},
                "metricsSpec": metrics,
                "granularitySpec": {"segmentGranularity": "DAY", "queryGranularity": query, "rollup": rollup,
                                    "intervals": ["2024-01-01/2024-01-02"]},
            },
            "ioConfig": {"type": "index", "inputSource": {"type": "inline", "data": "\n".join(json.dumps(r) for r in rows)},
                         "inputFormat": {"type": "json"}, "appendToExisting": append},
        },
    }
    if tuning:
        out["spec"]["tuningConfig"] = {"type": "index", **tuning}
    return out


def events(users: range, *, hour: int = 0) -> list[dict]:
    """One event per user, all of dimension ``d`` = "k", with value v = the user number."""
    return [{"ts": f"2024-01-01T{hour:02d}:{i % 60:02d}:00Z", "d": "k", "user": f"u{i}", "v": float(i)} for i in users]


def rows(rt: Runtime, name: str = "s") -> list[dict]:
    return pa.Table.from_batches(list(visible_rows(rt.store, rt.storage, name))).to_pylist()


def near(estimate: float, exact: int, rse: float) -> bool:
    """Within 4 relative standard errors of the exact count (the sketches' documented error bounds)."""
    return abs(estimate - exact) <= 4 * rse * exact


# Relative standard errors: theta 1/sqrt(k); HLL about 1.04/sqrt(2^lgK) (hyperUnique's stand-in: lgK 11).
THETA_RSE, HLL_RSE, HU_RSE = 1 / np.sqrt(16384), 1.04 / np.sqrt(4096), 1.04 / np.sqrt(2048)


# ------------------------------------------------------------------------------------------ parsing


def test_druid_doc_forms_parse_with_druids_defaults():
    theta, hll, q, hu, card = parse_metrics_spec(DOC_FORMS)
    assert parse_aggregator({"type": "thetaSketch", "name": "t", "fieldName": "u"}) == theta.model_copy(update={"name": "t", "field_name": "u"})
    assert (theta.size, theta.should_finalize, theta.is_input_theta_sketch) == (16384, True, False)
    bare = parse_aggregator({"type": "HLLSketchBuild", "name": "hll", "fieldName": "user"})
    assert (bare.lg_k, bare.tgt_hll_type, bare.round, bare.should_finalize) == (12, "HLL_4", False, True)
    assert parse_aggregator({**DOC_FORMS[1], "stringEncoding": "utf8"}).string_encoding == "utf8"
    assert parse_aggregator({"type": "quantilesDoublesSketch", "name": "q", "fieldName": "v"}).k == 128
    # Druid's combining factories: HLLSketchBuild merges as HLLSketchMerge, cardinality as a hyperUnique of itself.
    assert hll.combining().type == "HLLSketchMerge" and card.combining().type == "hyperUnique"
    assert all(a.combining().combining() == a.combining() for a in (theta, hll, q, hu, card))


@pytest.mark.parametrize(
    "bad, path",
    [
        ({"type": "thetaSketch", "name": "t", "fieldName": "u", "size": 1000}, "size"),
        ({"type": "HLLSketchBuild", "name": "h", "fieldName": "u", "lgK": 22}, "lgK"),
        ({"type": "HLLSketchMerge", "name": "h", "fieldName": "u", "tgtHllType": "HLL_5"}, "tgtHllType"),
        ({"type": "quantilesDoublesSketch", "name": "q", "fieldName": "v", "k": 100}, "k"),
        ({"type": "hyperUnique", "name": "h", "fieldName": "u", "isInputHyperUnique": True}, "isInputHyperUnique"),
        ({"type": "cardinality", "name": "c", "fields": [{"type": "extraction", "dimension": "d"}]}, "fields[0]"),
        ({"type": "cardinality", "name": "c", "fields": []}, "fields"),
        ({"type": "thetaSketch", "name": "t", "fieldName": "u", "errorBoundsStdDev": 2}, "errorBoundsStdDev"),
        ({"type": "thetaSketch", "name": "t"}, "fieldName"),
        ({"type": "HLLSketchBuild", "name": "h", "fieldName": "u", "stringEncoding": "utf16le"}, "stringEncoding"),
    ],
)
def test_bad_fields_are_refused_by_name(bad, path):
    with pytest.raises(SpecError) as err:
        parse_metrics_spec([bad])
    assert err.value.path == f"metricsSpec[0].{path}"


def test_without_the_extra_a_spec_fails_at_submit_naming_the_aggregator_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasketches", None)  # as if not installed: importing it raises ImportError
    with pytest.raises(SpecError) as err:
        parse_task(TUTORIAL_SPEC)
    assert "thetaSketch" in str(err.value) and "druidflow[sketches]" in str(err.value)
    assert err.value.path.endswith("metricsSpec[1].type")


# ------------------------------------------------------------------------------------------ ingestion


def test_the_theta_tutorial_gives_the_exact_counts_and_its_queries_run(rt):
    index.run(TUTORIAL_SPEC, rt)
    got = {(str(r["__time"])[:10], r["show"], r["episode"]): sketches.estimate(r["theta_uid"]) for r in rows(rt, "ts_tutorial")}
    exact: dict = {}
    for line in TUTORIAL_DATA.splitlines()[1:]:
        date, uid, show, episode = line.split(",")
        exact.setdefault((date, show, episode), set()).add(uid)
    assert got == {k: float(len(v)) for k, v in exact.items()}  # below the sketch's size, theta counts exactly
    # The tutorial's queries (its FILTER clause written as a CASE: a DuckDB macro takes no FILTER).
    grouped = run_sql(rt.store, rt.storage, 'SELECT __time, "show", "episode", APPROX_COUNT_DISTINCT_DS_THETA(theta_uid) AS users '
                      "FROM ts_tutorial GROUP BY 1, 2, 3").to_pylist()
    assert {(str(r["__time"])[:10], r["show"], r["episode"]): r["users"] for r in grouped} == got
    [total] = run_sql(rt.store, rt.storage, "SELECT THETA_SKETCH_ESTIMATE(DS_THETA(theta_uid)) AS users FROM ts_tutorial").to_pylist()
    assert total["users"] == 5.0  # alice, bob, carol, dan, erin: a union across segments, not a sum of rows
    [bridgerton] = run_sql(rt.store, rt.storage, "SELECT THETA_SKETCH_ESTIMATE(DS_THETA(CASE WHEN \"show\" = 'Bridgerton' "
                           "THEN theta_uid END)) AS users FROM ts_tutorial").to_pylist()
    assert bridgerton["users"] == 5.0


def check_union(row: dict, exact_users: int, values: np.ndarray) -> None:
    assert near(sketches.estimate(row["theta"]), exact_users, THETA_RSE)
    assert near(sketches.estimate(row["hll"]), exact_users, HLL_RSE)
    assert near(sketches.estimate(row["hu"]), exact_users, HU_RSE)
    assert near(sketches.estimate(row["card"]), exact_users + 1, HU_RSE)  # the users and the one value of d
    assert near(sketches.estimate(row["pairs"]), exact_users, HU_RSE)
    assert sketches.estimate(row["q"]) == len(values)  # a quantiles sketch's count is exact
    # Rank error of k=128 is about 1.7%: the median's rank is off by at most a few percent.
    rank = np.searchsorted(np.sort(values), sketches.quantile(row["q"], 0.5)) / len(values)
    assert abs(rank - 0.5) < 0.04


def test_compaction_unions_the_sketches_of_two_segments_and_a_second_compaction_changes_nothing(rt):
    index.run(spec(events(range(20000)), append=False), rt)
    index.run(spec(events(range(10000, 30000), hour=1)), rt)  # 10000 users in both segments
    assert len(rt.store.used_segments("s")) == 2
    compact.run({"type": "compact", "dataSource": "s", "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": "2024-01-01/2024-01-02"}}}, rt)
    [segment] = rt.store.used_segments("s")
    [row] = rows(rt)
    assert row["count"] == 40000
    check_union(row, 30000, np.concatenate([np.arange(20000), np.arange(10000, 30000)]).astype(float))
    assert sketches.estimate(row["theta"]) < 32000  # the union, not the sum (40000) of the two segments' counts
    stored = {a["name"]: a for a in segment.aggregators}
    assert stored["hll"]["type"] == "HLLSketchMerge" and stored["card"]["type"] == "hyperUnique"

    compact.run({"type": "compact", "dataSource": "s", "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": "2024-01-01/2024-01-02"}}}, rt)
    [again] = rt.store.used_segments("s")
    assert again.version != segment.version and again.aggregators == segment.aggregators
    assert rows(rt) == [row]  # the very same sketch bytes


def test_persists_and_their_final_merge_union_like_one_pass(rt, monkeypatch, tmp_path):
    from druidflow.ingest.builder import IncrementalIndex

    persists = []
    original = IncrementalIndex._persist
    monkeypatch.setattr(IncrementalIndex, "_persist", lambda self, rolled: (persists.append(rolled.num_rows), original(self, rolled))[1])
    data = events(range(6000)) + events(range(3000, 9000), hour=0)  # 60 minutes, 12000 rows
    index.run(spec(data, ds_name="one", query="NONE", append=False), rt)
    assert persists == []
    for i in range(24):  # one input batch per file: each fills the 100-row buffer and is persisted
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / f"{i:02d}.json").write_text("\n".join(json.dumps(r) for r in data[i * 500 : (i + 1) * 500]))
    many = spec([], ds_name="many", query="NONE", append=False, tuning={"maxRowsInMemory": 100})
    many["spec"]["ioConfig"]["inputSource"] = {"type": "local", "baseDir": str(tmp_path / "in"), "filter": "*.json"}
    index.run(many, rt)
    assert len(persists) > 10  # many intermediate persists, unioned by the final merge
    one, many = rows(rt, "one"), rows(rt, "many")
    assert len(many) == len(one) == 60 and sum(r["count"] for r in many) == 12000
    for a, b in zip(one, many):
        assert sketches.estimate(a["theta"]) == sketches.estimate(b["theta"])  # theta unions are exact set unions
        for name in ("hll", "hu", "card", "pairs"):
            assert sketches.estimate(b[name]) == pytest.approx(sketches.estimate(a[name]), rel=3 * HU_RSE), name
        assert sketches.estimate(b["q"]) == a["count"] == b["count"]
    [total] = run_sql(rt.store, rt.storage, "SELECT APPROX_COUNT_DISTINCT_DS_THETA(theta) AS n FROM many").to_pylist()
    assert total["n"] == 9000.0


def test_same_interval_merge_task_unions_the_sketches(rt):
    index.run(spec(events(range(200)), append=False), rt)
    index.run(spec(events(range(100, 300), hour=1)), rt)
    assert len(rt.store.used_segments("s")) == 2  # two partitions of one day
    run_task({"type": "same_interval_merge", "dataSource": "s", "interval": "2024-01-01/2024-01-02", "aggregations": METRICS}, rt)
    assert len(rt.store.used_segments("s")) == 1
    [row] = rows(rt)
    assert sketches.estimate(row["theta"]) == 300.0 and near(sketches.estimate(row["hll"]), 300, HLL_RSE)


def test_a_segment_read_as_input_is_unioned_as_druids_sketch_merge_does(rt):
    hours = [e for h in range(4) for e in events(range(100 * h, 100 * h + 150), hour=h)]  # overlapping hours
    index.run(spec(hours, query="HOUR", append=False), rt)
    assert len(rows(rt)) == 4
    reindex = {
        "type": "index",
        "spec": {
            "dataSchema": {
                "dataSource": "daily",
                "timestampSpec": {"column": "__time", "format": "millis"},
                "dimensionsSpec": {"dimensions": ["d"]},
                "metricsSpec": [
                    {"type": "thetaSketch", "name": "theta", "fieldName": "theta"},
                    {"type": "HLLSketchMerge", "name": "hll", "fieldName": "hll"},
                    {"type": "quantilesDoublesSketch", "name": "q", "fieldName": "q"},
                ],
                "granularitySpec": {"segmentGranularity": "DAY", "queryGranularity": "DAY", "intervals": ["2024-01-01/2024-01-02"]},
            },
            "ioConfig": {"type": "index", "inputSource": {"type": "druid", "dataSource": "s", "interval": "2024-01-01/2024-01-02"}},
        },
    }
    index.run(reindex, rt)
    [day] = rows(rt, "daily")
    assert sketches.estimate(day["theta"]) == 450.0  # users 0..449, each hour's sketch unioned
    assert near(sketches.estimate(day["hll"]), 450, HLL_RSE) and sketches.estimate(day["q"]) == 600


def test_sketches_in_the_input_as_base64(rt):
    def theta_of(users: range) -> str:
        sk = ds.update_theta_sketch(14)
        for u in users:
            sk.update(f"u{u}")
        return base64.b64encode(sk.compact().serialize()).decode()

    def hll_of(users: range) -> str:
        sk = ds.hll_sketch(12)
        for u in users:
            sk.update(f"u{u}")
        return base64.b64encode(sk.serialize_compact()).decode()

    data = [{"ts": "2024-01-01T00:00:00Z", "d": "k", "t": theta_of(range(50)), "h": hll_of(range(50))},
            {"ts": "2024-01-01T01:00:00Z", "d": "k", "t": theta_of(range(25, 75)), "h": hll_of(range(25, 75))},
            {"ts": "2024-01-01T02:00:00Z", "d": "k", "t": "not base64!", "h": theta_of(range(3))}]
    metrics = [{"type": "thetaSketch", "name": "theta", "fieldName": "t", "isInputThetaSketch": True},
               {"type": "HLLSketchMerge", "name": "hll", "fieldName": "h"}]
    report = index.run(spec(data, metrics=metrics, append=False), rt)
    [row] = rows(rt)
    assert sketches.estimate(row["theta"]) == 75.0 and near(sketches.estimate(row["hll"]), 75, HLL_RSE)
    stats = report.reports["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]
    assert stats["processedWithError"] == 1  # bad base64, and a theta sketch where an HLL sketch belongs


def test_without_rollup_each_row_keeps_its_own_sketch(rt):
    index.run(spec(events(range(5)), metrics=DOC_FORMS, rollup=False, query="NONE", append=False), rt)
    got = rows(rt)
    assert len(got) == 5 and all(sketches.estimate(r["theta"]) == 1.0 and sketches.estimate(r["q"]) == 1 for r in got)


def test_filtered_sketch_counts_only_the_matching_rows(rt):
    data = [{**e, "d": "a" if i % 2 else "b"} for i, e in enumerate(events(range(100)))]
    metrics = [{"type": "filtered", "filter": {"type": "selector", "dimension": "d", "value": "a"},
                "aggregator": {"type": "thetaSketch", "name": "odd_users", "fieldName": "user"}}]
    index.run(spec(data, metrics=metrics, dims=("missing",), append=False), rt)
    [row] = rows(rt)
    assert sketches.estimate(row["odd_users"]) == 50.0


def test_sql_sketch_functions(rt):
    index.run(spec(events(range(1000)), append=False), rt)
    index.run(spec(events(range(500, 1500), hour=1)), rt)
    [r] = run_sql(rt.store, rt.storage, """
        SELECT APPROX_COUNT_DISTINCT_DS_THETA(theta) AS theta, APPROX_COUNT_DISTINCT_DS_HLL(hll) AS hll,
               HLL_SKETCH_ESTIMATE(DS_HLL(hu), true) AS hu, APPROX_QUANTILE_DS(q, 0.5) AS median,
               DS_GET_QUANTILE(DS_QUANTILES_SKETCH(q), 1.0) AS top, APPROX_COUNT_DISTINCT_DS_HLL("d") AS raw_d,
               APPROX_COUNT_DISTINCT_DS_THETA("d") AS raw_theta_d, APPROX_QUANTILE_DS("count", 1.0) AS raw_q
        FROM s""").to_pylist()
    assert r["theta"] == 1500.0 and near(r["hll"], 1500, HLL_RSE) and near(r["hu"], 1500, HU_RSE) and r["hu"] == round(r["hu"])
    assert abs(r["median"] - 750) < 60 and r["top"] == 1499.0
    assert round(r["raw_d"]) == 1 and r["raw_theta_d"] == 1.0 and r["raw_q"] == 1000.0  # raw columns are sketched too


def test_druidflow_read_prints_base64_or_the_estimate(tmp_path, sqlite_url):
    import os
    import subprocess

    env = {**os.environ, "DRUIDFLOW_METADATA_URL": sqlite_url, "DRUIDFLOW_DEEP_STORAGE": str(tmp_path / "deep"),
           "DRUIDFLOW_WORK_DIR": str(tmp_path / "work")}
    metrics = [{"type": "thetaSketch", "name": "theta", "fieldName": "user"},
               {"type": "hyperUnique", "name": "hu", "fieldName": "user", "round": True}]
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec(events(range(300)), metrics=metrics, append=False)))

    def druidflow(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "druidflow.cli", *args], check=False, env=env, capture_output=True, text=True, timeout=300)

    assert druidflow("run", str(spec_file)).returncode == 0
    plain = druidflow("read", "s", "--format", "json")
    assert plain.returncode == 0, plain.stderr
    [row] = [json.loads(line) for line in plain.stdout.splitlines()]
    assert sketches.estimate(base64.b64decode(row["theta"])) == 300.0
    estimated = druidflow("read", "s", "--format", "json", "--estimate")
    [row] = [json.loads(line) for line in estimated.stdout.splitlines()]
    assert row["theta"] == 300.0 and isinstance(row["hu"], int) and near(row["hu"], 300, HU_RSE)
