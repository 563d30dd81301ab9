"""Kept for DAGs that import it from here; see :func:`druidflow.airflow.task_groups.druid_task_group`."""

from druidflow.airflow.task_groups import compact_task_group

__all__ = ["compact_task_group"]
