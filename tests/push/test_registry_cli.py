"""Which dataSources accept pushes (specs from a folder or a JSON document), and the push CLI commands."""

from __future__ import annotations

import json

from druidflow.cli import main
from druidflow.intervals import now_ms
from druidflow.push.receiver import receive
from druidflow.push.registry import PushRegistry, specs_from_dir, specs_from_document

from .helpers import events, ndjson, realtime_spec, realtime_task


def test_registry_keeps_good_specs_and_names_the_bad_ones(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(realtime_spec("a")))
    (tmp_path / "b.json").write_text(json.dumps(realtime_spec("b", window="whenever")))
    (tmp_path / "c.json").write_text("{not json")
    doc = json.dumps([realtime_spec("d", service_name="svc-d"), realtime_spec("a")])
    reg = PushRegistry.of(specs_from_dir(tmp_path) + specs_from_document(doc))
    assert sorted(reg.tasks) == ["d"]
    assert reg.by_service("svc-d").data_source == "d" and reg.by_data_source("a") is None
    errors = {k.rsplit("/", 1)[-1]: v for k, v in reg.errors.items()}
    assert "windowPeriod" in errors["b.json"] and "unreadable" in errors["c.json"]
    assert "more than once" in errors["a.json"] and "more than once" in errors["druidflow_push_specs[1]"]


def test_push_status_and_realtime_commands(rt, tmp_path, db_url, capsys):
    task = realtime_task(segment="SECOND")
    receive(task, ndjson(events(now_ms() - 1500, range(3))), rt.store.engine)
    base = ["--metadata-url", db_url, "--deep-storage", str(tmp_path / "deep")]
    assert main([*base, "push-status", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["dataSource"], row["pendingEvents"]) == ("events", 3)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(realtime_spec(segment="SECOND", window="PT0S")))
    assert main([*base, "realtime", str(spec), "--until-empty", "--poll", "0.05"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"dataSource": "events", "handedOffEvents": 3}
    assert main([*base, "push-status"]) == 0
    out = capsys.readouterr().out
    assert "events" in out and " 3 " in f" {out} "


def test_push_server_refuses_a_non_loopback_address(tmp_path, capsys):
    assert main(["push-server", str(tmp_path), "--host", "0.0.0.0"]) == 1
    assert "loopback" in capsys.readouterr().err
