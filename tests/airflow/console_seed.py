"""A small dataSource whose timeline shows every state the console draws, seeded through the engine's own API.

``wiki`` (January 2024, versions are lock versions so each set has a writer task):

* 01: one complete set (2 core partitions) -> visible;
* 02: an older complete set, plus a newer set missing a core partition -> visible + incomplete; and an unused
  set (awaiting kill);
* 03: an older and a newer complete set, both used -> overshadowed + visible;
* 04: nothing -> a gap; 05: one complete set -> visible;
* a month-long set older than all of them -> partly visible (it shows through on 04 and after 05).

Tasks: the writers (one with a report with rowStats and saved parse exceptions, one failed), and a running task
holding one lock, a revoked lock.
"""

from __future__ import annotations

import time
from typing import Any

from druidflow.intervals import Interval

DS = "wiki"


def _segment(iv: str, version: str, partition: int, partitions: int, rows: int = 10):
    from druidflow.segments.descriptor import DataSegment
    from druidflow.segments.shardspec import NumberedShardSpec

    day = iv.split("/")[0]
    return DataSegment(
        data_source=DS, interval=Interval.parse(iv), version=version,
        load_spec={"type": "local", "path": f"/deep/{DS}/{day}/{version}/{partition}/index.parquet"},
        shard_spec=NumberedShardSpec(partition_num=partition, partitions=partitions), size=1000 * (partition + 1),
        num_rows=rows,
    )


def _report(task_id: str, *, processed: int, unparseable: int) -> dict[str, Any]:
    return {"ingestionStatsAndErrors": {"type": "ingestionStatsAndErrors", "taskId": task_id, "payload": {
        "ingestionState": "COMPLETED",
        "rowStats": {
            "determinePartitions": {"processed": processed, "processedWithError": 0, "thrownAway": 0,
                                    "unparseable": unparseable, "processedBytes": 2048},
            "buildSegments": {"processed": processed, "processedWithError": 1, "thrownAway": 3,
                              "unparseable": unparseable, "processedBytes": 4096},
        },
        "unparseableEvents": {"determinePartitions": [], "buildSegments": [
            {"timestamp": "2024-01-01T00:00:00.000Z", "input": '{"timestamp": "yesterday"}',
             "details": {"errorMessage": "Unparseable timestamp found! Event: yesterday"}},
        ]},
        "errorMsg": None, "segmentsPublished": 2, "segmentsRead": 0, "recordsProcessed": processed,
    }}}


def seed(engine) -> dict[str, Any]:
    """Seed ``wiki``; returns the task ids by role and the versions by day."""
    from druidflow.locks import TaskLockbox
    from druidflow.metadata.store import MetadataStore

    store = MetadataStore(engine)
    store.migrate()
    box = TaskLockbox(engine, lease_seconds=6 * 3600)  # the locks stay active however slow the test

    def write(task_id: str, iv: str, parts: list[int], partitions: int, *, priority: int = 50) -> str:
        store.insert_task(task_id, "index", DS, task_id, {"type": "index", "id": task_id, "dataSource": DS})
        result = box.try_lock(task_id, datasource=DS, interval=iv, priority=priority)
        assert result.acquired, result
        version = result.lock.version
        store.publish_segments([_segment(iv, version, p, partitions) for p in parts])
        box.release_all(task_id)
        time.sleep(0.003)  # lock versions and created dates: strictly increasing
        return version

    ids = {"month": "index_wiki_month", "d01": "index_wiki_01", "d02_old": "index_wiki_02_old",
           "d02_new": "index_wiki_02_new", "d03_old": "index_wiki_03_old", "d03_new": "index_wiki_03_new",
           "d05": "index_wiki_05", "unused": "index_wiki_02_unused"}
    versions = {"unused": write(ids["unused"], "2024-01-02/P1D", [0], 1)}
    unused_ids = [s.id for s in store.segments(DS, Interval.parse("2024-01-02/P1D"))]
    store.mark_unused(DS, segment_ids=unused_ids, reason="dropped-by-user")
    versions["month"] = write(ids["month"], "2024-01-01/2024-02-01", [0], 1)
    versions["d01"] = write(ids["d01"], "2024-01-01/P1D", [0, 1], 2)
    versions["d02_old"] = write(ids["d02_old"], "2024-01-02/P1D", [0, 1], 2)
    versions["d02_new"] = write(ids["d02_new"], "2024-01-02/P1D", [0], 2)  # core partition 1 missing
    versions["d03_old"] = write(ids["d03_old"], "2024-01-03/P1D", [0], 1)
    versions["d03_new"] = write(ids["d03_new"], "2024-01-03/P1D", [0, 1], 2)
    versions["d05"] = write(ids["d05"], "2024-01-05/P1D", [0], 1)
    store.set_task_status(ids["d01"], "SUCCESS", report=_report(ids["d01"], processed=1234, unparseable=1))
    for key in ("month", "d02_old", "d02_new", "d03_old", "d03_new", "d05", "unused"):
        store.set_task_status(ids[key], "SUCCESS", report=_report(ids[key], processed=10, unparseable=0))
    store.insert_task("index_wiki_failed", "index", DS, "index_wiki_failed", {"type": "index"})
    store.set_task_status("index_wiki_failed", "FAILED", error_msg="spec.ioConfig.inputSource.baseDir: no such directory")
    store.set_rules(DS, [{"type": "loadByPeriod", "period": "P1M"}, {"type": "dropForever"}])
    # A running task holding a lock, and a low-priority lock revoked by a higher-priority one.
    store.insert_task("index_wiki_running", "index", DS, "index_wiki_running", {"type": "index"})
    assert box.try_lock("index_wiki_running", datasource=DS, interval="2024-01-07/P1D", priority=50).acquired
    store.insert_task("compact_wiki_low", "compact", DS, "compact_wiki_low", {"type": "compact"})
    assert box.try_lock("compact_wiki_low", datasource=DS, interval="2024-01-06/P1D", priority=25).acquired
    store.insert_task("index_wiki_high", "index", DS, "index_wiki_high", {"type": "index"})
    assert box.try_lock("index_wiki_high", datasource=DS, interval="2024-01-06/P1D", priority=75).acquired
    return {"ids": ids, "versions": versions}
