"""Imports done once in a Celery worker's main process, so that every task process forked from it starts warm.

Each Airflow task instance runs in a process the worker forks for it; whatever that process imports first — Airflow's
task runner, the DAG's operators, the engine with pyarrow, numpy, SQLAlchemy and pydantic models — costs seconds
per task instance, paid again by each of an ``index_parallel`` task's steps. Name this module in Celery's
``imports`` and the worker imports it before it forks its pool::

    AIRFLOW__CELERY__EXTRA_CELERY_CONFIG='{"imports": ["druidflow.airflow.worker_preload"]}'

It then loads Airflow's plugins (which every task process does before parsing its DAG, for their listeners).
Importing and loading start no thread and open no connection, so the forked processes inherit nothing but loaded
modules.
A module that cannot be imported (an optional extra not installed) is skipped with a warning: the task that needs
it will then fail with the real error.
"""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)

#: Airflow's task-side modules, then Druidflow's operators and the engine modules their steps run.
#: ``airflow.dag_processing.dagbag`` is what the task runner imports to parse the DAG file (``BundleDagBag``): with
#: the serialization and ORM models behind it, about 230 modules and 1.9 s of every task instance's start-up on a
#: loaded 2-core box when not preloaded.
MODULES = (
    "airflow.sdk.execution_time.task_runner",
    "airflow.sdk.execution_time.supervisor",
    "airflow.dag_processing.bundles.manager",
    "airflow.dag_processing.dagbag",
    # Every task process loads the plugins (for their listeners) before it parses its DAG: Druidflow's builds the
    # API's FastAPI apps (FastAPI, Airflow's API security, Flask through svcs), about 380 modules and 2-4 s.
    "airflow.listeners.listener",
    "druidflow.airflow.plugin",
    "druidflow.airflow.task_dags",
    "druidflow.airflow.task_groups",
    "druidflow.airflow.hooks",
    "druidflow.operators.druid_task",
    "druidflow.operators.parallel",
    "druidflow.operators.parallel_lean",
    "druidflow.tasks.protocol",
    "druidflow.tasks.index",
    "druidflow.tasks.parallel",
    "druidflow.storage",
)


def preload(modules: tuple[str, ...] = MODULES) -> list[str]:
    """Import ``modules``; returns the names imported."""
    done = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            log.warning("druidflow worker preload: %s not imported (%s)", name, exc)
        else:
            done.append(name)
    return done


def load_plugins() -> bool:
    """Load Airflow's plugins and their listeners once here, as each task process would at its start (the forked
    processes find them loaded); False when that fails (each task then loads them itself)."""
    try:
        from airflow.listeners.listener import get_listener_manager

        get_listener_manager()
    except Exception as exc:  # a broken third-party plugin must not stop the worker; the task reports it
        log.warning("druidflow worker preload: plugins not loaded (%s)", exc)
        return False
    return True


LOADED = preload()
PLUGINS_LOADED = load_plugins()
