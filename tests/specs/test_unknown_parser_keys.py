"""Unknown keys in the classic ``parser`` / ``parseSpec`` (and the firehose) are ignored with a warning naming the
path the user wrote, as Druid ignores them (docs/unknown-keys.md); a Kafka supervisor's parser stays strict.

The dataSchema is Druid's ``DataSchemaTest.testSerde`` (apache/druid,
server/src/test/java/org/apache/druid/segment/indexing/DataSchemaTest.java), retyped: a ``string`` parser with
``"encoding": "UTF-8"`` (Druid's StringInputRowParser charset), a json parseSpec with ``flattenSpec``,
``featureSpec`` and a ``"missingValue": null`` timestampSpec, and an ``arbitrary`` granularitySpec with a
86400000 ms duration queryGranularity. Druid reads it back with timestampSpec column ``xXx`` and the single
doubleSum ``metric1`` of ``col1``; Druidflow used to refuse the parser's ``encoding``.
"""

from __future__ import annotations

import json

import pytest

from druidflow.exceptions import SpecError
from druidflow.specs.tasks import parse_task
from druidflow.specs.unknown_keys import ignored_keys, spec_warnings
from druidflow.tasks import index
from druidflow.tasks.runtime import Runtime
from tests.tasks.test_index import rows_of

DATA_SCHEMA_TEST_SERDE = (
    '{"dataSource":"test",'
    '"parser":{"type":"string","parseSpec":{"format":"json",'
    '"timestampSpec":{"column":"xXx", "format": "auto", "missingValue": null},'
    '"dimensionsSpec":{"dimensions":[], "dimensionExclusions":[]},'
    '"flattenSpec":{"useFieldDiscovery":true, "fields":[]},'
    '"featureSpec":{}},'
    '"encoding":"UTF-8"},'
    '"metricsSpec":[{"type":"doubleSum","name":"metric1","fieldName":"col1"}],'
    '"granularitySpec":{"type":"arbitrary",'
    '"queryGranularity":{"type":"duration","duration":86400000,"origin":"1970-01-01T00:00:00.000Z"},'
    '"intervals":["2014-01-01T00:00:00.000Z/2015-01-01T00:00:00.000Z"]}}'
)
ROWS = '{"xXx": "2014-03-01T10:00:00Z", "col1": 1.5, "page": "a"}\n{"xXx": "2014-03-01T23:00:00Z", "col1": 2, "page": "a"}\n'
UNKNOWN = "unknown key, ignored (as Druid ignores unknown properties)"


def task(data_schema: dict, firehose: dict | None = None) -> dict:
    return {
        "type": "index",
        "spec": {
            "dataSchema": data_schema,
            "ioConfig": {"type": "index", "firehose": firehose or {"type": "inline", "data": ROWS}},
            "tuningConfig": {"type": "index"},
        },
    }


@pytest.fixture
def rt(db_url, tmp_path) -> Runtime:
    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")


def test_druids_data_schema_serde_spec_runs_as_druid_reads_it(rt):
    parsed = parse_task(task(json.loads(DATA_SCHEMA_TEST_SERDE)))
    assert parsed.spec.data_schema.timestamp_spec.column == "xXx"
    assert [m.name for m in parsed.spec.data_schema.metrics_spec] == ["metric1"]
    assert spec_warnings(parsed) == []  # encoding UTF-8 is what Druidflow reads: honoured, nothing to warn
    report = index.run(task(json.loads(DATA_SCHEMA_TEST_SERDE)), rt)
    rows = rows_of(rt, "test").to_pylist()
    # schemaless discovery gives page; the day queryGranularity rolls both rows into one
    assert [(r["page"], r["metric1"]) for r in rows] == [("a", 3.5)]
    assert report.reports["ingestionStatsAndErrors"]["payload"]["warnings"] == []


def test_extra_parser_parse_spec_and_firehose_keys_are_ignored_with_their_classic_paths(rt, caplog):
    ds = json.loads(DATA_SCHEMA_TEST_SERDE)
    ds["parser"]["rowFormat"] = "x"  # unknown to StringInputRowParser
    ds["parser"]["parseSpec"]["columns"] = ["xXx", "col1"]  # a csv field: JSONParseSpec has none
    ds["parser"]["parseSpec"]["timestampSpec"]["formatt"] = "iso"
    ds["parser"]["parseSpec"]["dimensionsSpec"]["spatialDimensionz"] = []
    ds["parser"]["parseSpec"]["flattenSpec"]["useFieldDiscoverry"] = False
    spec = task(ds, {"type": "inline", "data": ROWS, "encoding": "UTF-8"})
    expected = [
        "spec.dataSchema.parser.rowFormat",
        "spec.dataSchema.parser.parseSpec.columns",
        "spec.ioConfig.firehose.encoding",
        "spec.dataSchema.parser.parseSpec.timestampSpec.formatt",
        "spec.dataSchema.parser.parseSpec.dimensionsSpec.spatialDimensionz",
        "spec.dataSchema.parser.parseSpec.flattenSpec.useFieldDiscoverry",
    ]
    assert ignored_keys(parse_task(spec)) == expected
    # the task record is the modern dump; parsed again (as the Airflow steps do) it still names the classic paths
    assert ignored_keys(parse_task(parse_task(spec).model_dump())) == expected
    with caplog.at_level("WARNING"):
        report = index.run(spec, rt)
    assert report.reports["ingestionStatsAndErrors"]["payload"]["warnings"] == [f"{p}: {UNKNOWN}" for p in expected]
    assert any("spec.dataSchema.parser.rowFormat" in r.getMessage() for r in caplog.records)
    assert [r["metric1"] for r in rows_of(rt, "test").to_pylist()] == [3.5]  # ignored keys changed nothing


def test_a_clean_classic_spec_dumps_exactly_as_its_modern_form():
    assert "druidflowClassicForm" not in parse_task(task(json.loads(DATA_SCHEMA_TEST_SERDE))).model_dump()["spec"]


def test_another_charset_is_refused_naming_the_field():
    ds = json.loads(DATA_SCHEMA_TEST_SERDE)
    ds["parser"]["encoding"] = "ISO-8859-1"
    with pytest.raises(SpecError) as info:
        parse_task(task(ds))
    assert info.value.path == "spec.dataSchema.parser.encoding" and info.value.value == "ISO-8859-1"


def test_dangerous_typos_in_a_classic_spec_are_still_refused():
    ds = json.loads(DATA_SCHEMA_TEST_SERDE)
    firehose = {"type": "ingestSegment", "dataSource": "test", "interval": "2014/2015", "fliter": {}}
    with pytest.raises(SpecError) as info:
        parse_task(task(ds, firehose))
    assert info.value.path == "spec.ioConfig.firehose.fliter"


def test_a_kafka_supervisor_parser_stays_strict():
    from druidflow.streaming.kafka_spec import KafkaSupervisorSpec

    ds = json.loads(DATA_SCHEMA_TEST_SERDE)
    ds.pop("granularitySpec")
    ds["parser"]["rowFormat"] = "x"
    sup = {"type": "kafka", "dataSchema": ds, "ioConfig": {"topic": "t", "consumerProperties": {"bootstrap.servers": "localhost:9092"}}}
    with pytest.raises(SpecError) as info:
        KafkaSupervisorSpec.parse(sup)
    assert info.value.path.endswith("parser.rowFormat")
