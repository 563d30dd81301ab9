"""A real, small Airflow deployment for end-to-end tests: scheduler + dag-processor + api-server, LocalExecutor.

Unlike ``dag.test()``, tasks run in forked workers where Airflow 3 blocks ORM access, fetch Connections through
the Execution API of a real API server, and hand XComs over through it: what production does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.airflow.conftest import AIRFLOW_BIN, airflow_env, run_airflow

TERMINAL_RUN_STATES = {"success", "failed"}

#: Airflow settings for workflows of short tasks (an index_parallel run is a chain of steps of seconds each), as
#: docker-compose.yaml sets them and docs/airflow.md explains: the scheduler loops again 0.2 s after an idle loop
#: (default 1 s), so that a finished step's downstream is queued at once; the task supervisor notices its process's
#: exit within 1 s; a task never runs in a fresh interpreter.
SHORT_TASK_SETTINGS = {
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
    # The task supervisor waits in select() up to this long between heartbeats; when its task process closed its
    # sockets but is not yet reaped, it notices the exit only after that wait: 5 s (the default) added to about
    # every second task instance on a loaded box.
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
    "AIRFLOW__CORE__EXECUTE_TASKS_NEW_PYTHON_INTERPRETER": "False",
}
#: CeleryExecutor on top of :data:`SHORT_TASK_SETTINGS`: a worker takes one task at a time (it does not reserve the
#: next one while it runs a step, which a free worker could have started), the scheduler sends tasks in-process (no
#: process pool per batch of mapped tasks), and each worker imports the task-side modules once before it forks
#: (druidflow.airflow.worker_preload: Airflow's DAG parsing and Druidflow's engine, seconds per task instance).
CELERY_SETTINGS = {
    "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
    "AIRFLOW__CELERY__TASK_ACKS_LATE": "True",
    "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
    "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": '{"imports": ["druidflow.airflow.worker_preload"]}',
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AirflowCluster:
    """Airflow components as subprocesses of the test, sharing one home and one metadata DB."""

    home: Path
    db_url: str
    dags_folder: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    executor: str = "LocalExecutor"
    #: CeleryExecutor only: Celery workers started with the cluster (``worker-1`` ...); more with :meth:`start_worker`.
    workers: int = 0
    _token: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        passwords = self.home / "passwords.json"
        settings = dict(
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=self.db_url,
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags_folder),
            AIRFLOW__CORE__EXECUTOR=self.executor,
            AIRFLOW__CORE__PARALLELISM="4",  # LocalExecutor forks this many workers; the box has 2 cores
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.base_url}/execution/",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__BASE_URL=self.base_url,
            AIRFLOW__API_AUTH__JWT_SECRET="druidflow-e2e-secret-druidflow-e2e-secret-druidflow-e2e-secret-0123",
            AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="3",
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
            **SHORT_TASK_SETTINGS,
            **(CELERY_SETTINGS if self.executor == "CeleryExecutor" else {}),
        )
        settings.update(self.extra_env)  # a test may override any of the above (e.g. the users)
        return airflow_env(self.home, **settings)

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self, *, timeout: float = 120) -> AirflowCluster:
        """Migrate the DB, start the components, and wait until the API answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({"admin": "admin"}))
        env = self.env
        run_airflow("db", "migrate", env=env, timeout=300)
        logs = self.home / "component-logs"
        logs.mkdir(exist_ok=True)
        commands = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
        }
        for name, args in commands.items():
            self._spawn(name, args, env)
        for i in range(self.workers):
            self.start_worker(f"worker-{i + 1}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if httpx.get(f"{self.base_url}/api/v2/version", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(f"the API server did not answer within {timeout}s\n{self.tail_logs()}")

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        out = open(self.home / "component-logs" / f"{name}.log", "w")
        self.procs[name] = subprocess.Popen(
            [str(AIRFLOW_BIN), *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self.procs[name]

    def start_worker(self, name: str, *, concurrency: int = 2) -> subprocess.Popen:
        """A Celery worker (its own process group) serving the cluster's default queue; logs are not served."""
        queue = self.env.get("AIRFLOW__OPERATORS__DEFAULT_QUEUE", "default")
        args = ["celery", "worker", "-H", f"{name}@%h", "-c", str(concurrency), "-q", queue, "--skip-serve-logs", "--without-gossip", "--without-mingle"]
        return self._spawn(name, args, self.env)

    def kill(self, name: str) -> None:
        """SIGKILL a component and every process of its group (a worker and the tasks it runs): a crashed machine."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop every component (SIGTERM to its process group, SIGKILL after 20 s)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}\n{self.tail_logs()}")

    def tail_logs(self, lines: int = 40) -> str:
        out = []
        for path in sorted((self.home / "component-logs").glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"---- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def task_logs(self, dag_id: str, run_id: str) -> str:
        """Every task log of a run (for failure messages)."""
        base = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        parts = []
        for path in sorted(base.rglob("*.log")):
            parts.append(f"---- {path.relative_to(base)}\n" + path.read_text(errors="replace")[-6000:])
        return "\n".join(parts)

    # ------------------------------------------------------------------------------------------ REST API

    @property
    def token(self) -> str:
        if self._token is None:
            r = httpx.post(f"{self.base_url}/auth/token", json={"username": "admin", "password": "admin"}, timeout=30)
            r.raise_for_status()
            self._token = r.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, f"{self.base_url}{path}", headers=headers, timeout=30, **kwargs)

    def wait_for_dag(self, dag_id: str, *, timeout: float = 90) -> dict[str, Any]:
        """Wait until the dag-processor has parsed and serialised ``dag_id``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            r = self.api("GET", f"/api/v2/dags/{dag_id}")
            if r.status_code == 200:
                errors = self.api("GET", "/api/v2/importErrors").json().get("import_errors", [])
                if errors:
                    raise AssertionError(f"DAG import errors: {errors}")
                return r.json()
            time.sleep(1)
        raise TimeoutError(f"DAG {dag_id} was not parsed within {timeout}s\n{self.tail_logs()}")

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Trigger a run through the REST API; returns its run id."""
        r = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        assert r.status_code == 200, r.text
        return r.json()["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float = 180) -> str:
        """Wait until the run is finished; returns its state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            state = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
            if state in TERMINAL_RUN_STATES:
                return state
            time.sleep(1)
        raise TimeoutError(
            f"run {run_id} did not finish within {timeout}s: {self.task_states(dag_id, run_id)}\n"
            f"{self.task_logs(dag_id, run_id)}\n{self.tail_logs()}"
        )

    def task_states(self, dag_id: str, run_id: str) -> dict[str, list[str | None]]:
        """``task_id -> [state of each (mapped) instance]``."""
        r = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        states: dict[str, list[str | None]] = {}
        for ti in sorted(r.json()["task_instances"], key=lambda t: (t["task_id"], t["map_index"])):
            states.setdefault(ti["task_id"], []).append(ti["state"])
        return states

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        r = self.api(
            "GET",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index, "deserialize": True, "stringify": False},
        )
        assert r.status_code == 200, r.text
        return r.json()["value"]

    def asset_events(self, uri: str) -> list[dict[str, Any]]:
        """Asset events of the asset ``uri`` (assets created through an alias are not listed by /assets)."""
        r = self.api("GET", "/api/v2/assets/events", params={"limit": 1000})
        assert r.status_code == 200, r.text
        return [e for e in r.json()["asset_events"] if e["uri"].rstrip("/") == uri.rstrip("/")]

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100}).json()["dag_runs"]


@contextmanager
def druidflow_cluster(request: Any, home: Path, dag_files: dict[str, str], extra_env: dict[str, str] | None = None):
    """A started cluster whose Airflow DB (``request.param``: ``sqlite`` or ``postgresql``, a fresh database) also
    holds Druidflow's tables, with the ``druidflow_metadata`` and ``druidflow_deep_storage`` Connections set and
    ``dag_files`` (name -> source) in its DAG folder. Stopped, and its PostgreSQL database dropped, on exit."""
    import uuid

    import sqlalchemy as sa

    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    for name, source in dag_files.items():
        (dags / name).write_text(source)
    deep = home / "deep-storage"
    pg_admin = pg_name = None
    if request.param == "sqlite":
        db_url = f"sqlite:///{home / 'airflow.db'}"
    else:
        from tests.conftest import _pg_admin_engine

        request.getfixturevalue("pg_server")
        pg_name = f"af_{home.name[:20]}_{uuid.uuid4().hex[:8]}".replace("-", "_")
        pg_admin = _pg_admin_engine()
        with pg_admin.connect() as conn:
            conn.execute(sa.text(f'create database "{pg_name}"'))
        db_url = pg_admin.url.set(database=pg_name, drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    cluster = AirflowCluster(
        home=home,
        db_url=db_url,
        dags_folder=dags,
        extra_env={
            # The druidflow_metadata Connection points at the Airflow DB itself (where db migrate put the tables).
            "AIRFLOW_CONN_DRUIDFLOW_METADATA": db_url,
            "AIRFLOW_CONN_DRUIDFLOW_DEEP_STORAGE": json.dumps(
                {"conn_type": "druidflow_deep_storage", "extra": {"uri": str(deep)}}
            ),
            "DRUIDFLOW_WORK_DIR": str(home / "work"),
            **(extra_env or {}),
        },
    )
    cluster.deep_storage = deep  # type: ignore[attr-defined]
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        if pg_admin is not None:
            with pg_admin.connect() as conn:
                conn.execute(sa.text(f'drop database if exists "{pg_name}" with (force)'))
            pg_admin.dispose()
