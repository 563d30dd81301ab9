"""What the metadata store hands back: segment rows, publish outcomes, segment allocations, task rows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional

from druidflow.intervals import Interval
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.ids import segment_id
from druidflow.segments.shardspec import NumberedShardSpec
from druidflow.specs.base import DruidModel

#: Druid's TaskState values, as stored in ``druidflow_tasks.status``.
TASK_STATES = ("RUNNING", "SUCCESS", "FAILED")


@dataclass(frozen=True)
class SegmentRecord:
    """A row of ``druidflow_segments``: the segment plus its state in the metadata DB."""

    segment: DataSegment
    used: bool
    used_status_last_updated: str
    unused_reason: Optional[str]
    created_date: str
    kill_task_id: Optional[str]

    @property
    def id(self) -> str:
        return self.segment.id

    def as_dict(self) -> dict[str, Any]:
        """Druid's segment payload plus the row's state (what ``druidflow segments --json`` prints)."""
        return {
            **self.segment.payload(),
            "id": self.segment.id,
            "used": self.used,
            "usedStatusLastUpdated": self.used_status_last_updated,
            "unusedReason": self.unused_reason,
            "createdDate": self.created_date,
        }


@dataclass(frozen=True)
class PublishResult:
    """What one :meth:`~druidflow.metadata.store.MetadataStore.publish_segments` call did.

    ``inserted`` lists the new rows, ``inserted_unused`` those of them stored with ``used = false`` because other
    segments of the same batch overshadow them (Druid's rule), ``already_present`` the ids that were there with
    the same payload (a retried publish) and were left untouched.
    """

    inserted: tuple[str, ...] = ()
    already_present: tuple[str, ...] = ()
    inserted_unused: tuple[str, ...] = ()

    @property
    def segment_ids(self) -> tuple[str, ...]:
        """Every id of the batch: inserted now or already there."""
        return self.inserted + self.already_present


class SegmentAllocation(DruidModel):
    """A segment id handed out to an appending task (Druid's ``SegmentIdWithShardSpec``), JSON-serialisable."""

    data_source: str
    interval: Interval
    version: str
    shard_spec: NumberedShardSpec

    @property
    def id(self) -> str:
        return segment_id(self.data_source, self.interval, self.version, self.shard_spec.partition_num)

    @property
    def partition_num(self) -> int:
        return self.shard_spec.partition_num

    @property
    def core_partitions(self) -> int:
        return self.shard_spec.partitions


@dataclass(frozen=True)
class TaskRecord:
    """A row of ``druidflow_tasks``."""

    id: str
    type: str
    data_source: str
    group_id: str
    status: str  # RUNNING | SUCCESS | FAILED
    active: bool
    payload: dict[str, Any]
    status_payload: dict[str, Any]
    report: Optional[dict[str, Any]]
    error_msg: Optional[str]
    created_date: str
    updated_date: str

    @property
    def duration(self) -> int:
        """Run time in ms once complete, -1 while running (Druid's TaskStatus.duration)."""
        return int(self.status_payload.get("duration", -1))

    def task_status(self) -> dict[str, Any]:
        """Druid's stored ``TaskStatus``: ``{"id", "status", "duration", "errorMsg", "location"}``."""
        return dict(self.status_payload)

    def status_plus(self) -> dict[str, Any]:
        """Druid's ``TaskStatusPlus``, the shape of the Overlord's task list API."""
        return {
            "id": self.id,
            "groupId": self.group_id,
            "type": self.type,
            "createdTime": self.created_date,
            "queueInsertionTime": self.created_date,
            "statusCode": self.status,
            "status": self.status,
            "runnerStatusCode": "RUNNING" if self.active else "NONE",
            "duration": self.duration,
            "location": self.status_payload.get("location", _NO_LOCATION),
            "dataSource": self.data_source,
            "errorMsg": self.error_msg,
        }


_NO_LOCATION = {"host": None, "port": -1, "tlsPort": -1}


def segment_from_payload(payload: bytes | str) -> DataSegment:
    """The DataSegment of a stored payload; the stored ``identifier`` is dropped (it is always recomputed), so a
    segment read back equals the one published."""
    data = json.loads(payload)
    data.pop("identifier", None)
    data["interval"] = _parse_interval(data["interval"])
    return DataSegment.model_validate(data)


# Segments read together share few distinct intervals; parsing each once is a large part of reading 100k rows.
_parse_interval = lru_cache(maxsize=65536)(Interval.parse)


def task_status_payload(task_id: str, status: str, duration: int, error_msg: Optional[str]) -> str:
    """The JSON stored in ``druidflow_tasks.status_payload``."""
    return json.dumps(
        {"id": task_id, "status": status, "duration": duration, "errorMsg": error_msg, "location": _NO_LOCATION},
        separators=(",", ":"),
    )
