"""CSV/TSV values holding the ``listDelimiter`` are multi-value (arrays) inside transforms and the transformSpec
filter, as in Druid: its CSV/TSV parser splits such a value into a list before the row is transformed
(``ParserUtils.getMultiValueFunction``: a value containing the delimiter becomes a list, any other stays a string).

The inputFormat is the CSV example of Druid's docs/ingestion/data-formats.md ("CSV": ``"type": "csv"`` with the
wikipedia ``columns``), retyped, with ``"listDelimiter": "|"`` (the docs' field: "A custom delimiter for
multi-value dimensions"); the transforms use math-expr.md's ``array_length(arr)`` ("returns length of array
expression") and ``array_contains(arr, expr)`` ("returns 1 if the array contains the element ..., else 0").
"""

from __future__ import annotations

import pytest

from druidflow.tasks import index
from druidflow.tasks.runtime import Runtime
from tests.tasks.test_index import rows_of

COLUMNS = ["timestamp", "page", "language", "user", "unpatrolled", "newPage", "robot", "anonymous", "namespace",
           "continent", "country", "region", "city", "added", "deleted", "delta"]
# 'language' carries the multi-value field in this data: "en|fr|de" is three values, "ja" one
DATA = (
    "2013-08-31T01:02:33Z,Gypsy Danger,en|fr|de,nuclear,true,true,false,false,article,North America,United States,Bay Area,San Francisco,57,200,-143\n"
    "2013-08-31T03:32:45Z,Striker Eureka,ja,speed,false,true,true,false,wikipedia,Australia,Australia,Cantebury,Syndey,459,129,330\n"
    "2013-08-31T07:11:21Z,Cherno Alpha,ru|fr,masterYi,false,true,true,false,article,Asia,Russia,Oblast,Moscow,123,12,111\n"
)


def spec(tmp_path, transforms, filter_=None) -> dict:
    (tmp_path / "wikipedia.csv").write_text(DATA)
    transform_spec = {"transforms": transforms}
    if filter_ is not None:
        transform_spec["filter"] = filter_
    return {
        "type": "index",
        "spec": {
            "dataSchema": {
                "dataSource": "wikipedia",
                "timestampSpec": {"column": "timestamp", "format": "iso"},
                "dimensionsSpec": {"dimensions": ["page", "language", {"type": "long", "name": "n_languages"}, {"type": "long", "name": "has_fr"}]},
                "granularitySpec": {"segmentGranularity": "day", "queryGranularity": "none", "rollup": False, "intervals": ["2013-08-31/2013-09-01"]},
                "transformSpec": transform_spec,
            },
            "ioConfig": {
                "type": "index",
                "inputSource": {"type": "local", "baseDir": str(tmp_path), "filter": "wikipedia.csv"},
                "inputFormat": {"type": "csv", "columns": COLUMNS, "listDelimiter": "|"},
            },
            "tuningConfig": {"type": "index"},
        },
    }


@pytest.fixture
def rt(db_url, tmp_path) -> Runtime:
    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")


TRANSFORMS = [
    {"type": "expression", "name": "n_languages", "expression": "array_length(language)"},
    {"type": "expression", "name": "has_fr", "expression": "array_contains(language, 'fr')"},
]


def test_array_functions_see_the_split_values(rt, tmp_path):
    index.run(spec(tmp_path, TRANSFORMS), rt)
    rows = sorted(rows_of(rt, "wikipedia").to_pylist(), key=lambda r: r["__time"])
    assert [(r["page"], r["n_languages"], r["has_fr"]) for r in rows] == [
        ("Gypsy Danger", 3, 1),
        ("Striker Eureka", 1, 0),
        ("Cherno Alpha", 2, 1),
    ]
    # the column itself is still the multi-value dimension the delimiter makes (Druid's default SORTED_ARRAY)
    assert [r["language"] for r in rows] == [["de", "en", "fr"], ["ja"], ["fr", "ru"]]


def test_a_transform_can_build_a_new_multi_value_column_from_one(rt, tmp_path):
    transforms = TRANSFORMS + [{"type": "expression", "name": "page", "expression": "array_to_string(language, '+')"}]
    index.run(spec(tmp_path, transforms), rt)
    rows = sorted(rows_of(rt, "wikipedia").to_pylist(), key=lambda r: r["__time"])
    assert [r["page"] for r in rows] == ["en+fr+de", "ja", "ru+fr"]


def test_the_transform_filter_matches_any_value(rt, tmp_path):
    # Druid's selector filter on a multi-value row matches when any value matches
    report = index.run(spec(tmp_path, TRANSFORMS, {"type": "selector", "dimension": "language", "value": "fr"}), rt)
    rows = sorted(rows_of(rt, "wikipedia").to_pylist(), key=lambda r: r["__time"])
    assert [r["page"] for r in rows] == ["Gypsy Danger", "Cherno Alpha"]
    assert report.reports["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]["thrownAway"] == 1
