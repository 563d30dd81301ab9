"""The Celery workers' preload (``druidflow.airflow.worker_preload``): every task-side module imported, and nothing
that a forked task process could inherit in a broken state — no thread started, so the fork is safe."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys, threading
before = set(sys.modules)
import druidflow.airflow.worker_preload as preload
assert preload.LOADED == list(preload.MODULES), preload.LOADED
assert threading.active_count() == 1, threading.enumerate()
assert "druidflow.tasks.parallel.partial_phase" in sys.modules and "pyarrow" in sys.modules
# What a task process imports before it runs the operator: the DAG parser, and the plugins it loads for listeners.
assert preload.PLUGINS_LOADED and "airflow.dag_processing.dagbag" in sys.modules and "druidflow.airflow.plugin" in sys.modules
import time
started = time.perf_counter()
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.listeners.listener import get_listener_manager
get_listener_manager()
assert time.perf_counter() - started < 0.5, time.perf_counter() - started
print(len(set(sys.modules) - before))
"""


def test_the_preload_imports_every_task_module_and_starts_no_thread():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip().splitlines()[-1]) > 500  # the modules a task process no longer imports itself
