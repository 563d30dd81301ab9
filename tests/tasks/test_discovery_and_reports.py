"""Schemaless discovery of nested JSON, and the ingestion report's fields in Druid's shape.

Discovery uses the example of Druid's "JSON Flatten Spec" page (apache/druid ``docs/content/ingestion/flatten-json.md``),
retyped: its event, its parseSpec and its metricsSpec, and its documented result — "dim1", "dim2", "dim3",
"ignore_me", "metrica" and "foo.bar" (at the root) are detected, "hello" (a list of doubles) is discovered, "world"
(a map) and "mixarray" (a list whose last value is a map) are not. The page's parseSpec spells
``dimensionsExclusions``, a key Druid ignores; so does Druidflow, with a warning, and ``ignore_me`` stays a dimension.

The report tests run Druid's tutorial spec ``examples/quickstart/tutorial/updates-init-index.json`` (apache/druid,
commit 34a783f; retyped in :mod:`tests.druid_tutorial_specs`) over ``updates-data.json`` plus rows that exercise each counter.
"""

from __future__ import annotations

import gzip
import json

import pytest

from druidflow.query import visible_rows
from druidflow.segments.descriptor import DataSegment
from druidflow.tasks import index
from druidflow.tasks.runtime import Runtime
from tests.druid_tutorial_specs import DATA, UPDATES_INIT_INDEX

FLATTEN_EVENT = {
    "timestamp": "2015-09-12T12:10:53.155Z",
    "dim1": "qwerty",
    "dim2": "asdf",
    "dim3": "zxcv",
    "ignore_me": "ignore this",
    "metrica": 9999,
    "foo": {"bar": "abc"},
    "foo.bar": "def",
    "nestmet": {"val": 42},
    "hello": [1.0, 2.0, 3.0, 4.0, 5.0],
    "mixarray": [1.0, 2.0, 3.0, 4.0, {"last": 5}],
    "world": [{"hey": "there"}, {"tree": "apple"}],
    "thing": {"food": ["sandwich", "pizza"]},
}

FLATTEN_PARSE_SPEC = """{
  "format": "json",
  "flattenSpec": {
    "useFieldDiscovery": true,
    "fields": [
      {"type": "root", "name": "dim1", "expr": "dim1"},
      "dim2",
      {"type": "path", "name": "foo.bar", "expr": "$.foo.bar"},
      {"type": "root", "name": "root-foo.bar", "expr": "foo.bar"},
      {"type": "path", "name": "path-metric", "expr": "$.nestmet.val"},
      {"type": "path", "name": "hello-0", "expr": "$.hello[0]"},
      {"type": "path", "name": "hello-4", "expr": "$.hello[4]"},
      {"type": "path", "name": "world-hey", "expr": "$.world.hey"},
      {"type": "path", "name": "worldtree", "expr": "$.world.tree"},
      {"type": "path", "name": "first-food", "expr": "$.thing.food[0]"},
      {"type": "path", "name": "second-food", "expr": "$.thing.food[1]"}
    ]
  },
  "dimensionsSpec" : {
   "dimensions" : [],
   "dimensionsExclusions": ["ignore_me"]
  },
  "timestampSpec" : {
   "format" : "auto",
   "column" : "timestamp"
  }
}"""

FLATTEN_METRICS = """[
{"type" : "longSum", "name" : "path-metric-sum", "fieldName" : "path-metric"},
{"type" : "doubleSum", "name" : "hello-0-sum", "fieldName" : "hello-0"},
{"type" : "longSum", "name" : "metrica-sum", "fieldName" : "metrica"}
]"""

@pytest.fixture
def rt(sqlite_url, tmp_path, monkeypatch) -> Runtime:
    monkeypatch.chdir(tmp_path)
    return Runtime.from_urls(sqlite_url, str(tmp_path / "deep"), tmp_path / "work")


def _flatten_task(tmp_path) -> dict:
    data = tmp_path / "flatten"
    data.mkdir()
    (data / "event.json").write_text(json.dumps(FLATTEN_EVENT) + "\n")
    return {
        "type": "index",
        "spec": {
            "dataSchema": {
                "dataSource": "flatten",
                "parser": {"type": "string", "parseSpec": json.loads(FLATTEN_PARSE_SPEC)},
                "metricsSpec": json.loads(FLATTEN_METRICS),
                "granularitySpec": {"segmentGranularity": "day", "intervals": ["2015-09-12/2015-09-13"]},
            },
            "ioConfig": {"type": "index", "firehose": {"type": "local", "baseDir": str(data), "filter": "event.json"}},
        },
    }


def test_schemaless_discovery_skips_maps_and_non_flat_lists_as_druid_does(rt, tmp_path):
    report = index.run(_flatten_task(tmp_path), rt)
    dims = report.segments[0].dimension_names
    for documented in ("dim1", "dim2", "dim3", "foo.bar", "hello"):
        assert documented in dims
    for nested in ("foo", "nestmet", "mixarray", "world", "thing"):
        assert nested not in dims  # maps and lists holding maps: reached only through the flattenSpec
    for flattened in ("root-foo.bar", "hello-4", "world-hey", "worldtree", "first-food", "second-food"):
        assert flattened in dims
    assert "metrica" not in dims and "path-metric" not in dims  # read by aggregators
    assert "ignore_me" in dims  # the page's "dimensionsExclusions" is not a Druid key: ignored, with a warning
    assert report.reports["ingestionStatsAndErrors"]["payload"]["warnings"] == [
        "spec.dataSchema.dimensionsSpec.dimensionsExclusions: unknown key, ignored (as Druid ignores unknown properties)"
    ]
    row = next(visible_rows(rt.store, rt.storage, "flatten", None)).to_pylist()[0]
    assert (row["foo.bar"], row["root-foo.bar"], row["first-food"], row["path-metric-sum"]) == ("abc", "def", "sandwich", 42)


def _write_tutorial_input(tmp_path, rows: list[str], compress: bool) -> int:
    data = tmp_path / "quickstart" / "tutorial"
    data.mkdir(parents=True)
    text = "".join(r + "\n" for r in rows).encode()
    if compress:
        (data / "updates-data.json.gz").write_bytes(gzip.compress(text))
    else:
        (data / "updates-data.json").write_bytes(text)
    return len(text)


def test_report_counters_in_druids_shape(rt, tmp_path):
    rows = [json.dumps(r) for r in DATA["updates-data.json"]] + [
        json.dumps({"timestamp": "2019-06-01T00:00:00Z", "animal": "late", "number": 1}),  # outside the intervals
        json.dumps({"timestamp": "not a time", "animal": "broken", "number": 1}),  # unparseable timestamp
        '{"timestamp": "2018-01-01T05:00:00Z", "animal": ',  # not JSON
    ]
    uncompressed = _write_tutorial_input(tmp_path, rows, compress=True)
    spec = json.loads(UPDATES_INIT_INDEX)
    spec["spec"]["ioConfig"]["inputSource"]["filter"] = "updates-data.json.gz"
    spec["spec"]["tuningConfig"]["maxSavedParseExceptions"] = 5
    report = index.run(spec, rt)
    payload = report.reports["ingestionStatsAndErrors"]["payload"]
    stats = payload["rowStats"]["buildSegments"]
    assert stats["processedBytes"] == uncompressed  # uncompressed bytes, as Druid counts a .gz input
    assert (stats["processed"], stats["unparseable"], stats["thrownAway"]) == (3, 2, 1)
    # Druid's reason names (InputRowFilterResult.getReason()); only the reasons that occurred are listed.
    assert stats["thrownAwayByReason"] == {"filtered": 1}
    assert payload["recordsProcessed"] == {"determinePartitions": 0, "buildSegments": 3}
    events = payload["unparseableEvents"]["buildSegments"]
    assert len(events) == 2
    for event in events:
        assert {"input", "errorType", "details", "timeOfExceptionMillis"} <= set(event)
        assert isinstance(event["timeOfExceptionMillis"], int) and event["timeOfExceptionMillis"] > 1_500_000_000_000
        assert event["errorType"] == "unparseable"


def test_transform_filter_rejects_are_filtered(rt, tmp_path):
    _write_tutorial_input(tmp_path, [json.dumps(r) for r in DATA["updates-data.json"]], compress=False)
    spec = json.loads(UPDATES_INIT_INDEX)
    spec["spec"]["dataSchema"]["transformSpec"] = {"filter": {"type": "selector", "dimension": "animal", "value": "tiger"}}
    stats = index.run(spec, rt).reports["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]
    assert (stats["processed"], stats["thrownAway"], stats["thrownAwayByReason"]) == (1, 2, {"filtered": 2})


@pytest.mark.parametrize(
    "given, stored",
    [
        ("minute", "MINUTE"),
        ("MINUTE", "MINUTE"),
        ({"type": "period", "period": "PT1M"}, "MINUTE"),
        ({"type": "period", "period": "PT1M", "timeZone": "UTC"}, "MINUTE"),
        ("none", {"type": "none"}),
        ({"type": "none"}, {"type": "none"}),
        ({"type": "period", "period": "PT2H"}, {"type": "period", "period": "PT2H", "timeZone": "UTC", "origin": None}),
    ],
)
def test_query_granularity_is_stored_in_one_form(rt, tmp_path, given, stored):
    """Druid's serializers: standard periods by name (PeriodGranularity.serialize), none/all as objects, other
    periods as objects with a (null) origin. Every spelling of one granularity gives the same segment JSON."""
    _write_tutorial_input(tmp_path, [json.dumps(r) for r in DATA["updates-data.json"]], compress=False)
    spec = json.loads(UPDATES_INIT_INDEX)
    spec["spec"]["dataSchema"]["granularitySpec"]["queryGranularity"] = given
    report = index.run(spec, rt)
    assert {json.dumps(s.model_dump()["queryGranularity"], sort_keys=True) for s in report.segments} == {
        json.dumps(stored, sort_keys=True)
    }
    stored_segment = rt.store.used_segments("updates-tutorial")[0]
    assert stored_segment.model_dump()["queryGranularity"] == stored
    assert DataSegment.model_validate(stored_segment.model_dump()).query_granularity == stored
