"""Unknown JSON keys: ignored with a warning naming the full path, as Druid's Jackson mapper ignores them; refused
where ignoring a typo would be dangerous (docs/unknown-keys.md).

The base spec is Druid's ``examples/quickstart/tutorial/updates-overwrite-index.json`` (apache/druid, commit
0c111a6), retyped in :mod:`tests.druid_tutorial_specs`; the typo ``patitionsSpec`` is the one issue 21 reports in one of Druid's integration-test specs.
"""

from __future__ import annotations

import json

import pytest

from druidflow.exceptions import SpecError
from druidflow.specs.tasks import parse_task
from druidflow.specs.unknown_keys import STRICT_MODELS, ignored_keys, spec_warnings
from druidflow.tasks import index
from druidflow.tasks.runtime import Runtime
from tests.druid_tutorial_specs import UPDATES_OVERWRITE_INDEX


def spec() -> dict:
    return json.loads(UPDATES_OVERWRITE_INDEX)


def test_a_misspelt_partitions_spec_is_ignored_with_a_warning_naming_its_path():
    s = spec()
    s["spec"]["tuningConfig"]["patitionsSpec"] = {"type": "dynamic", "maxRowsPerSegment": 10}
    task = parse_task(s)
    assert task.spec.tuning_config.effective_partitions_spec.max_rows_per_segment == 5000000  # the typo did nothing
    assert spec_warnings(task) == [
        "spec.tuningConfig.patitionsSpec: unknown key, ignored (as Druid ignores unknown properties)"
    ]


def test_unknown_keys_anywhere_are_named_with_their_full_path():
    s = spec()
    s["comment"] = "x"
    s["spec"]["ioConfig"]["inputSource"]["recursive"] = True
    s["spec"]["dataSchema"]["timestampSpec"]["formatt"] = "iso"
    assert ignored_keys(parse_task(s)) == [
        "comment",
        "spec.dataSchema.timestampSpec.formatt",
        "spec.ioConfig.inputSource.recursive",
    ]


def test_the_warnings_go_to_the_log_and_the_report(tmp_path, monkeypatch, caplog):
    data = tmp_path / "quickstart" / "tutorial"
    data.mkdir(parents=True)
    (data / "updates-data2.json").write_text('{"timestamp":"2018-01-01T01:01:35Z","animal":"lion", "number":100}\n')
    monkeypatch.chdir(tmp_path)
    rt = Runtime.from_urls(f"sqlite:///{tmp_path / 'm.db'}", str(tmp_path / "deep"), tmp_path / "work")
    s = spec()
    s["spec"]["tuningConfig"]["patitionsSpec"] = {"type": "dynamic"}
    with caplog.at_level("WARNING"):
        report = index.run(s, rt)
    warning = "spec.tuningConfig.patitionsSpec: unknown key, ignored (as Druid ignores unknown properties)"
    assert report.reports["ingestionStatsAndErrors"]["payload"]["warnings"] == [warning]
    assert any(warning in r.getMessage() for r in caplog.records)
    assert rt.store.get_task(report.task_id).report["ingestionStatsAndErrors"]["payload"]["warnings"] == [warning]


@pytest.mark.parametrize(
    "where, key, model",
    [
        (("spec", "ioConfig"), "apendToExisting", "IndexIOConfig"),
        (("spec", "ioConfig"), "dropExsting", "IndexIOConfig"),
        (("spec", "dataSchema", "granularitySpec"), "interval", "GranularitySpec"),
        (("spec", "dataSchema", "transformSpec"), "fitler", "TransformSpec"),
    ],
)
def test_dangerous_typos_are_refused_naming_the_field(where, key, model):
    s = spec()
    node = s
    for step in where:
        node = node.setdefault(step, {})
    node[key] = True
    path = ".".join(where + (key,))
    with pytest.raises(SpecError) as info:
        parse_task(s)
    assert info.value.path == path
    assert STRICT_MODELS[model] in str(info.value)


def test_an_aggregator_typo_is_refused():
    s = spec()
    s["spec"]["dataSchema"]["metricsSpec"][1]["fieldNmae"] = "number"
    with pytest.raises(SpecError) as info:
        parse_task(s)
    assert info.value.path == "spec.dataSchema.metricsSpec[1].fieldNmae"


def test_a_druid_input_source_typo_is_refused():
    s = spec()
    s["spec"]["ioConfig"]["inputSource"] = {"type": "druid", "dataSource": "w", "interval": "2018-01-01/2018-01-02", "fliter": {}}
    with pytest.raises(SpecError) as info:
        parse_task(s)
    assert info.value.path == "spec.ioConfig.inputSource.fliter"


def test_a_kill_spec_typo_is_refused():
    with pytest.raises(SpecError) as info:
        parse_task({"type": "kill", "dataSource": "w", "interval": "2018-01-01/2018-01-02", "batchsize": 10})
    assert info.value.path == "batchsize" and "deletes data" in str(info.value)


def test_a_compaction_input_spec_typo_is_refused():
    compact = {
        "type": "compact",
        "dataSource": "w",
        "ioConfig": {"type": "compact", "inputSpec": {"type": "interval", "interval": "2018-01-01/2018-01-02", "intervall": "x"}},
    }
    with pytest.raises(SpecError) as info:
        parse_task(compact)
    assert info.value.path == "ioConfig.inputSpec.intervall"


def test_max_total_rows_under_perfect_rollup_is_ignored_with_a_warning():
    s = spec()
    s["spec"]["tuningConfig"].update({"forceGuaranteedRollup": True, "maxTotalRows": 20000000, "partitionsSpec": {"type": "hashed"}})
    s["spec"]["tuningConfig"].pop("maxRowsPerSegment")
    assert parse_task(s).spec.tuning_config.effective_partitions_spec.type == "hashed"
    assert spec_warnings(parse_task(s)) == [
        "spec.tuningConfig.maxTotalRows: ignored: partitionsSpec is given, and Druid then ignores the deprecated top-level field"
    ]
    s["spec"]["tuningConfig"].pop("partitionsSpec")
    assert spec_warnings(parse_task(s)) == [
        "spec.tuningConfig.maxTotalRows: ignored: only applies to best-effort rollup (forceGuaranteedRollup=false)"
    ]
