"""Lockbox throughput: lock acquire+release pairs per second, in one process and with 4 processes contending.

``run(url) -> dict`` is what ``bench/run.py`` calls, once on a SQLite file and once on PostgreSQL (where it works
in a schema of its own, dropped afterwards). ``python -m bench.locks [URL ...]`` prints the figures; without a
URL it measures a temporary SQLite file and the local PostgreSQL test server. About 10 s per backend.

* floor: committed one-row write transactions per second on the same database (a pair needs two transactions,
  so half of it bounds the pairs: on a slow disk the commit's fsync dominates);
* single process: ``try_lock`` + ``release_all`` of a fresh task, over and over, on one dataSource;
* 4 processes, distinct intervals of one dataSource: every pair succeeds, all contend for the dataSource mutex;
* 4 processes, one interval (EXCLUSIVE, equal priorities): most tries fail; acquired pairs and tries are counted;
* 8 processes, each on its own dataSource: no mutex is shared, so this is the lockbox's own cost per pair (issue
  20's target: >= 1,000 pairs/s on PostgreSQL), printed with its ratio to the target.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time

from bench.cpu import load_average, measured, tagged
from bench.metadata_db import isolated
from druidflow.intervals import MS_DAY, Interval, parse_instant
from druidflow.locks import TaskLockbox

FLOOR_SECONDS = 1.0
SINGLE_SECONDS = 1.5
CONTENTION_SECONDS = 2.0
PROCESSES = 4
DISTINCT_DATASOURCE_PROCESSES = 8
TARGET_PAIRS_PER_S = 1000.0  # issue 20: 8 processes on distinct dataSources, PostgreSQL
DAY0 = parse_instant("2024-01-01")
DEFAULT_PG_URL = os.environ.get("DRUIDFLOW_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _pairs_for(
    box: TaskLockbox, seconds: float, prefix: str, interval: Interval, datasource: str = "bench"
) -> tuple[int, int]:
    """Acquire+release pairs (and tries) completed in ``seconds``."""
    pairs = tries = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        task = f"{prefix}-{tries}"
        tries += 1
        if box.try_lock(task, task, datasource, interval, "EXCLUSIVE", 50).acquired:
            box.release_all(task)
            pairs += 1
    return pairs, tries


def _write_transactions_for(box: TaskLockbox, seconds: float) -> int:
    """The floor: committed one-row write transactions in ``seconds`` (a lock pair needs two)."""
    import sqlalchemy as sa

    from druidflow.metadata.tables import lock_datasources

    with box.engine.begin() as conn:
        conn.execute(sa.insert(lock_datasources).values(dataSource="bench-floor", last_version="0"))
    done = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        done += 1
        with box.engine.begin() as conn:  # a changed value: a write that changes nothing commits without a sync
            conn.execute(
                sa.update(lock_datasources).where(lock_datasources.c.dataSource == "bench-floor").values(last_version=str(done))
            )
    return done


def _contender(url: str, worker: int, barrier, results) -> None:
    box = TaskLockbox(url)
    own = Interval(DAY0 + (10 + worker) * MS_DAY, DAY0 + (11 + worker) * MS_DAY)
    shared = Interval(DAY0, DAY0 + MS_DAY)
    box.try_lock(f"warmup-{worker}", None, "bench", own, "EXCLUSIVE", 50)  # connect before the clock starts
    box.release_all(f"warmup-{worker}")
    barrier.wait(120)
    distinct = _pairs_for(box, CONTENTION_SECONDS, f"d{worker}", own)
    barrier.wait(120)
    same = _pairs_for(box, CONTENTION_SECONDS, f"s{worker}", shared)
    box.close()
    results.put((distinct, same))


def _own_datasource(url: str, worker: int, barrier, results) -> None:
    tag = f"druidflow_bench_locks_{os.getpid()}"
    url = tagged(url, tag)
    box = TaskLockbox(url)
    iv = Interval(DAY0, DAY0 + MS_DAY)
    ds = f"bench-{worker}"
    box.try_lock(f"warmup-{worker}", None, ds, iv, "EXCLUSIVE", 50)  # connect before the clock starts
    box.release_all(f"warmup-{worker}")
    with measured(url, tag) as cpu:  # this process's CPU and its server backends' (PostgreSQL on this machine)
        barrier.wait(120)
        pairs, tries = _pairs_for(box, CONTENTION_SECONDS, f"o{worker}", iv, ds)
    box.close()
    results.put((pairs, tries, cpu.client_s, cpu.server_s))


def _spawn(target, db_url: str, processes: int) -> list:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=target, args=(db_url, w, barrier, results)) for w in range(processes)]
    for p in procs:
        p.start()
    reports = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(30)
    return reports


def run(url: str) -> dict:
    """Lock acquire+release pairs per second on ``url``: one process, then 4 contending processes."""
    print(f"  bench.locks: load average {load_average()}", flush=True)
    with isolated(url, "druidflow_bench_locks") as db_url:
        box = TaskLockbox(db_url)
        box.create_tables()
        _pairs_for(box, 0.2, "warmup", Interval(DAY0, DAY0 + MS_DAY))
        single, _ = _pairs_for(box, SINGLE_SECONDS, "single", Interval(DAY0, DAY0 + MS_DAY))
        floor = _write_transactions_for(box, FLOOR_SECONDS)
        box.close()

        reports = _spawn(_contender, db_url, PROCESSES)
        own = _spawn(_own_datasource, db_url, DISTINCT_DATASOURCE_PROCESSES)
    own_pairs = sum(r[0] for r in own)
    own_pairs_per_s = round(own_pairs / CONTENTION_SECONDS, 1)
    client_cpu = sum(r[2] for r in own)
    server_cpu = sum(r[3] or 0.0 for r in own)
    cpu_per_pair_ms = 1000 * (client_cpu + server_cpu) / own_pairs if own_pairs else None
    cores = os.cpu_count() or 1
    distinct_pairs = sum(r[0][0] for r in reports)
    same_pairs = sum(r[1][0] for r in reports)
    same_tries = sum(r[1][1] for r in reports)
    return {
        "floor_write_transactions_per_s": round(floor / FLOOR_SECONDS, 1),
        "single_process_pairs_per_s": round(single / SINGLE_SECONDS, 1),
        f"{PROCESSES}_processes_distinct_intervals_pairs_per_s": round(distinct_pairs / CONTENTION_SECONDS, 1),
        f"{PROCESSES}_processes_one_interval_pairs_per_s": round(same_pairs / CONTENTION_SECONDS, 1),
        f"{PROCESSES}_processes_one_interval_tries_per_s": round(same_tries / CONTENTION_SECONDS, 1),
        f"{DISTINCT_DATASOURCE_PROCESSES}_processes_distinct_datasources_pairs_per_s": own_pairs_per_s,
        "distinct_datasources_target_pairs_per_s": TARGET_PAIRS_PER_S,
        # >= 1 meets the target (a throughput: figure / target)
        "distinct_datasources_ratio_to_target": round(own_pairs_per_s / TARGET_PAIRS_PER_S, 2),
        # What a pair costs in CPU (the lockbox's processes plus their PostgreSQL backends), and the pairs/s that
        # this machine's cores could sustain at that cost when nothing else runs (the commit floor aside).
        "distinct_datasources_client_cpu_ms_per_pair": round(1000 * client_cpu / own_pairs, 3) if own_pairs else 0.0,
        "distinct_datasources_server_cpu_ms_per_pair": round(1000 * server_cpu / own_pairs, 3) if own_pairs else 0.0,
        "distinct_datasources_cpu_bound_pairs_per_s": round(cores * 1000 / cpu_per_pair_ms, 1) if cpu_per_pair_ms else 0.0,
        "distinct_datasources_cpu_bound_ratio_to_target": (
            round(cores * 1000 / cpu_per_pair_ms / TARGET_PAIRS_PER_S, 2) if cpu_per_pair_ms else 0.0
        ),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str]) -> int:
    urls = argv
    with tempfile.TemporaryDirectory(prefix="druidflow-bench-") as tmp:
        if not urls:
            urls = [f"sqlite:///{tmp}/metadata.db", DEFAULT_PG_URL]
        results = {url.split(":", 1)[0].split("+", 1)[0]: run(url) for url in urls}
    keys = list(next(iter(results.values())))
    width = max(len(k) for k in keys)
    print(f"{'lock acquire+release':<{width}}" + "".join(f"{backend:>14}" for backend in results))
    for key in keys:
        print(f"{key:<{width}}" + "".join(f"{figures[key]:>14,.1f}" for figures in results.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
