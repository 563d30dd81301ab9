"""The tasks table (Druid's TaskStatus lifecycle) and the rules table."""

from __future__ import annotations

import time

import pytest

from druidflow.exceptions import SpecError

PAYLOAD = {"type": "index", "id": "index_wiki_1", "spec": {"dataSchema": {"dataSource": "wiki"}}}


def test_insert_task_is_running_and_idempotent(store):
    assert store.insert_task("index_wiki_1", "index", "wiki", "index_wiki_1", PAYLOAD) is True
    assert store.insert_task("index_wiki_1", "index", "wiki", "index_wiki_1", {"other": 1}) is False
    task = store.get_task("index_wiki_1")
    assert (task.type, task.data_source, task.group_id, task.status, task.active) == ("index", "wiki", "index_wiki_1", "RUNNING", True)
    assert task.payload == PAYLOAD  # the first insert wins
    assert task.task_status() == {
        "id": "index_wiki_1",
        "status": "RUNNING",
        "duration": -1,
        "errorMsg": None,
        "location": {"host": None, "port": -1, "tlsPort": -1},
    }
    assert store.get_task("nope") is None


def test_completion_sets_status_duration_report_and_error(store):
    store.insert_task("t1", "index", "wiki", "t1", PAYLOAD)
    time.sleep(0.01)
    report = {"ingestionStatsAndErrors": {"type": "ingestionStatsAndErrors", "taskId": "t1", "payload": {}}}
    done = store.set_task_status("t1", "SUCCESS", report=report)
    assert (done.status, done.active, done.report, done.error_msg) == ("SUCCESS", False, report, None)
    assert done.duration >= 10 and done.task_status()["status"] == "SUCCESS"
    failed = store.set_task_status("t1", "FAILED", error_msg="boom")
    assert failed.report == report  # kept when not given
    assert failed.task_status()["errorMsg"] == "boom" and failed.error_msg == "boom"
    plus = failed.status_plus()
    assert plus["statusCode"] == "FAILED" and plus["runnerStatusCode"] == "NONE" and plus["dataSource"] == "wiki"


def test_bad_status_and_unknown_task_are_refused(store):
    store.insert_task("t1", "index", "wiki", "t1", PAYLOAD)
    with pytest.raises(SpecError, match="status"):
        store.set_task_status("t1", "DONE")
    with pytest.raises(SpecError, match="no such task"):
        store.set_task_status("t2", "SUCCESS")


def test_list_tasks_filters_and_orders_newest_first(store):
    for i, ds in enumerate(["wiki", "wiki", "other"]):
        store.insert_task(f"t{i}", "index", ds, f"t{i}", PAYLOAD)
        time.sleep(0.002)
    store.set_task_status("t0", "SUCCESS")
    assert [t.id for t in store.list_tasks()] == ["t2", "t1", "t0"]
    assert [t.id for t in store.list_tasks(datasource="wiki")] == ["t1", "t0"]
    assert [t.id for t in store.list_tasks(active=True)] == ["t2", "t1"]
    assert [t.id for t in store.list_tasks(active=False)] == ["t0"]
    assert [t.id for t in store.list_tasks(limit=1)] == ["t2"]


def test_rules_round_trip_and_replace(store):
    assert store.get_rules("wiki") == []
    rules = [{"type": "dropBeforeByPeriod", "period": "P30D"}, {"type": "loadForever"}]
    store.set_rules("wiki", rules)
    assert store.get_rules("wiki") == rules
    store.set_rules("wiki", [{"type": "dropForever"}])
    assert store.get_rules("wiki") == [{"type": "dropForever"}]
    assert store.all_rules() == {"wiki": [{"type": "dropForever"}]}
    with pytest.raises(SpecError, match="rules"):
        store.set_rules("wiki", {"type": "loadForever"})
