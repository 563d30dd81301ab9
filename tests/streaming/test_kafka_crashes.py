"""SIGKILL of Kafka tasks at random points (reading, building, publishing), duplicates racing, then a restart:
every message is visible exactly once, no offset range is skipped, and no lock outlives its lease."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time

import pytest

from druidflow.streaming import kafka_task, offsets, supervisor
from druidflow.streaming.kafka_spec import parse_supervisor_spec
from tests.streaming.conftest import kafka_spec
from tests.streaming.helpers import messages, visible_ids

LEASE_S = 2.0
TRIALS = 24


def _child(task_json: str, url: str, deep: str, work: str) -> None:
    from druidflow.locks import TaskLockbox
    from druidflow.tasks.runtime import Runtime

    rt = Runtime.from_urls(url, deep, work_dir=work, migrate=False)
    rt.lockbox = TaskLockbox(rt.store.engine, lease_seconds=LEASE_S)
    kafka_task.run(kafka_task.KafkaTaskSpec.model_validate_json(task_json), rt)
    os._exit(0)


def _start(ctx, task, url, deep, work):
    proc = ctx.Process(target=_child, args=(task.model_dump_json(), url, deep, work))
    proc.start()
    return proc


@pytest.mark.slow
def test_sigkill_at_random_points_then_restart_loses_and_duplicates_nothing(kafka_broker, runtime, sqlite_url, tmp_path):
    rng = random.Random(16)
    ctx = multiprocessing.get_context("fork")
    topic = kafka_broker.create_topic(partitions=3)
    spec = kafka_spec(kafka_broker.bootstrap, topic, data_source="crashy", taskCount=1)
    sup = parse_supervisor_spec(spec)
    supervisor.save(runtime, sup)
    deep, work = str(tmp_path / "deep"), str(tmp_path / "work")
    produced = 0

    # How long one uninterrupted task takes here, so that kills land anywhere in it, publishing included.
    produced += kafka_broker.produce(topic, messages(produced, 60), partitions=3)
    t0 = time.monotonic()
    proc = _start(ctx, supervisor.plan_tasks(sup, runtime)[0], sqlite_url, deep, work)
    proc.join(60)
    full = time.monotonic() - t0
    killed_in_flight = 0

    for trial in range(TRIALS):
        produced += kafka_broker.produce(topic, messages(produced, rng.randint(1, 80)), partitions=3)
        task = supervisor.plan_tasks(sup, runtime)[0]
        procs = [_start(ctx, task, sqlite_url, deep, work)]
        if trial % 3 == 0:  # a duplicate of the same range races it (a retry, or a replica)
            procs.append(_start(ctx, task.model_copy(update={"task_id": sup.new_task_id()}), sqlite_url, deep, work))
        time.sleep(rng.uniform(0.0, full * 1.2))
        victim = procs[0]
        if victim.is_alive():
            killed_in_flight += 1
            os.kill(victim.pid, signal.SIGKILL)
        for p in procs:
            p.join(60)
            assert not p.is_alive()

    assert killed_in_flight >= TRIALS // 2, f"only {killed_in_flight} kills hit a running task (task takes {full:.2f}s)"
    cycles = supervisor.supervise(spec, runtime, until_caught_up=True, max_cycles=30)
    assert cycles[-1].caught_up
    seen = visible_ids(runtime, "crashy")
    missing = set(range(produced)) - set(seen)
    duplicated = {i: c for i, c in seen.items() if c != 1}
    assert not missing and not duplicated, (sorted(missing)[:10], dict(list(duplicated.items())[:10]))
    assert sum(offsets.committed(runtime.store.engine, "crashy").offsets.values()) == produced

    time.sleep(LEASE_S + 0.5)
    assert [lk for lk in runtime.lockbox.locks(datasource="crashy") if lk.active] == []


def _die_at(point: str):
    """Patch the step named ``point`` so that the process SIGKILLs itself there (a crash at an exact spot)."""
    from druidflow.metadata.store import MetadataStore
    from druidflow.streaming import kafka_client
    from druidflow.tasks import index

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    def after(fn):
        def wrapped(*args, **kwargs):
            result = fn(*args, **kwargs)
            die()
            return result
        return wrapped

    targets = {
        "mid-read": (kafka_client, "spool", after(kafka_client.spool)),
        "after-build": (index, "build_units", after(index.build_units)),
        "after-cas-before-commit": (offsets, "compare_and_swap", after(offsets.compare_and_swap)),
        "after-insert-before-commit": (MetadataStore, "publish_segments", after(MetadataStore.publish_segments)),
        "after-commit": (kafka_task, "publish", after(kafka_task.publish)),
    }
    module, name, replacement = targets[point]
    setattr(module, name, replacement)


def _crashing_child(point: str, task_json: str, url: str, deep: str, work: str) -> None:
    _die_at(point)
    _child(task_json, url, deep, work)


def _expired(runtime):
    """The runtime with a lockbox whose clock is far ahead: every lease has run out."""
    import dataclasses

    from druidflow.locks import TaskLockbox

    ahead = TaskLockbox(runtime.store.engine, clock=lambda: int(time.time() * 1000) + 3_600_000)
    return dataclasses.replace(runtime, lockbox=ahead)


@pytest.mark.parametrize(
    "point", ["mid-read", "after-build", "after-cas-before-commit", "after-insert-before-commit", "after-commit"]
)
def test_sigkill_at_each_step_of_a_task_then_restart(point, kafka_broker, db_url, tmp_path):
    from druidflow.tasks.runtime import Runtime

    runtime = Runtime.from_urls(db_url, str(tmp_path / "deep"), work_dir=tmp_path / "work")
    ctx = multiprocessing.get_context("fork")
    topic = kafka_broker.create_topic(partitions=2)
    spec = kafka_spec(kafka_broker.bootstrap, topic, data_source="exact")
    sup = parse_supervisor_spec(spec)
    supervisor.save(runtime, sup)
    kafka_broker.produce(topic, messages(0, 300), partitions=2)
    task = supervisor.plan_tasks(sup, runtime)[0]
    proc = ctx.Process(target=_crashing_child, args=(point, task.model_dump_json(), db_url, str(tmp_path / "deep"), str(tmp_path / "work")))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    committed = offsets.committed(runtime.store.engine, "exact")
    assert (committed is not None) == (point == "after-commit")  # all or nothing
    # The same task run again (a retry) and the supervisor afterwards: everything exactly once.
    retry = kafka_task.run(task.model_copy(update={"task_id": sup.new_task_id()}), runtime)
    assert retry.published == (point != "after-commit")
    supervisor.supervise(spec, runtime, until_caught_up=True, max_cycles=10)
    seen = visible_ids(runtime, "exact")
    assert sum(seen.values()) == 300 and set(seen) == set(range(300))
    # Once its lease and completion timeout are long past, the killed task is marked FAILED and its ids freed.
    io = {**spec["spec"]["ioConfig"], "taskDuration": "PT0.001S", "completionTimeout": "PT0.001S"}
    short = parse_supervisor_spec({**spec, "spec": {**spec["spec"], "ioConfig": io}})
    reaped = supervisor.reap_lost_tasks(short, _expired(runtime))
    # The task is SUCCESS exactly when its range was published (same transaction); otherwise it is reaped.
    assert runtime.store.get_task(task.task_id).status == ("SUCCESS" if point == "after-commit" else "FAILED")
    assert (task.task_id in reaped) == (point != "after-commit")
    assert runtime.store.pending_segments("exact") == []
