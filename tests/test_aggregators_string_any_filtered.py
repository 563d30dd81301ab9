"""stringFirst/stringLast/stringAny (with maxStringBytes), long/double/floatAny and filtered aggregators: parsed as
Druid writes them, computed at ingestion, and re-combined by compaction without the filter (as Druid's combining
factories do)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from druidflow.aggregators import parse_aggregator, parse_metrics_spec
from druidflow.exceptions import SpecError
from druidflow.ingest.parse import chop_utf8
from druidflow.tasks import compact, index
from druidflow.tasks.runtime import Runtime
from tests.tasks.test_compact import batch, compact_spec, index_spec, rows_of

# From Druid's aggregations docs (docs/querying/aggregations.md), retyped: the string first/last and filtered forms.
STRING_FIRST = {"type": "stringFirst", "name": "firstPage", "fieldName": "page", "maxStringBytes": 1024}
FILTERED = {
    "type": "filtered",
    "filter": {"type": "selector", "dimension": "d", "value": "k1"},
    "aggregator": {"type": "longSum", "name": "v_k1", "fieldName": "v"},
}

METRICS = [
    {"type": "count", "name": "count"},
    {"type": "longSum", "name": "v", "fieldName": "v"},
    {"type": "stringFirst", "name": "first_tag", "fieldName": "tag"},
    {"type": "stringLast", "name": "last_tag", "fieldName": "tag", "maxStringBytes": 4},
    {"type": "longAny", "name": "any_v", "fieldName": "v"},
    {"type": "stringAny", "name": "any_tag", "fieldName": "tag"},
    {"type": "filtered", "filter": {"type": "bound", "dimension": "v", "lower": "200", "ordering": "numeric"},
     "aggregator": {"type": "count", "name": "late"}},
    {"type": "filtered", "name": "late_first", "filter": {"type": "bound", "dimension": "v", "lower": "200", "ordering": "numeric"},
     "aggregator": {"type": "stringFirst", "name": "ignored", "fieldName": "tag"}},
]


@pytest.fixture
def rt(db_url, tmp_path) -> Runtime:
    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")


def tagged(i: int) -> list[dict]:
    """Append ``i``'s rows (one per hour, minute ``i``), tagged ``t<i>`` with a long tail for the byte limit."""
    return [{**r, "tag": f"t{i}" + "é" * i} for r in batch(i, hours=range(6))]


def by_hour(table: pa.Table) -> dict:
    return {str(r["__time"])[11:13]: r for r in table.to_pylist()}


def test_druid_doc_forms_parse():
    agg = parse_aggregator(STRING_FIRST)
    assert (agg.kind, agg.value_type, agg.max_string_bytes) == ("first", "string", 1024)
    filtered = parse_aggregator(FILTERED)
    assert filtered.name == "v_k1" and filtered.kind == "sum" and filtered.combining().type == "longSum"
    assert parse_aggregator({"type": "doubleAny", "name": "a", "fieldName": "x"}).kind == "any"


@pytest.mark.parametrize(
    "bad, path",
    [
        ({"type": "filtered", "aggregator": {"type": "count", "name": "c"}}, "filter"),
        ({"type": "filtered", "filter": {"type": "selector", "dimension": "d", "value": "x"}}, "aggregator"),
        ({"type": "filtered", "filter": {"type": "nope"}, "aggregator": {"type": "count", "name": "c"}}, "filter"),
        ({"type": "stringFirst", "name": "s", "fieldName": "x", "maxStringBytes": 0}, "maxStringBytes"),
    ],
)
def test_bad_aggregators_name_the_field(bad, path):
    with pytest.raises(SpecError) as err:
        parse_metrics_spec([bad])
    assert path in err.value.path


def test_ingest_then_compact_keeps_each_aggregators_meaning(rt):
    for i in (1, 2, 3):
        index.run(index_spec(tagged(i), metrics=METRICS, dims=("d",)), rt)
    before = by_hour(rows_of(rt))
    compact.run(compact_spec("2024-01-01/2024-01-02"), rt)  # metrics inferred: their combining forms
    after = by_hour(rows_of(rt))
    assert len(rt.store.used_segments("t")) == 1
    for hour, row in after.items():
        h = int(hour)
        assert row["count"] == 3 and row["v"] == 600 + 3 * h
        assert row["first_tag"] == "t1é"  # minute 1 is the earliest of the hour
        assert row["last_tag"] == "t3é"  # "t3ééé" cut to 4 UTF-8 bytes, never inside a character
        assert row["any_v"] in {100 + h, 200 + h, 300 + h} and row["any_tag"].startswith("t")
        assert row["late"] == 2  # rows with v >= 200: appends 2 and 3
        assert row["late_first"] == "t2éé"  # the earliest row the filter matches, not the earliest row
    # Compaction re-combined the per-append rows: the same answers as a query over the three appends would give.
    assert {h: (r["count"], r["late"], r["late_first"]) for h, r in after.items()} == {
        h: (3, 2, "t2éé") for h in before
    }


def test_filtered_sum_counts_only_matching_rows_and_is_null_without_any(rt):
    rows = [{"ts": "2024-01-01T00:10:00Z", "d": "k0", "v": 5}, {"ts": "2024-01-01T01:10:00Z", "d": "k1", "v": 7},
            {"ts": "2024-01-01T01:20:00Z", "d": "k1", "v": 8}]
    index.run(index_spec(rows, metrics=[{"type": "count", "name": "count"}, FILTERED], dims=("d",), append=False), rt)
    got = {r["d"]: (r["count"], r["v_k1"]) for r in rows_of(rt).to_pylist()}
    assert got == {"k0": (1, None), "k1": (2, 15)}


def test_chop_utf8_cuts_whole_characters_only():
    col = pa.array(["abc", "ééé", None, "x" * 10])
    assert chop_utf8(col, 3).to_pylist() == ["abc", "é", None, "xxx"]
    assert chop_utf8(col, 100).to_pylist() == col.to_pylist()
