"""The end-to-end time of ``druidflow_index`` under a real scheduler (LocalExecutor), for ``bench.run --airflow``.

It starts a small Airflow deployment (scheduler, dag-processor, api-server; SQLite as the Airflow DB, which also
holds Druidflow's tables) with the repository's ``druidflow_index`` DAG, triggers it with the reference job,
and measures from the trigger to the finished run. Start-up of Airflow itself is not counted.

    python -m bench.airflow_e2e bench/data/wikipedia-5M.csv
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(input_path: str | Path, input_format: str = "csv", *, timeout: float = 3600) -> dict:
    """Trigger ``druidflow_index`` on ``input_path``; returns wall seconds, the run state and the task timings."""
    sys.path.insert(0, str(ROOT))
    from bench.reference_spec import reference_spec
    from tests.airflow.cluster import AirflowCluster

    home = Path(tempfile.mkdtemp(prefix="druidflow-bench-airflow-"))
    try:
        dags = home / "dags"
        dags.mkdir()
        shutil.copy(ROOT / "dags" / "druidflow_index.py", dags / "druidflow_index.py")
        db_url = f"sqlite:///{home / 'airflow.db'}"
        cluster = AirflowCluster(
            home=home,
            db_url=db_url,
            dags_folder=dags,
            extra_env={
                "AIRFLOW_CONN_DRUIDFLOW_METADATA": db_url,
                "AIRFLOW_CONN_DRUIDFLOW_DEEP_STORAGE": json.dumps(
                    {"conn_type": "druidflow_deep_storage", "extra": {"uri": str(home / "deep-storage")}}
                ),
                "DRUIDFLOW_WORK_DIR": str(home / "work"),
            },
        )
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


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "bench" / "data" / "wikipedia-1M.csv")
    print(json.dumps(run(path, "json" if path.endswith(".json") else "csv"), indent=2))
