"""Druid's DataSourceMetadata compare-and-swap on SQLite and PostgreSQL: a range publishes at most once, never
past a gap, and racing publishers of one range cannot both win."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from druidflow.exceptions import PublishConflictError
from druidflow.metadata.engine import make_engine
from druidflow.metadata.store import MetadataStore
from druidflow.metadata.tables import datasource_metadata
from druidflow.streaming import offsets
from druidflow.streaming.offsets import OffsetsMismatchError


@pytest.fixture
def engine(db_url):
    MetadataStore(db_url).migrate()
    return make_engine(db_url)


def _cas(engine, start, end, topic="t", ds="ds"):
    with engine.begin() as conn:
        return offsets.compare_and_swap(conn, ds, topic, start, end)


def test_first_commit_then_only_the_range_that_starts_at_the_committed_offset(engine):
    assert offsets.committed(engine, "ds") is None
    _cas(engine, {0: 0, 1: 0}, {0: 10, 1: 5})
    assert offsets.committed(engine, "ds").offsets == {0: 10, 1: 5}
    with pytest.raises(OffsetsMismatchError, match="partition 0: committed 10, task started at 0"):
        _cas(engine, {0: 0}, {0: 10})  # the same range again: a duplicate
    with pytest.raises(OffsetsMismatchError):
        _cas(engine, {0: 12}, {0: 20})  # a gap: 10..12 would be skipped
    _cas(engine, {1: 5}, {1: 9})  # partitions move independently
    _cas(engine, {2: 0}, {2: 3})  # a new partition
    assert offsets.committed(engine, "ds").offsets == {0: 10, 1: 9, 2: 3}
    with pytest.raises(OffsetsMismatchError, match="topic"):
        _cas(engine, {0: 10}, {0: 11}, topic="other")


def test_payload_is_druids_kafka_datasource_metadata(engine):
    _cas(engine, {1: 0, 0: 0}, {1: 7, 0: 3})
    with engine.connect() as conn:
        row = conn.execute(sa.select(datasource_metadata)).mappings().one()
    import json

    assert json.loads(row["commit_metadata_payload"]) == {
        "type": "kafka", "partitions": {"type": "end", "stream": "t", "partitionOffsetMap": {"0": 3, "1": 7}}
    }
    assert len(row["commit_metadata_sha1"]) == 40


def test_a_failed_cas_rolls_back_what_its_transaction_wrote(engine):
    _cas(engine, {0: 0}, {0: 10})
    with pytest.raises(OffsetsMismatchError):
        with engine.begin() as conn:
            conn.execute(sa.text("create table marker (x int)"))
            offsets.compare_and_swap(conn, "ds", "t", {0: 0}, {0: 10})
    assert not sa.inspect(engine).has_table("marker")


def test_reset_forgets_or_sets(engine):
    _cas(engine, {0: 0}, {0: 10})
    offsets.reset(engine, "ds", "t", {0: 4})
    assert offsets.committed(engine, "ds").offsets == {0: 4}
    offsets.reset(engine, "ds")
    assert offsets.committed(engine, "ds") is None


def test_racing_publishers_of_one_range_one_wins(engine):
    _cas(engine, {0: 0}, {0: 10})
    results: list[str] = []
    barrier = threading.Barrier(6)

    def publish(i: int) -> None:
        barrier.wait()
        for _ in range(20):
            try:
                _cas(engine, {0: 10}, {0: 20 + i})
                results.append("won")
                return
            except OffsetsMismatchError:
                results.append("mismatch")
                return
            except PublishConflictError:
                continue
            except sa.exc.OperationalError:  # SQLite: database is locked under contention; retry
                continue

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results.count("won") == 1 and results.count("mismatch") == 5
