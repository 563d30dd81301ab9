"""Task rows (Druid's ``druid_tasks``) and retention rules (``druid_rules``) in the metadata store."""

from __future__ import annotations

import json
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from druidflow.exceptions import SpecError
from druidflow.intervals import format_instant, now_ms, parse_instant
from druidflow.metadata.records import TASK_STATES, TaskRecord, task_status_payload
from druidflow.metadata.segment_rows import insert_ignore
from druidflow.metadata.store_base import StoreBase
from druidflow.metadata.tables import rules as R
from druidflow.metadata.tables import tasks as T


class TasksAndRules(StoreBase):
    """Tasks and rules."""

    # ------------------------------------------------------------------------------------------------ tasks

    def insert_task(
        self,
        task_id: str,
        type: str,
        datasource: str,
        group_id: str,
        payload: dict[str, Any],
        *,
        conn: Optional[Connection] = None,
    ) -> bool:
        """Record a submitted task as RUNNING and active (Druid's ``druid_tasks`` insert). Returns False, changing
        nothing, when a task with this id is already recorded."""
        now = format_instant(now_ms())
        row = {
            "id": task_id,
            "type": type,
            "dataSource": datasource,
            "group_id": group_id,
            "status": "RUNNING",
            "active": True,
            "payload": json.dumps(payload, separators=(",", ":")),
            "status_payload": task_status_payload(task_id, "RUNNING", -1, None),
            "created_date": now,
            "updated_date": now,
        }
        with self._write(conn) as c:
            return c.execute(insert_ignore(c, T, row, "id")).rowcount == 1

    def set_task_status(
        self,
        task_id: str,
        status: str,
        *,
        report: Optional[dict[str, Any]] = None,
        error_msg: Optional[str] = None,
        conn: Optional[Connection] = None,
    ) -> TaskRecord:
        """Set a task's state (RUNNING, SUCCESS or FAILED): ``active`` and the duration follow from it, the error
        message is replaced, and ``report`` (when given) is stored. Returns the updated record."""
        if status not in TASK_STATES:
            raise SpecError("status", status, f"a task status is one of {', '.join(TASK_STATES)}")
        now = now_ms()
        with self._write(conn) as c:
            row = c.execute(sa.select(T.c.created_date).where(T.c.id == task_id)).first()
            if row is None:
                raise SpecError("task_id", task_id, "no such task in the metadata store")
            duration = -1 if status == "RUNNING" else max(0, now - parse_instant(row.created_date))
            values: dict[str, Any] = {
                "status": status,
                "active": status == "RUNNING",
                "status_payload": task_status_payload(task_id, status, duration, error_msg),
                "error_msg": error_msg,
                "updated_date": format_instant(now),
            }
            if report is not None:
                values["report"] = json.dumps(report, separators=(",", ":"))
            c.execute(sa.update(T).where(T.c.id == task_id).values(**values))
            return self._tasks(c, sa.select(T).where(T.c.id == task_id))[0]

    def get_task(self, task_id: str, *, conn: Optional[Connection] = None) -> Optional[TaskRecord]:
        """The task ``task_id``, or None."""
        with self._read(conn) as c:
            found = self._tasks(c, sa.select(T).where(T.c.id == task_id))
        return found[0] if found else None

    def list_tasks(
        self,
        datasource: Optional[str] = None,
        active: Optional[bool] = None,
        limit: Optional[int] = 1000,
        *,
        conn: Optional[Connection] = None,
    ) -> list[TaskRecord]:
        """Tasks, newest first, optionally of one dataSource and only active (or only complete) ones."""
        query = sa.select(T)
        if datasource is not None:
            query = query.where(T.c.dataSource == datasource)
        if active is not None:
            query = query.where(T.c.active == (sa.true() if active else sa.false()))
        query = query.order_by(T.c.created_date.desc(), T.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._read(conn) as c:
            return self._tasks(c, query)

    @staticmethod
    def _tasks(conn: Connection, query: sa.Select[Any]) -> list[TaskRecord]:
        return [
            TaskRecord(
                id=r.id,
                type=r.type,
                data_source=r.dataSource,
                group_id=r.group_id,
                status=r.status,
                active=bool(r.active),
                payload=json.loads(r.payload),
                status_payload=json.loads(r.status_payload) if r.status_payload else {},
                report=json.loads(r.report) if r.report else None,
                error_msg=r.error_msg,
                created_date=r.created_date,
                updated_date=r.updated_date,
            )
            for r in conn.execute(query)
        ]

    # ------------------------------------------------------------------------------------------------ rules

    def set_rules(self, data_source: str, rules: list[dict[str, Any]], *, conn: Optional[Connection] = None) -> None:
        """Replace the retention rules of ``data_source`` (a JSON list, evaluated in order, first match wins)."""
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise SpecError("rules", rules, "rules are a list of JSON objects")
        payload = json.dumps(rules, separators=(",", ":"))
        version = format_instant(now_ms())
        with self._write(conn) as c:
            updated = c.execute(
                sa.update(R).where(R.c.dataSource == data_source).values(payload=payload, version=version)
            ).rowcount
            if not updated:
                c.execute(sa.insert(R).values(dataSource=data_source, payload=payload, version=version))

    def get_rules(self, data_source: str, *, conn: Optional[Connection] = None) -> list[dict[str, Any]]:
        """The retention rules of ``data_source``; an empty list when none were set."""
        with self._read(conn) as c:
            payload = c.execute(sa.select(R.c.payload).where(R.c.dataSource == data_source)).scalar()
        return json.loads(payload) if payload else []

    def all_rules(self, *, conn: Optional[Connection] = None) -> dict[str, list[dict[str, Any]]]:
        """Every dataSource's retention rules."""
        with self._read(conn) as c:
            return {r.dataSource: json.loads(r.payload) for r in c.execute(sa.select(R.c.dataSource, R.c.payload))}
