"""Many processes hammer one lockbox; the recorded event log proves it never granted two conflicting locks.

What makes this safe is the per-dataSource mutex row (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite; see ``druidflow.locks.lockbox``): every state change and every publish of a dataSource
happens in a transaction holding it, so the lock events of one dataSource, ordered by id, are the exact order
in which the changes happened. Each publish inserts its own ``publish`` event inside the critical section, so
the log can be replayed and checked at every instant.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections import Counter

import pytest
import sqlalchemy as sa

from druidflow.intervals import Interval
from druidflow.locks import TaskLockbox
from tests.locks.lockbox_workers import hammer, published
from tests.locks.test_lockbox_stateful import coexist, contains, overlaps

WORKERS = 8
SECONDS = 5.0


def replay(events: list[dict]) -> Counter:
    """Check, event by event, that the active locks never conflict, that only a strictly higher priority
    revoked anything, and that every publish happened under a held, unrevoked, covering lock."""
    posses: dict[str, dict] = {}
    seen: Counter = Counter()
    revoked_by: dict[str, list[int]] = {}
    for e in events:
        kind, task = e["event"], e["task_id"]
        seen[kind] += 1
        iv = Interval.parse(e["interval"])
        span = (iv.start, iv.end)
        if kind == "acquire":
            p = posses.setdefault(
                e["posse_id"],
                {"type": e["type"], "span": span, "group": e["group_id"], "priority": e["priority"],
                 "members": set(), "revoked": False},
            )
            assert not p["revoked"], e
            assert (p["group"], p["priority"], p["span"]) == (e["group_id"], e["priority"], span), e
            for lower in revoked_by.pop(task, []):
                assert e["priority"] > lower, ("revoked by a task of no higher priority", e)
            p["members"].add(task)
            for pid, q in posses.items():
                if pid == e["posse_id"] or not q["members"] or q["revoked"] or not overlaps(q["span"], span):
                    continue
                assert coexist(q["type"], q["span"], p["type"], span) or (
                    q["group"] == p["group"] and q["span"] == span
                ), ("two conflicting locks active at once", e, q)
        elif kind == "revoke":
            p = posses[e["posse_id"]]
            assert task in p["members"], e
            p["revoked"] = True
            revoked_by.setdefault(e["actor"], []).append(p["priority"])
        elif kind in ("release", "expire", "force_release"):
            posses[e["posse_id"]]["members"].discard(task)
        elif kind == "publish":
            p = posses[e["posse_id"]]
            assert task in p["members"] and not p["revoked"] and contains(p["span"], span), (
                "published without a valid lock", e, p,
            )
        else:
            raise AssertionError(f"unknown event {kind}")
    assert not revoked_by, revoked_by  # every revocation was followed by the preempting acquire
    return seen


@pytest.mark.slow
def test_processes_hammering_the_lockbox_never_break_the_rules(db_url):
    box = TaskLockbox(db_url)
    box.create_tables()
    published.create(box.engine)

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=hammer, args=(db_url, w, SECONDS, 1000 + w, barrier, results), daemon=True)
        for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    reports = []
    try:
        for _ in procs:
            reports.append(results.get(timeout=120))  # a deadlock would stop a worker from ever reporting
    except queue.Empty:
        pytest.fail(f"only {len(reports)} of {WORKERS} workers finished: deadlock or stuck lock")
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    errors = [r["error"] for r in reports if r["error"]]
    assert not errors, errors[0]

    totals = sum((Counter(r["stats"]) for r in reports), Counter())
    with box.engine.connect() as conn:
        rows = conn.execute(sa.select(published.c.task_id, published.c.dataSource, published.c.interval)).all()
    landed = sorted(tuple(x) for r in reports for x in r["landed"])
    assert sorted(tuple(r) for r in rows) == landed  # refused and aborted publishes left nothing behind

    seen: Counter = Counter()
    for ds in ("wiki", "koala"):
        seen += replay(box.events(datasource=ds))
    assert seen["publish"] == len(rows)
    # The run really exercised the dangerous paths.
    assert seen["revoke"] > 0 and totals["publishes"] > 0 and totals["lock unavailable"] > 0, totals
    assert totals["publishes refused"] + totals["lock revoked"] > 0, totals
    assert box.locks() == []  # every task released everything
    print(dict(totals), dict(seen))
    box.engine.dispose()
