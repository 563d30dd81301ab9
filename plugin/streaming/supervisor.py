"""The Kafka supervisor: plans tasks from the committed offsets, runs them, and keeps its state in the DB.

Each cycle: read the committed offsets (:mod:`druidflow.streaming.offsets`) and the topic's partitions; a
partition with no committed offset starts at the earliest or latest offset (``useEarliestOffset``); one that
fell behind the broker's earliest offset is reset automatically (``resetOffsetAutomatically``) or stops the
supervisor with an error. Partitions go to ``taskCount`` task groups (partition ``p`` to group ``p %
taskCount``), each run by ``replicas`` tasks with the same start offsets (at most one of them publishes). The
supervisor is "caught up" when, in one cycle, every partition was read to the broker's end and published.

State lives in ``druidflow_supervisors`` (the spec, suspended or not), so ``suspend``/``resume`` from another
shell or the Airflow DAG see the same truth. Tasks run in child processes (``runner="process"``, the default:
a task that overruns ``taskDuration + completionTimeout`` is killed) or in this process (``"inline"``).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional

import sqlalchemy as sa

from druidflow.exceptions import DruidflowError, InputError, SpecError
from druidflow.intervals import format_instant, now_ms, parse_instant
from druidflow.metadata.tables import supervisors as SV
from druidflow.streaming import kafka_client, offsets
from druidflow.streaming.kafka_spec import KafkaSupervisorSpec
from druidflow.streaming.kafka_spec import parse_supervisor_spec as parse_supervisor_spec
from druidflow.streaming.kafka_task import KafkaTaskReport, KafkaTaskSpec, new_task, run
from druidflow.tasks.runtime import Runtime

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- stored state


def save(rt: Runtime, sup: KafkaSupervisorSpec) -> None:
    """Create or replace the supervisor (Druid's POST /supervisor). A spec with ``"suspended": true`` suspends
    it; otherwise a stored suspension is kept (the DAG saves its spec every run, which must not undo a suspend)."""
    now = format_instant(now_ms())
    payload = json.dumps(sup.model_dump(), separators=(",", ":"))
    with rt.store.engine.begin() as conn:
        row = conn.execute(sa.select(SV.c.suspended).where(SV.c.id == sup.id)).first()
        if row is None:
            conn.execute(
                sa.insert(SV).values(
                    id=sup.id, dataSource=sup.data_source, type="kafka", created_date=now, updated_date=now,
                    suspended=sup.suspended, payload=payload,
                )
            )
        else:
            values = {"payload": payload, "updated_date": now, **({"suspended": True} if sup.suspended else {})}
            conn.execute(sa.update(SV).where(SV.c.id == sup.id).values(**values))


def load(rt: Runtime, supervisor_id: str) -> tuple[KafkaSupervisorSpec, bool]:
    """The stored spec and whether the supervisor is suspended."""
    with rt.store.engine.connect() as conn:
        row = conn.execute(sa.select(SV.c.payload, SV.c.suspended).where(SV.c.id == supervisor_id)).first()
    if row is None:
        raise SpecError("supervisor", supervisor_id, "no such supervisor (start one with `druidflow supervise SPEC.json`)")
    return parse_supervisor_spec(row.payload), bool(row.suspended)


def list_ids(rt: Runtime) -> list[str]:
    with rt.store.engine.connect() as conn:
        return [r.id for r in conn.execute(sa.select(SV.c.id).order_by(SV.c.id))]


def stored_specs(engine: Any) -> list[dict[str, Any]]:
    """Every stored supervisor's spec JSON (what the supervisor DAG file builds DAGs from)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(SV.name):
            return []
        return [json.loads(r.payload) for r in conn.execute(sa.select(SV.c.payload).order_by(SV.c.id))]


def terminate(rt: Runtime, supervisor_id: str) -> None:
    """Forget the supervisor (Druid's terminate); its committed offsets stay, so a new one continues from them."""
    load(rt, supervisor_id)
    with rt.store.engine.begin() as conn:
        conn.execute(sa.delete(SV).where(SV.c.id == supervisor_id))


def set_suspended(rt: Runtime, supervisor_id: str, suspended: bool) -> None:
    load(rt, supervisor_id)
    with rt.store.engine.begin() as conn:
        conn.execute(
            sa.update(SV).where(SV.c.id == supervisor_id).values(suspended=suspended, updated_date=format_instant(now_ms()))
        )


def is_suspended(rt: Runtime, supervisor_id: str) -> bool:
    with rt.store.engine.connect() as conn:
        row = conn.execute(sa.select(SV.c.suspended).where(SV.c.id == supervisor_id)).first()
    return bool(row.suspended) if row is not None else False


# ------------------------------------------------------------------------------------------------ planning


def _broker_offsets(sup: KafkaSupervisorSpec) -> tuple[list[int], dict[int, tuple[int, int]]]:
    cons = kafka_client.consumer(sup.io, f"druidflow-{sup.id}")
    try:
        parts = kafka_client.partitions(cons, sup.io.topic)
        return parts, kafka_client.watermarks(cons, sup.io.topic, parts)
    finally:
        cons.close()


def start_offsets(sup: KafkaSupervisorSpec, rt: Runtime) -> dict[int, int]:
    """Where each partition's next task starts: the committed offset, else earliest/latest."""
    parts, marks = _broker_offsets(sup)
    stored = offsets.committed(rt.store.engine, sup.data_source)
    if stored is not None and stored.stream != sup.io.topic:
        raise InputError(
            f"supervisor {sup.id}: the committed offsets are of topic {stored.stream!r}, the spec reads "
            f"{sup.io.topic!r}; reset the supervisor (druidflow supervisor reset {sup.id} --confirm)"
        )
    committed = stored.offsets if stored is not None else {}
    start: dict[int, int] = {}
    behind: dict[int, int] = {}
    for p in parts:
        low, high = marks[p]
        if p not in committed:
            start[p] = low if sup.io.use_earliest_offset else high
        elif committed[p] < low:
            behind[p] = committed[p]
            start[p] = low if sup.io.use_earliest_offset else high
        else:
            start[p] = committed[p]
    if behind:
        detail = ", ".join(f"partition {p} at {o} (earliest now {marks[p][0]})" for p, o in sorted(behind.items()))
        if not sup.tuning.reset_offset_automatically:
            raise InputError(
                f"supervisor {sup.id}: committed offsets are no longer on the broker: {detail}; reset the supervisor "
                "or set tuningConfig.resetOffsetAutomatically"
            )
        log.warning("supervisor %s: resetting offsets automatically: %s", sup.id, detail)
        offsets.reset(rt.store.engine, sup.data_source, sup.io.topic, {**committed, **{p: start[p] for p in behind}})
    return start


def plan_tasks(sup: KafkaSupervisorSpec, rt: Runtime) -> list[KafkaTaskSpec]:
    """The tasks of one cycle: ``replicas`` tasks per task group, each with its partitions' start offsets."""
    start = start_offsets(sup, rt)
    groups: dict[int, dict[int, int]] = {}
    for p, o in start.items():
        groups.setdefault(p % sup.io.task_count, {})[p] = o
    return [new_task(sup, groups[g]) for g in sorted(groups) for _ in range(sup.io.replicas)]


# ------------------------------------------------------------------------------------------------ running


Runner = Callable[[KafkaTaskSpec], KafkaTaskReport]


def inline_runner(rt: Runtime) -> Runner:
    return lambda task: run(task, rt)


def process_runner(metadata_url: str, deep_storage: str, timeout_s: float, work_dir: Optional[str] = None) -> Runner:
    """Run each task as ``python -m druidflow.streaming.kafka_task``; kill it when it overruns ``timeout_s``."""

    def run_in_child(task: KafkaTaskSpec) -> KafkaTaskReport:
        cmd = [sys.executable, "-m", "druidflow.streaming.kafka_task"]
        # The URLs go by environment, not argv, where any user of the machine could read a password in them.
        env = {**os.environ, "DRUIDFLOW_METADATA_URL": metadata_url, "DRUIDFLOW_DEEP_STORAGE": deep_storage}
        if work_dir:
            env["DRUIDFLOW_WORK_DIR"] = work_dir
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        try:
            out, err = proc.communicate(task.model_dump_json(), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return _failed(task, f"killed after completionTimeout ({timeout_s:.0f} s)")
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if lines:
            return KafkaTaskReport.model_validate_json(lines[-1])
        tail = (err.strip().splitlines() or ["no output"])[-1]
        return _failed(task, f"task process exited with code {proc.returncode}: {tail}")

    return run_in_child


def _failed(task: KafkaTaskSpec, error: str) -> KafkaTaskReport:
    return KafkaTaskReport(
        task_id=task.task_id, data_source=task.data_source, status="FAILED", published=False,
        start=task.start, end=dict(task.start), error=error,
    )


@dataclass
class Cycle:
    """One supervisor cycle: its tasks' reports, and whether every partition is now published to its end."""

    reports: list[KafkaTaskReport] = field(default_factory=list)
    caught_up: bool = False
    suspended: bool = False

    @property
    def rows(self) -> int:
        return sum(r.row_stats.processed + r.row_stats.processed_with_error for r in self.reports if r.published)


def reap_lost_tasks(sup: KafkaSupervisorSpec, rt: Runtime) -> list[str]:
    """Mark FAILED the Kafka tasks still RUNNING long after ``taskDuration + completionTimeout`` whose locks are
    gone (their process died), and free their pending segment ids: Druid's Overlord does the same for tasks whose
    worker vanished."""
    limit = sup.io.ms("task_duration") + sup.io.ms("completion_timeout")
    now = now_ms()
    live = {lk.task_id for lk in rt.lockbox.locks(datasource=sup.data_source) if lk.active}
    lost = []
    for t in rt.store.list_tasks(datasource=sup.data_source, active=True, limit=1000):
        if t.type == "index_kafka" and t.id not in live and now - parse_instant(t.created_date) > limit:
            message = "the task's process was lost (no report after taskDuration + completionTimeout); its range is read again"
            rt.store.set_task_status(t.id, "FAILED", error_msg=message)
            # Its allocations are spent; its pushed files (unique keys per attempt) are left to the orphan sweep.
            rt.store.delete_pending_segments(sup.data_source, t.id)
            lost.append(t.id)
    return lost


def run_cycle(sup: KafkaSupervisorSpec, rt: Runtime, runner: Runner) -> Cycle:
    """Plan and run one cycle's tasks (task groups in parallel, up to ``workerThreads``)."""
    if is_suspended(rt, sup.id):
        return Cycle(suspended=True)
    reap_lost_tasks(sup, rt)
    tasks = plan_tasks(sup, rt)
    workers = sup.tuning.worker_threads or min(10, max(1, len(tasks)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reports = list(pool.map(runner, tasks))
    for r in reports:
        if r.status != "SUCCESS":
            log.warning("supervisor %s: task %s failed: %s", sup.id, r.task_id, r.error)
    published = [r for r in reports if r.published]
    reached = {p for r in published for p in r.at_end}
    caught_up = bool(tasks) and all(p in reached for t in tasks for p in t.start)
    return Cycle(reports=reports, caught_up=caught_up)


def supervise(
    spec: Any,
    rt: Runtime,
    *,
    runner: Optional[Runner] = None,
    until_caught_up: bool = False,
    max_cycles: Optional[int] = None,
    on_cycle: Optional[Callable[[Cycle], None]] = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Cycle]:
    """Run the supervisor in the foreground: wait ``startDelay``, then a cycle every ``period`` (at once again
    after a cycle that read a full task budget). With ``until_caught_up``, return after the first cycle that
    published every partition to its end; else run until ``max_cycles`` (None: for ever)."""
    sup = parse_supervisor_spec(spec)
    save(rt, sup)
    runner = runner or inline_runner(rt)
    sleep(sup.io.ms("start_delay") / 1000.0)
    cycles: list[Cycle] = []
    failures = 0
    while max_cycles is None or len(cycles) < max_cycles:
        began = time.monotonic()
        try:
            cycle = run_cycle(sup, rt, runner)
            failures = 0
        except (DruidflowError, OSError) as exc:
            failures += 1
            if until_caught_up and failures >= 3:
                raise
            log.warning("supervisor %s: cycle failed (%s); retrying next period", sup.id, exc)
            cycle = Cycle()
        cycles.append(cycle)
        if on_cycle is not None:
            on_cycle(cycle)
        if until_caught_up and cycle.caught_up:
            break
        busy = any(r.published and set(r.at_end) != set(r.start) for r in cycle.reports)
        if not busy:
            sleep(max(0.0, sup.io.ms("period") / 1000.0 - (time.monotonic() - began)))
    return cycles


# ------------------------------------------------------------------------------------------------- status


def status(rt: Runtime, supervisor_id: str) -> dict[str, Any]:
    """Druid's supervisor status: state, per-partition committed and latest offsets, lag, last publish."""
    sup, suspended = load(rt, supervisor_id)
    stored = offsets.committed(rt.store.engine, sup.data_source)
    committed = stored.offsets if stored is not None and stored.stream == sup.io.topic else {}
    partitions: dict[str, Any] = {}
    error = None
    try:
        parts, marks = _broker_offsets(sup)
    except DruidflowError as exc:
        parts, marks, error = sorted(committed), {}, str(exc)
    for p in parts:
        latest = marks[p][1] if p in marks else None
        current = committed.get(p)
        lag = None if latest is None or current is None else max(0, latest - current)
        partitions[str(p)] = {"committedOffset": current, "latestOffset": latest, "lag": lag}
    lags = [v["lag"] for v in partitions.values() if v["lag"] is not None]
    tasks = [t for t in rt.store.list_tasks(datasource=sup.data_source, limit=50) if t.type == "index_kafka"]
    return {
        "id": sup.id,
        "dataSource": sup.data_source,
        "stream": sup.io.topic,
        "state": "SUSPENDED" if suspended else ("UNHEALTHY_SUPERVISOR" if error else "RUNNING"),
        "suspended": suspended,
        "partitions": partitions,
        "aggregateLag": sum(lags) if lags else None,
        "lastPublish": stored.updated if stored is not None else None,
        "recentTasks": [{"id": t.id, "status": t.status, "created": t.created_date, "error": t.error_msg} for t in tasks[:10]],
        "error": error,
    }


def reset_plan(rt: Runtime, supervisor_id: str, to: Optional[str]) -> tuple[Optional[dict[int, int]], Optional[dict[int, int]]]:
    """(current committed offsets, offsets after the reset): ``to`` None forgets them (the next task starts at
    useEarliestOffset), ``earliest``/``latest`` set them to the broker's earliest/latest offsets."""
    sup, _ = load(rt, supervisor_id)
    stored = offsets.committed(rt.store.engine, sup.data_source)
    before = stored.offsets if stored is not None else None
    if to is None:
        return before, None
    if to not in ("earliest", "latest"):
        raise SpecError("--to", to, "reset to 'earliest' or 'latest' (or leave it out to forget the offsets)")
    _, marks = _broker_offsets(sup)
    return before, {p: (low if to == "earliest" else high) for p, (low, high) in marks.items()}


def reset(rt: Runtime, supervisor_id: str, to: Optional[str]) -> Optional[dict[int, int]]:
    sup, _ = load(rt, supervisor_id)
    _, after = reset_plan(rt, supervisor_id, to)
    offsets.reset(rt.store.engine, sup.data_source, sup.io.topic, after)
    return after
