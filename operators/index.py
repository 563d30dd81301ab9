"""Operators for the steps of Druid's ``index`` task: the generic protocol steps (:mod:`druidflow.operators.druid_task`)
bound to ``index``, under the names and the ``index_task`` argument user DAGs already use.

The workflow (built in one line by :func:`druidflow.airflow.task_groups.index_task_group`)::

    submit >> acquire_locks (setup) >> determine_partitions >> build_segments (mapped) >> publish
           >> release_locks (teardown of acquire_locks)
"""

from __future__ import annotations

from typing import Any

from druidflow.operators.base import ASSET_SCHEME, DEFAULT_ASSET_ALIAS, SpecSubmitOperator, datasource_asset
from druidflow.operators.druid_task import (
    DruidTaskAcquireLocksOperator,
    DruidTaskBuildOperator,
    DruidTaskPlanOperator,
    DruidTaskPublishOperator,
    DruidTaskReleaseOperator,
    build_unit_label,
)

__all__ = [
    "ASSET_SCHEME",
    "DEFAULT_ASSET_ALIAS",
    "IndexAcquireLocksOperator",
    "IndexBuildSegmentsOperator",
    "IndexDeterminePartitionsOperator",
    "IndexPublishOperator",
    "IndexSubmitOperator",
    "ReleaseLocksOperator",
    "build_unit_label",
    "datasource_asset",
]


class IndexSubmitOperator(SpecSubmitOperator):
    """Validate a Druid ``index`` task JSON (or the ``druidflow_index`` trigger form) and record the task.

    :param spec: the Druid ``index`` task JSON: a dict, JSON text, or a path to a ``.json`` file (templated);
        ``None`` reads the trigger form from ``params``.
    :param druid_task_type: the task type (``index``; another type is refused).
    :param trigger_form: the trigger form a spec-less run reads (the ``druidflow_index`` form).
    """

    default_task_type = "index"
    default_trigger_form = "druidflow.airflow.index_form:INDEX_FORM"


class IndexAcquireLocksOperator(DruidTaskAcquireLocksOperator):
    """Take the time-chunk locks of an index task (the workflow's *setup*; waits in reschedule mode).

    :param index_task: the submitted task, i.e. the XCom of :class:`IndexSubmitOperator` (templated).
    """

    def __init__(self, *, index_task: Any, **kwargs: Any) -> None:
        super().__init__(druid_task=index_task, **kwargs)


class IndexDeterminePartitionsOperator(DruidTaskPlanOperator):
    """Plan an index task's segments: which time chunks and shards, as a list of build units.

    :param index_task: the submitted task, i.e. the XCom of :class:`IndexSubmitOperator` (templated).
    """

    _step_name = "determine_partitions"

    def __init__(self, *, index_task: Any, **kwargs: Any) -> None:
        super().__init__(druid_task=index_task, **kwargs)


class IndexBuildSegmentsOperator(DruidTaskBuildOperator):
    """Build one unit's segments and push their files to deep storage (mapped, one instance per unit).

    :param index_task: the submitted task, i.e. the XCom of :class:`IndexSubmitOperator` (templated).
    :param build_unit: one build unit from :class:`IndexDeterminePartitionsOperator` (templated; usually mapped).
    """

    _step_name = "build_segments"

    def __init__(self, *, index_task: Any, build_unit: Any, **kwargs: Any) -> None:
        super().__init__(druid_task=index_task, build_unit=build_unit, **kwargs)


class IndexPublishOperator(DruidTaskPublishOperator):
    """Publish every built segment in one transaction; emits the ``druidflow://<dataSource>`` Asset event.

    :param index_task: the submitted task, i.e. the XCom of :class:`IndexSubmitOperator` (templated).
    :param plan: the ``plan`` XCom of :class:`IndexDeterminePartitionsOperator` (templated).
    :param build_results: the results of every build instance, i.e. ``build.output`` (templated).
    """

    def __init__(self, *, index_task: Any, plan: Any, build_results: Any, **kwargs: Any) -> None:
        super().__init__(druid_task=index_task, plan=plan, build_results=build_results, **kwargs)


class ReleaseLocksOperator(DruidTaskReleaseOperator):
    """Release a Druid task's locks (any type); the workflow's *teardown*.

    :param index_task: the submitted task, or its id (templated).
    """

    def __init__(self, *, index_task: Any, **kwargs: Any) -> None:
        super().__init__(druid_task=index_task, **kwargs)
