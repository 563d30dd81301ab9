"""The phases of an ``index_parallel`` task as Airflow operators (Druid's parallel task's sub-tasks, as mapped tasks).

    submit >> acquire_locks >> split_input >> scan (mapped per split) >> decide_partitions
           >> partial_segments (mapped per split) >> plan_merges >> merge_segments (mapped per (chunk, partition))
           >> publish >> release_locks (teardown; also deletes the task's partial files)

Each mapped instance is labelled with its split or its (chunk, partition). A partial instance writes under its own
attempt directory and returns the files it wrote; Airflow keeps the XCom of a mapped instance's successful try only,
so ``plan_merges`` reads each split's successful attempt exactly once, and a killed attempt's files are never merged.
``maxRetry`` (Druid's, default 3) bounds how often a sub-task is retried: the operators retry at most
:data:`SUB_TASK_RETRIES` times and give up earlier once the spec's ``maxRetry`` is spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from druidflow.operators.base import as_dict
from druidflow.operators.druid_task import DruidTaskReleaseOperator, DruidTaskStepOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The upper bound of a sub-task's Airflow retries (a spec's maxRetry may only lower it).
SUB_TASK_RETRIES = 5
SUB_TASK_RETRY_DELAY = timedelta(seconds=5)


def _engine():
    from druidflow.tasks import parallel

    return parallel


class ParallelStepOperator(DruidTaskStepOperator):
    """A step of an ``index_parallel`` task after the input is split.

    :param plan: the task's parallel plan: the XCom ``plan`` of the split or decide step (templated).
    """

    template_fields: Sequence[str] = ("druid_task", "plan", "work_dir")

    def __init__(self, *, plan: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def _plan(self) -> Any:
        return _engine().ParallelPlan.parse(as_dict(self.plan, "plan"), "plan")

    def _sub_task(self, context: Context, fn: Any) -> Any:
        """Run a sub-task; once the spec's maxRetry is spent, a failure is final (no further Airflow retry)."""
        task = self._parse_task()
        try:
            return self._run(context, fn)
        except AirflowFailException:
            raise
        except Exception as exc:
            try_number = int(getattr(context.get("ti"), "try_number", 1) or 1)
            if try_number > _engine().max_retry(task):
                raise AirflowFailException(f"{exc} (maxRetry {_engine().max_retry(task)} spent)") from exc
            raise


class ParallelSplitOperator(ParallelStepOperator):
    """Split the input once, under the task's locks; returns the splits to scan (none when the partitioning needs no
    statistics) and pushes the plan under the XCom key ``plan``."""

    _step_name = "split_input"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 3)
        super().__init__(**kwargs)

    def execute(self, context: Context) -> list[dict[str, Any]]:
        task = self._parse_task()
        the_plan = self._run(context, lambda: _engine().plan(task, self.runtime))
        context["ti"].xcom_push(key="plan", value=the_plan.model_dump())
        self.log.info("Druid index_parallel task %s: %d split(s)%s", task.task_id, len(the_plan.splits), ", scanning them first" if the_plan.scan else "")
        return [s.model_dump() for s in the_plan.scan_splits]


class ParallelSplitStepOperator(ParallelStepOperator):
    """A step over one split of the input, mapped over the splits; retried as Druid retries a sub-task.

    :param split: one split of the plan: an item of the list the split or decide step returned (templated).
    """

    template_fields: Sequence[str] = ("druid_task", "plan", "split", "work_dir")

    def __init__(self, *, split: Any, **kwargs: Any) -> None:
        kwargs.setdefault("map_index_template", "{{ task.split_label }}")
        kwargs.setdefault("retries", SUB_TASK_RETRIES)
        kwargs.setdefault("retry_delay", SUB_TASK_RETRY_DELAY)
        super().__init__(**kwargs)
        self.split = split

    def _split(self) -> Any:
        from druidflow.inputs.splits import InputSplit

        return InputSplit.parse(as_dict(self.split, "split"), "split")

    @property
    def split_label(self) -> str:
        try:
            return self._split().label
        except Exception:
            return ""


class ParallelScanOperator(ParallelSplitStepOperator):
    """One split's statistics for partitioning (hashed without numShards, single_dim, range, or no intervals)."""

    _step_name = "scan"

    def execute(self, context: Context) -> dict[str, Any]:
        task, the_plan, split = self._parse_task(), self._plan(), self._split()
        return self._sub_task(context, lambda: _engine().scan(task, the_plan, split, self.runtime)).model_dump()


class ParallelDecideOperator(ParallelStepOperator):
    """The chunks, locks, versions and shards from the scans; returns every split (the partials map over them) and
    pushes the decided plan under the XCom key ``plan``.

    :param scans: the scan step's results, one per split (templated; none when no scan was needed).
    """

    template_fields: Sequence[str] = ("druid_task", "plan", "scans", "work_dir")
    _step_name = "decide_partitions"

    def __init__(self, *, scans: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "none_failed")  # no scan needed: the mapped scan is skipped
        kwargs.setdefault("retries", 30)
        kwargs.setdefault("retry_delay", timedelta(seconds=10))
        super().__init__(**kwargs)
        self.scans = scans

    def execute(self, context: Context) -> list[dict[str, Any]]:
        engine = _engine()
        task, the_plan = self._parse_task(), self._plan()
        scans = [engine.SplitScan.parse(as_dict(s, "scans[]"), "scans[]") for s in (list(self.scans or []) if the_plan.scan else []) if s]
        decided = self._run(context, lambda: engine.decide(task, the_plan, scans, self.runtime))
        context["ti"].xcom_push(key="plan", value=decided.model_dump())
        return [s.model_dump() for s in decided.splits]


class ParallelPartialOperator(ParallelSplitStepOperator):
    """Druid's partial segment generation for one split: its rows rolled up per (chunk, partition), pushed to the
    attempt's own directory in deep storage; returns the files written."""

    _step_name = "partial_segments"

    def execute(self, context: Context) -> dict[str, Any]:
        task, the_plan, split = self._parse_task(), self._plan(), self._split()
        result = self._sub_task(context, lambda: _engine().partial(task, the_plan, split, self.runtime))
        self.log.info("split %s: %d partial file(s), %d rows processed", split.label, len(result.files), result.row_stats.processed)
        return result.model_dump()


class ParallelMergesOperator(ParallelStepOperator):
    """The merge units over every split's successful partial; returns them (merge maps over them) and pushes the
    publish plan under the XCom key ``final_plan``.

    :param partials: the partial step's results, one per split attempt that succeeded (templated).
    """

    template_fields: Sequence[str] = ("druid_task", "plan", "partials", "work_dir")
    _step_name = "plan_merges"

    def __init__(self, *, partials: Any, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 30)
        kwargs.setdefault("retry_delay", timedelta(seconds=10))
        super().__init__(**kwargs)
        self.partials = partials

    def execute(self, context: Context) -> list[dict[str, Any]]:
        engine = _engine()
        task, the_plan = self._parse_task(), self._plan()
        partials = [engine.PartialResult.parse(as_dict(p, "partials[]"), "partials[]") for p in list(self.partials or []) if p]
        units = self._run(context, lambda: engine.merges(task, the_plan, partials, self.runtime))
        context["ti"].xcom_push(key="final_plan", value=engine.final_plan(task, the_plan, units, partials).model_dump())
        self.log.info("Druid index_parallel task %s: %d merge(s) over %d split(s)", task.task_id, len(units), len(partials))
        return [u.model_dump() for u in units]


class ParallelReleaseOperator(DruidTaskReleaseOperator):
    """:class:`DruidTaskReleaseOperator` that first deletes the task's partial files (every attempt's)."""

    def execute(self, context: Context) -> dict[str, Any]:
        druid_task_id = self._druid_task_id()
        if druid_task_id:
            removed = self._run(context, lambda: _engine().cleanup(druid_task_id, self.runtime))
            self.log.info("Deleted %d partial file(s) of Druid task %s", removed, druid_task_id)
        return super().execute(context)
