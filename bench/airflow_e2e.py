"""End-to-end time of the reference job under a real scheduler, as a ratio to the in-process time.

``run`` (what ``bench.run --airflow`` calls): ``druidflow_index`` under the LocalExecutor (SQLite as the Airflow
DB, which also holds Druidflow's tables).

``parallel`` (this module's command line): the same job as an ``index_parallel`` task on ``druidflow_index_parallel``
under the CeleryExecutor — Redis as the broker, PostgreSQL as the Airflow DB, a shared local deep storage — with one
Celery worker and then two (each of concurrency 1, so two workers can do twice the work at once), against the job
run in-process (``index`` and ``index_parallel``, the same machine, the same moment). Airflow's own start-up and one
warm-up run over the input's first lines are not counted; the scheduling of every step is. The workers preload the
task-side modules (:mod:`druidflow.airflow.worker_preload`) and the cluster runs with the short-task settings
docker-compose.yaml uses (:data:`tests.airflow.cluster.SHORT_TASK_SETTINGS` and ``CELERY_SETTINGS``). Each run reports the
seconds spent inside its task instances per task and the idle time between them. Absolute times on a shared machine are noise: read the ratios.

    python -m bench.airflow_e2e [ROWS]            # default 1M rows, generated under bench/data
    python -m bench.airflow_e2e --local FILE.csv  # the LocalExecutor figure of bench.run --airflow
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/14"


def run(input_path: str | Path, input_format: str = "csv", *, timeout: float = 3600) -> dict:
    """Trigger ``druidflow_index`` on ``input_path`` (LocalExecutor); returns wall seconds, the run state and the task timings."""
    sys.path.insert(0, str(ROOT))
    from bench.reference_spec import reference_spec
    from tests.airflow.cluster import AirflowCluster

    home = Path(tempfile.mkdtemp(prefix="druidflow-bench-airflow-"))
    try:
        dags = home / "dags"
        dags.mkdir()
        shutil.copy(ROOT / "dags" / "druidflow_index.py", dags / "druidflow_index.py")
        db_url = f"sqlite:///{home / 'airflow.db'}"
        cluster = AirflowCluster(home=home, db_url=db_url, dags_folder=dags, extra_env=_druidflow_env(home, db_url))
        cluster.start()
        try:
            cluster.wait_for_dag("druidflow_index")
            spec = reference_spec(Path(input_path).resolve(), input_format)
            started = time.perf_counter()
            run_id = cluster.trigger("druidflow_index", {"spec": spec})
            state = cluster.wait_for_run("druidflow_index", run_id, timeout=timeout)
            wall = time.perf_counter() - started
            states = cluster.task_states("druidflow_index", run_id)
        finally:
            cluster.stop()
        return {"wall_s": round(wall, 2), "state": state, "tasks": {k: len(v) for k, v in states.items()}}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _druidflow_env(home: Path, db_url: str) -> dict[str, str]:
    return {
        "AIRFLOW_CONN_DRUIDFLOW_METADATA": db_url,
        "AIRFLOW_CONN_DRUIDFLOW_DEEP_STORAGE": json.dumps({"conn_type": "druidflow_deep_storage", "extra": {"uri": str(home / "deep-storage")}}),
        "DRUIDFLOW_WORK_DIR": str(home / "work"),
    }


def parallel_spec(input_path: Path, input_format: str, concurrency: int, data_source: str) -> dict:
    """The reference job as an ``index_parallel`` task whose input is cut for ``concurrency`` workers."""
    from bench.reference_spec import reference_spec

    spec = copy.deepcopy(reference_spec(input_path, input_format, data_source=data_source))
    spec["type"] = "index_parallel"
    spec["spec"]["ioConfig"]["type"] = "index_parallel"
    # One merge sub-task per worker (Druid's totalNumMergeTasks): each Airflow task costs seconds of scheduling.
    spec["spec"]["tuningConfig"].update(type="index_parallel", maxNumConcurrentSubTasks=concurrency, totalNumMergeTasks=concurrency)
    return spec


def in_process(input_path: Path, input_format: str, concurrency: int) -> dict[str, float]:
    """Wall and CPU (user+sys) seconds of ``index`` and of ``index_parallel`` run by ``druidflow run``'s code path,
    in this process."""
    from bench.reference_spec import reference_spec
    from druidflow.tasks import parallel
    from druidflow.tasks.dispatch import run_task
    from druidflow.tasks.runtime import Runtime

    out = {}
    with tempfile.TemporaryDirectory(prefix="druidflow-bench-inproc-") as tmp:
        rt = Runtime.from_urls(f"sqlite:///{tmp}/m.db", f"{tmp}/deep", f"{tmp}/work")
        started, cpu = time.perf_counter(), time.process_time()
        run_task(reference_spec(input_path, input_format, data_source="inproc_index"), rt)
        out["index_s"] = round(time.perf_counter() - started, 2)
        out["index_cpu_s"] = round(time.process_time() - cpu, 2)
        started, cpu = time.perf_counter(), time.process_time()
        parallel.run(parallel_spec(input_path, input_format, concurrency, "inproc_parallel"), rt)
        out["index_parallel_s"] = round(time.perf_counter() - started, 2)
        out["index_parallel_cpu_s"] = round(time.process_time() - cpu, 2)
    return out


def cluster_cpu_s(cluster: Any) -> float:
    """CPU seconds (user+sys) used so far by every process of the cluster's components (each its own session): the
    live ones' own time plus that of the children they reaped (the task processes)."""
    sessions = {p.pid for p in cluster.procs.values()}
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        # after the command: state ppid pgrp session ... utime(12) stime cutime cstime (0-based from state)
        if int(fields[3]) in sessions:
            total += sum(int(v) for v in fields[11:15]) / tick
    return total


def parallel(input_path: str | Path, input_format: str = "csv", *, workers: tuple[int, ...] = (1, 2), timeout: float = 3600) -> dict:
    """The index_parallel job under the CeleryExecutor with each worker count, and the in-process reference."""
    import sqlalchemy as sa

    sys.path.insert(0, str(ROOT))
    from tests.airflow.cluster import AirflowCluster

    input_path = Path(input_path).resolve()
    concurrency = max(workers)
    reference = in_process(input_path, input_format, concurrency)
    home = Path(tempfile.mkdtemp(prefix="druidflow-bench-celery-"))
    pg_name = f"bench_celery_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{pg_name}"'))
    db_url = admin.url.set(database=pg_name).render_as_string(hide_password=False)
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(ROOT / "dags" / "druidflow_index_parallel.py", dags / "druidflow_index_parallel.py")
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    cluster = AirflowCluster(
        home=home,
        db_url=db_url,
        dags_folder=dags,
        executor="CeleryExecutor",
        extra_env={
            "AIRFLOW__CELERY__BROKER_URL": REDIS,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db_url,
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
            "AIRFLOW__CORE__PARALLELISM": "8",
            **_druidflow_env(home, db_url),
        },
    )
    results: dict = {"rows_file": str(input_path), "in_process": reference, "celery": {}}
    try:
        cluster.start()
        cluster.wait_for_dag("druidflow_index_parallel")
        started_workers = 0
        for n in sorted(workers):
            while started_workers < n:
                started_workers += 1
                cluster.start_worker(f"worker-{started_workers}", concurrency=1)
            time.sleep(5)  # let the new worker register with the broker
            if n == min(workers):
                results["warm_up_s"] = _warm_up(cluster, input_path, input_format, home, timeout)
            spec = parallel_spec(input_path, input_format, concurrency, f"celery_{n}w")
            started, cpu = time.perf_counter(), cluster_cpu_s(cluster)
            load = os.getloadavg()[0]
            run_id = cluster.trigger("druidflow_index_parallel", {"spec": spec})
            state = cluster.wait_for_run("druidflow_index_parallel", run_id, timeout=timeout)
            wall = time.perf_counter() - started
            cpu = cluster_cpu_s(cluster) - cpu
            states = cluster.task_states("druidflow_index_parallel", run_id)
            timings = _task_timings(cluster, "druidflow_index_parallel", run_id)
            results["celery"][f"{n}_workers"] = {
                "wall_s": round(wall, 2),
                "cluster_cpu_s": round(cpu, 2),  # every Airflow component and task process, user+sys
                "load_average_1m": [round(load, 2), round(os.getloadavg()[0], 2)],  # at the start and the end
                "state": state,
                "ratio_to_in_process_index": round(wall / reference["index_s"], 2),
                "ratio_to_in_process_index_parallel": round(wall / reference["index_parallel_s"], 2),
                "mapped": {k.split(".")[-1]: len(v) for k, v in states.items() if len(v) > 1},
                "task_instances": sum(len(v) for v in states.values()),
                **timings,
            }
    finally:
        cluster.stop()
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{pg_name}" with (force)'))
        admin.dispose()
        shutil.rmtree(home, ignore_errors=True)
    return results


def _warm_up(cluster: Any, input_path: Path, input_format: str, home: Path, timeout: float) -> float:
    """One run over the input's first lines, not counted: the first run of a DAG pays its serialization and each
    worker's first fork, which a running deployment has long paid."""
    head = home / f"warm-up{input_path.suffix}"
    with open(input_path, "rb") as src, open(head, "wb") as out:
        out.writelines(line for _, line in zip(range(1000), src))
    started = time.perf_counter()
    run_id = cluster.trigger("druidflow_index_parallel", {"spec": parallel_spec(head, input_format, 1, "warm_up")})
    cluster.wait_for_run("druidflow_index_parallel", run_id, timeout=timeout)
    return round(time.perf_counter() - started, 2)


def _task_timings(cluster: Any, dag_id: str, run_id: str) -> dict[str, Any]:
    """Where a run's wall time went: seconds inside task instances (their process included) per task, and the
    sum of the gaps on the critical path where no task instance ran (scheduling, queueing, worker pick-up)."""
    from datetime import datetime

    r = cluster.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
    spans = []
    per_task: dict[str, float] = {}
    for ti in r.json()["task_instances"]:
        if not ti.get("start_date") or not ti.get("end_date"):
            continue
        start, end = (datetime.fromisoformat(ti[k].replace("Z", "+00:00")).timestamp() for k in ("start_date", "end_date"))
        spans.append((start, end))
        name = ti["task_id"].split(".")[-1]
        per_task[name] = round(per_task.get(name, 0.0) + end - start, 2)
    spans.sort()
    idle, covered_to = 0.0, spans[0][0] if spans else 0.0
    for start, end in spans:
        idle += max(0.0, start - covered_to)
        covered_to = max(covered_to, end)
    return {"seconds_in_tasks": per_task, "idle_between_tasks_s": round(idle, 2)}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--local"]:
        path = argv[1] if len(argv) > 1 else str(ROOT / "bench" / "data" / "wikipedia-1M.csv")
        print(json.dumps(run(path, "json" if path.endswith(".json") else "csv"), indent=2))
        return 0
    sys.path.insert(0, str(ROOT))
    from bench.generate import generate

    rows = int(float(argv[0])) if argv else 1_000_000
    csv_path = generate(rows, ROOT / "bench" / "data", formats=("csv",))["csv"]
    print(json.dumps(parallel(csv_path, "csv"), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
