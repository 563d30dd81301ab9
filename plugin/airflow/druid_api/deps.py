"""The database holding Druidflow's tables, as a FastAPI dependency (the same engine the plugin's other pages use;
tests override it)."""

from __future__ import annotations

from sqlalchemy.engine import Engine


def get_engine() -> Engine:
    from druidflow.airflow.plugin import get_engine as plugin_engine

    return plugin_engine()
