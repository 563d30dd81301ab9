"""``supervise --until-caught-up`` against a real broker: exactly N rows, then exactly N + M."""

from __future__ import annotations

from druidflow.streaming import offsets, supervisor
from tests.streaming.conftest import kafka_spec
from tests.streaming.helpers import messages, visible_ids


def test_n_messages_give_exactly_n_rows_then_m_more(kafka_broker, runtime):
    topic = kafka_broker.create_topic(partitions=3)
    spec = kafka_spec(kafka_broker.bootstrap, topic, taskCount=2)
    kafka_broker.produce(topic, messages(0, 3000), partitions=3)

    cycles = supervisor.supervise(spec, runtime, until_caught_up=True, max_cycles=20)
    assert cycles[-1].caught_up
    seen = visible_ids(runtime, "events")
    assert sum(seen.values()) == 3000 and set(seen) == set(range(3000)) and max(seen.values()) == 1

    kafka_broker.produce(topic, messages(3000, 700), partitions=3)
    supervisor.supervise(spec, runtime, until_caught_up=True, max_cycles=20)
    seen = visible_ids(runtime, "events")
    assert sum(seen.values()) == 3700 and set(seen) == set(range(3700))
    committed = offsets.committed(runtime.store.engine, "events")
    assert sum(committed.offsets.values()) == 3700


def test_cli_supervise_in_child_processes_and_supervisor_commands(kafka_broker, tmp_path, capsys):
    import json

    from druidflow.cli import main
    from druidflow.tasks.runtime import Runtime

    topic = kafka_broker.create_topic(partitions=2)
    kafka_broker.produce(topic, messages(0, 500), partitions=2)
    spec_file = tmp_path / "sup.json"
    spec_file.write_text(json.dumps(kafka_spec(kafka_broker.bootstrap, topic, data_source="cli_events")))
    url, deep = f"sqlite:///{tmp_path / 'm.db'}", str(tmp_path / "deep")
    common = ["--metadata-url", url, "--deep-storage", deep]
    assert main(common + ["supervise", str(spec_file), "--until-caught-up", "--max-cycles", "10"]) == 0
    rt = Runtime.from_urls(url, deep)
    assert sum(visible_ids(rt, "cli_events").values()) == 500

    capsys.readouterr()
    assert main(common + ["supervisor", "status", "cli_events"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {p: v["committedOffset"] for p, v in status["partitions"].items()} == {"0": 250, "1": 250}
    assert status["state"] == "RUNNING" and status["lastPublish"]

    assert main(common + ["supervisor", "suspend", "cli_events"]) == 0
    kafka_broker.produce(topic, messages(500, 10), partitions=2)
    cycles = supervisor.supervise(json.loads(spec_file.read_text()), rt, max_cycles=1)
    assert cycles[0].suspended and sum(visible_ids(rt, "cli_events").values()) == 500
    assert main(common + ["supervisor", "resume", "cli_events"]) == 0

    assert main(common + ["supervisor", "reset", "cli_events"]) == 0
    assert "dry run" in capsys.readouterr().out
    assert offsets.committed(rt.store.engine, "cli_events") is not None
    assert main(common + ["supervisor", "reset", "cli_events", "--to", "earliest", "--confirm"]) == 0
    assert offsets.committed(rt.store.engine, "cli_events").offsets == {0: 0, 1: 0}


def test_suspended_in_the_spec_suspends_and_a_later_save_keeps_a_suspension(runtime):
    from druidflow.streaming.kafka_spec import parse_supervisor_spec

    spec = kafka_spec("127.0.0.1:9", "t", data_source="sus")
    supervisor.save(runtime, parse_supervisor_spec({**spec, "suspended": True}))
    assert supervisor.is_suspended(runtime, "sus")
    supervisor.save(runtime, parse_supervisor_spec(spec))
    assert supervisor.is_suspended(runtime, "sus")
    supervisor.set_suspended(runtime, "sus", False)
    supervisor.save(runtime, parse_supervisor_spec(spec))
    assert not supervisor.is_suspended(runtime, "sus")
    assert supervisor.list_ids(runtime) == ["sus"]
