"""The DAG files import cleanly, fast, and without touching the engine's I/O modules at parse time.

The check runs in a fresh interpreter so that ``sys.modules`` shows exactly what parsing the DAG folder imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.airflow.conftest import DAGS_FOLDER, airflow_env

# Engine modules that open databases, storage or input files; parsing a DAG must import none of them.
IO_MODULES = (
    "druidflow.tasks",
    "druidflow.metadata.store",
    "druidflow.metadata.engine",
    "druidflow.locks",
    "druidflow.storage",
    "druidflow.inputs",
    "druidflow.ingest",
    "druidflow.segments.format",
    "pyarrow",
    "boto3",
    "duckdb",
)

_PROBE = r"""
import json, sys, time
import airflow  # configuration and providers load here, outside the timed part
from airflow.dag_processing.dagbag import DagBag
t0 = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
parse_s = time.perf_counter() - t0
dag = bag.dags.get("druidflow_index")
print(json.dumps({
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dag_ids": sorted(bag.dag_ids),
    "parse_s": parse_s,
    "modules": sorted(sys.modules),
    "tasks": {t.task_id: [type(t).__name__, getattr(t.trigger_rule, "value", str(t.trigger_rule)), sorted(t.upstream_task_ids)] for t in dag.tasks} if dag else {},
    "setup": [t.task_id for t in dag.tasks if t.is_setup] if dag else [],
    "teardown": [t.task_id for t in dag.tasks if t.is_teardown] if dag else [],
    "schedule": type(dag.timetable).__name__ if dag else None,
    "params": sorted(dag.params) if dag else [],
    "native": dag.render_template_as_native_obj if dag else None,
    "types": {d.dag_id: {k: d.params.get_param(k).schema.get("type") for k in d.params} for d in bag.dags.values()},
    "task_ids": {d.dag_id: sorted(t.task_id for t in d.tasks) for d in bag.dags.values()},
    "build_retries": {d.dag_id: [t.partial_kwargs.get("retries") for t in d.tasks if t.task_id.endswith("build_segments")]
                      for d in bag.dags.values()},
    "labels": {d.dag_id: [t.partial_kwargs.get("map_index_template") for t in d.tasks if t.task_id.endswith("build_segments")]
               for d in bag.dags.values()},
    "fail_dagrun": {d.dag_id: [t.on_failure_fail_dagrun for t in d.tasks if t.is_teardown] for d in bag.dags.values()},
    "parallel": {t.task_id.split(".")[-1]: {
        "upstream": sorted(u.split(".")[-1] for u in t.upstream_task_ids),
        "trigger_rule": getattr(t.trigger_rule, "value", str(t.trigger_rule)),
        "mapped": hasattr(t, "partial_kwargs"),
        "retries": t.partial_kwargs.get("retries") if hasattr(t, "partial_kwargs") else t.retries,
        "label": t.partial_kwargs.get("map_index_template") if hasattr(t, "partial_kwargs") else None,
        "setup": t.is_setup, "teardown": t.is_teardown, "fail_dagrun": t.on_failure_fail_dagrun,
    } for t in bag.dags["druidflow_index_parallel"].tasks} if "druidflow_index_parallel" in bag.dags else {},
}))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory) -> dict:
    """What parsing the repo's DAG folder in a fresh interpreter gives (done once for this module)."""
    tmp_path = tmp_path_factory.mktemp("dagbag-home")
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(DAGS_FOLDER)],
        env=airflow_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_dag_folder_imports_without_errors_or_parse_time_io(parsed):
    result = parsed
    assert result["import_errors"] == {}
    assert "druidflow_index" in result["dag_ids"]
    imported_io = [m for m in result["modules"] if m.startswith(IO_MODULES)]
    assert imported_io == [], f"parsing the DAGs imported engine I/O modules: {imported_io}"
    assert result["parse_s"] < 3.0, f"parsing the DAG folder took {result['parse_s']:.2f}s"


def test_druidflow_index_shape(parsed):
    result = parsed
    tasks = result["tasks"]
    assert set(tasks) == {
        "index.submit",
        "index.acquire_locks",
        "index.determine_partitions",
        "index.build_segments",
        "index.publish",
        "index.release_locks",
    }
    assert tasks["index.build_segments"][0] == "MappedOperator"
    assert tasks["index.release_locks"][1] == "all_done_setup_success"
    assert tasks["index.publish"][1] == "none_failed_min_one_success"  # runs when zero build units were mapped
    assert "index.publish" in tasks["index.release_locks"][2]
    assert result["setup"] == ["index.acquire_locks"]
    assert result["teardown"] == ["index.release_locks"]
    assert result["schedule"] == "NullTimetable"  # schedule=None: manual runs only
    assert result["native"] is True
    assert {"spec", "data_source", "input", "intervals", "append"} <= set(result["params"])


def test_every_registered_task_type_has_its_dag(parsed):
    from druidflow.tasks.registry import TASK_TYPES

    for entry in TASK_TYPES.values():
        if entry.type == "kill":
            assert parsed["task_ids"]["druidflow_kill"] == ["kill"]
            continue
        tasks = parsed["task_ids"].get(entry.dag_id)
        assert tasks, f"no DAG {entry.dag_id} for task type {entry.type}"
        build = ".merge_segments" if entry.type == "index_parallel" else ".build_segments"
        release = ".publish_release" if entry.type == "index_parallel" else ".release_locks"
        assert any(t.endswith(build) for t in tasks) and any(t.endswith(release) for t in tasks)


def test_druidflow_index_parallel_runs_the_lean_group(parsed):
    """Four serial control tasks (setup, decide, plan_merges, teardown) around the three mapped phases, and an empty
    end marker for what follows the group."""
    tasks = parsed["parallel"]
    assert set(tasks) == {"submit_lock_split", "scan", "decide_partitions", "partial_segments", "plan_merges", "merge_segments",
                          "publish_release", "published"}
    assert [n for n, t in tasks.items() if not t["mapped"]] == ["submit_lock_split", "decide_partitions", "plan_merges", "publish_release", "published"]
    assert tasks["published"]["upstream"] == ["publish_release"]  # an EmptyOperator: the scheduler marks it, no worker
    assert tasks["submit_lock_split"]["setup"] and tasks["publish_release"]["teardown"] and tasks["publish_release"]["fail_dagrun"]
    assert tasks["publish_release"]["trigger_rule"] == "all_done_setup_success"  # runs after any failure: releases the locks
    assert tasks["decide_partitions"]["upstream"] == ["scan"] and tasks["decide_partitions"]["trigger_rule"] == "none_failed"
    assert "decide_partitions" in tasks["partial_segments"]["upstream"] and "plan_merges" in tasks["merge_segments"]["upstream"]
    assert "merge_segments" in tasks["publish_release"]["upstream"]
    for name in ("scan", "partial_segments", "merge_segments"):
        assert tasks[name]["mapped"] and tasks[name]["retries"] == 5 and tasks[name]["label"]  # not .partial()'s 0


@pytest.mark.parametrize("dag_id", ["druidflow_index", "druidflow_compact", "druidflow_append", "druidflow_merge",
                                    "druidflow_same_interval_merge", "druidflow_convert", "druidflow_index_hadoop"])
def test_protocol_dags_label_mapped_builds_keep_retries_and_fail_a_stopped_run(parsed, dag_id):
    assert parsed["build_retries"][dag_id] == [2]  # not the 0 that .partial() would leave
    assert parsed["labels"][dag_id] == ["{{ task.build_unit_label }}"]
    assert parsed["fail_dagrun"][dag_id] == [True]


@pytest.mark.parametrize("dag_id", ["druidflow_index", "druidflow_compact", "druidflow_kill", "druidflow_append",
                                    "druidflow_merge", "druidflow_same_interval_merge", "druidflow_convert"])
def test_trigger_forms_mark_only_required_fields_required(parsed, dag_id):
    types = parsed["types"][dag_id]
    assert types["data_source"] == "string"  # required: Airflow's form marks a type without null as required
    optional = {"spec", "dimensions", "metrics", "intervals", "append", "segment_granularity", "query_granularity",
                "target_rows_per_segment", "priority", "versions", "limit", "batch_size", "confirm", "index_spec",
                "force", "validate", "rollup", "timestamp_column", "timestamp_format", "input_format"}
    for name in optional & set(types):
        assert "null" in types[name], f"{dag_id}: optional field {name} is marked required ({types[name]})"
