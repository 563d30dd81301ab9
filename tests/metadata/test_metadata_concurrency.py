"""Concurrent writers: publishes never duplicate, allocations never hand out one id twice."""

from __future__ import annotations

import threading

from druidflow.exceptions import PublishConflictError
from druidflow.intervals import Interval
from druidflow.metadata.store import MetadataStore
from tests.metadata.metadata_helpers import make_segment

V1 = "2024-02-01T00:00:00.000Z"


def _run_all(targets) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_racing_publishes_of_one_batch_store_it_once(store, db_url):
    batch = [make_segment(f"2024-01-{d:02d}/2024-01-{d + 1:02d}", V1) for d in range(1, 21)]
    results = []

    def publish():
        s = MetadataStore(db_url)
        for _attempt in range(5):
            try:
                results.append(s.publish_segments(batch))
                return
            except PublishConflictError:
                continue  # retryable: the retry sees the segments as already present
        raise AssertionError("publish never settled")

    assert _run_all([publish] * 4) == []
    assert len(store.used_segments("wiki")) == 20
    assert sum(len(r.inserted) for r in results) == 20
    assert all(set(r.segment_ids) == {s.id for s in batch} for r in results)


def test_racing_allocations_get_distinct_partitions(store, db_url):
    store.publish_segments([make_segment("2024-01-01/2024-01-02", V1, 0, 1)])
    got = []

    def allocate(i):
        def run():
            s = MetadataStore(db_url)
            got.append(
                s.allocate_segment(
                    "wiki", Interval.parse("2024-01-01/2024-01-02"), sequence_name=f"seq-{i}",
                    lock_version="2024-05-01T00:00:00.000Z", task_allocator_id=f"t{i}",
                )
            )
        return run

    assert _run_all([allocate(i) for i in range(6)]) == []
    assert sorted(a.partition_num for a in got) == [1, 2, 3, 4, 5, 6]
    assert {a.core_partitions for a in got} == {1}
