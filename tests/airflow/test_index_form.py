"""The druidflow_index trigger form: a whole task JSON wins; otherwise the common fields build the spec."""

from __future__ import annotations

import pytest

from druidflow.airflow.index_form import form_field_for, index_params, index_spec_from_form, input_source_for
from druidflow.exceptions import SpecError

FORM = {
    "spec": None,
    "data_source": "wiki",
    "input": ["/data/wiki-2024-01-01.json"],
    "input_format": "json",
    "timestamp_column": "ts",
    "timestamp_format": "iso",
    "dimensions": ["page", "user"],
    "metrics": [{"type": "count", "name": "count"}, {"type": "longSum", "name": "added", "fieldName": "added"}],
    "segment_granularity": "HOUR",
    "query_granularity": "MINUTE",
    "rollup": True,
    "intervals": ["2024-01-01/2024-01-02"],
    "append": False,
}


def test_common_fields_build_a_modern_index_task():
    spec = index_spec_from_form(FORM)
    assert spec["type"] == "index"
    schema = spec["spec"]["dataSchema"]
    assert schema["dataSource"] == "wiki"
    assert schema["timestampSpec"] == {"column": "ts", "format": "iso"}
    assert schema["dimensionsSpec"] == {"dimensions": ["page", "user"]}
    assert [m["name"] for m in schema["metricsSpec"]] == ["count", "added"]
    assert schema["granularitySpec"] == {
        "type": "uniform",
        "segmentGranularity": "HOUR",
        "queryGranularity": "MINUTE",
        "rollup": True,
        "intervals": ["2024-01-01/2024-01-02"],
    }
    io = spec["spec"]["ioConfig"]
    assert io["inputSource"] == {"type": "local", "files": ["/data/wiki-2024-01-01.json"]}
    assert io["inputFormat"] == {"type": "json"}
    assert io["appendToExisting"] is False


def test_whole_spec_wins_over_the_common_fields():
    whole = {"type": "index", "spec": {"dataSchema": {"dataSource": "other"}}}
    assert index_spec_from_form({**FORM, "spec": whole}) == whole


def test_whole_spec_may_arrive_as_json_text():
    assert index_spec_from_form({"spec": '{"type": "index"}'}) == {"type": "index"}
    with pytest.raises(SpecError) as err:
        index_spec_from_form({"spec": "{not json"})
    assert err.value.path == "spec"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"data_source": None}, "data_source"),
        ({"data_source": "  "}, "data_source"),
        ({"input": []}, "input"),
        ({"input_format": "xml"}, "input_format"),
        ({"metrics": [1, 2]}, "metrics"),
        ({"input": ["/a.json", "s3://b/c.json"]}, "input"),
    ],
)
def test_missing_or_malformed_fields_name_the_form_field(change, field):
    with pytest.raises(SpecError) as err:
        index_spec_from_form({**FORM, **change})
    assert err.value.path == field


def test_intervals_and_dimensions_are_optional_and_accept_text():
    spec = index_spec_from_form({**FORM, "intervals": [], "dimensions": "page, user\nchannel"})
    assert "intervals" not in spec["spec"]["dataSchema"]["granularitySpec"]
    assert spec["spec"]["dataSchema"]["dimensionsSpec"]["dimensions"] == ["page", "user", "channel"]


def test_csv_reads_its_header(tmp_path):
    spec = index_spec_from_form({**FORM, "input_format": "csv"})
    assert spec["spec"]["ioConfig"]["inputFormat"] == {"type": "csv", "findColumnsFromHeader": True}


def test_input_sources(tmp_path):
    assert input_source_for([str(tmp_path)]) == {"type": "local", "baseDir": str(tmp_path), "filter": "*"}
    assert input_source_for(["/data/*.json"]) == {"type": "local", "baseDir": "/data", "filter": "*.json"}
    assert input_source_for(["file:///data/a.json"]) == {"type": "local", "files": ["/data/a.json"]}
    assert input_source_for(["s3://b/k1.json", "s3://b/k2.json"]) == {"type": "s3", "uris": ["s3://b/k1.json", "s3://b/k2.json"]}
    assert input_source_for(["s3://b/prefix/"]) == {"type": "s3", "prefixes": ["s3://b/prefix/"]}
    assert input_source_for(["https://x/y.json"]) == {"type": "http", "uris": ["https://x/y.json"]}


def test_spec_paths_map_back_to_form_fields():
    assert form_field_for("spec.dataSchema.granularitySpec.segmentGranularity") == "segment_granularity"
    assert form_field_for("spec.dataSchema.metricsSpec[1].fieldName") == "metrics"
    assert form_field_for("spec.tuningConfig.maxRowsInMemory") is None


def test_params_cover_every_form_field_and_validate_enums():
    from airflow.sdk import ParamsDict

    params = index_params()
    assert {"spec", *FORM} <= set(params)
    resolved = ParamsDict(params).validate()  # the defaults alone are valid
    assert resolved["segment_granularity"] == "DAY"
    bad = ParamsDict(params)
    with pytest.raises(Exception, match="WEEKLY"):
        bad["segment_granularity"] = "WEEKLY"
        bad.validate()
