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
