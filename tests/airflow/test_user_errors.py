"""What a user sees in Airflow when something is wrong: the operators in-process, as a worker runs them."""

from __future__ import annotations

import json
import traceback

import pytest
from airflow.sdk.exceptions import AirflowFailException

from druidflow.operators.index import IndexSubmitOperator
from druidflow.operators.kill import DruidKillOperator
from tests.airflow.test_kill_dags import context as kill_context
from tests.airflow.test_kill_dags import env as kill_env  # noqa: F401 - fixture
from tests.airflow.test_operators import context, env, spec_for  # noqa: F401 - env is a fixture
from tests.tasks.test_kill import DS, day, rows, seed, unuse


def _one_traceback(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    assert "The above exception was the direct cause" not in text
    assert "During handling of the above exception" not in text
    return text


def test_an_input_matching_no_file_fails_the_submit_naming_base_dir_and_filter(env):
    spec = spec_for(env["inputs"])
    spec["spec"]["ioConfig"]["inputSource"]["filter"] = "*.csv"
    with pytest.raises(AirflowFailException) as caught:
        IndexSubmitOperator(task_id="submit", spec=spec, work_dir=env["work"]).execute(context())
    message = str(caught.value)
    assert f"baseDir {env['inputs']}" in message and "'*.csv'" in message and "retrying cannot help" in message
    _one_traceback(caught.value)
    assert env["store"].list_tasks() == []  # refused before the task was recorded: no build ever runs


def test_a_missing_local_file_is_found_at_submit(env):
    spec = spec_for(env["inputs"])
    spec["spec"]["ioConfig"]["inputSource"] = {"type": "local", "files": [str(env["inputs"] / "gone.json")]}
    with pytest.raises(AirflowFailException, match="gone.json does not exist"):
        IndexSubmitOperator(task_id="submit", spec=spec, work_dir=env["work"]).execute(context())


def test_a_bad_spec_shows_one_traceback_and_keeps_the_engine_error_reachable(env):
    from druidflow.exceptions import SpecError
    from druidflow.operators.base import druidflow_cause

    spec = spec_for(env["inputs"])
    spec["spec"]["dataSchema"]["granularitySpec"]["segmentGranularity"] = "FORTNIGHT"
    with pytest.raises(AirflowFailException) as caught:
        IndexSubmitOperator(task_id="submit", spec=spec, work_dir=env["work"]).execute(context())
    text = _one_traceback(caught.value)
    assert "FORTNIGHT" in text and "SpecError" not in text.split("AirflowFailException", 1)[0]
    assert isinstance(druidflow_cause(caught.value), SpecError)


def test_the_dry_run_kill_xcom_does_not_count_what_was_not_killed(kill_env):
    segments = seed(kill_env, [day(1), day(2)])
    unuse(kill_env, segments)
    form = {"data_source": DS, "interval": "2024-01-01/2024-02-01", "batch_size": 100, "versions": [], "confirm": False}
    plan = json.loads(json.dumps(DruidKillOperator(task_id="kill").execute(kill_context(form))))
    assert plan["dryRun"] is True and plan["numSegmentsToKill"] == 2 and plan["numFilesToDelete"] == 2
    assert not {"numSegmentsKilled", "bytesKilled", "numFilesDeleted", "numBatchesProcessed"} & set(plan)
    assert len(rows(kill_env)) == 2
    done = DruidKillOperator(task_id="kill").execute(kill_context({**form, "confirm": True}, run_id="manual__3"))
    assert done["numSegmentsKilled"] == 2 and "numSegmentsToKill" not in done
