"""Fixtures for the Airflow layer: a private AIRFLOW_HOME for this pytest process, and Airflow CLI helpers.

Airflow reads its configuration when it is first imported, so the environment is set here, at import time,
before any test module imports Airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags"
AIRFLOW_BIN = Path(sys.executable).with_name("airflow")

_HOME = tempfile.mkdtemp(prefix="druidflow-airflow-home-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_FOLDER)
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")


def airflow_env(home: Path | str, **extra: str) -> dict[str, str]:
    """An environment for an ``airflow`` subprocess with its own home (and SQLite DB unless overridden)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS_FOLDER),
    )
    env.update(extra)
    return env


def run_airflow(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the ``airflow`` CLI; fail the test with its output when it exits non-zero."""
    proc = subprocess.run(
        [str(AIRFLOW_BIN), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        pytest.fail(
            f"airflow {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\n"
            f"stderr:\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    return proc


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """This pytest process's own Airflow metadata DB (SQLite in its AIRFLOW_HOME), migrated once per session."""
    env = airflow_env(_HOME)
    run_airflow("db", "migrate", env=env, timeout=300)
    return f"sqlite:///{Path(_HOME) / 'airflow.db'}"
