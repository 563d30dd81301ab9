"""Operators of a Kafka supervisor DAG: plan one cycle's tasks, then run each (mapped) Kafka task.

``KafkaSupervisorPlanOperator`` stores the spec (Druid's "submit supervisor"), and unless the supervisor is
suspended returns the cycle's task specs from the committed offsets. ``KafkaTaskOperator`` runs one of them: it
reads its range, builds, and publishes segments and offsets in one transaction. A task that finds its range already
published (a duplicate or a retry after a publish) ends without publishing anything and succeeds, so a retried
Airflow task never publishes twice; the next run plans from the new offsets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from druidflow.exceptions import DruidflowError
from druidflow.operators.base import DruidflowStepOperator, as_dict

if TYPE_CHECKING:
    from airflow.sdk import Context


class KafkaSupervisorPlanOperator(DruidflowStepOperator):
    """Save the supervisor spec and plan this cycle's Kafka tasks (a list of task specs for ``expand``).

    :param spec: Druid's Kafka supervisor spec (dict or JSON text; templated).
    """

    template_fields = ("spec",)
    _step_name = "plan"
    _heartbeat = False

    def __init__(self, *, spec: dict[str, Any] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from druidflow.streaming import supervisor

        def plan() -> list[dict[str, Any]]:
            sup = supervisor.parse_supervisor_spec(as_dict(self.spec, "spec"))
            supervisor.save(self.runtime, sup)
            if supervisor.is_suspended(self.runtime, sup.id):
                raise AirflowSkipException(f"supervisor {sup.id} is suspended")
            return [t.model_dump() for t in supervisor.plan_tasks(sup, self.runtime)]

        return self._run(context, plan)


class KafkaTaskOperator(DruidflowStepOperator):
    """Run one Kafka task (read, build, publish exactly once); returns its report.

    :param kafka_task: one task spec of the plan step's list (dict or JSON text; templated).
    """

    template_fields = ("kafka_task",)
    _step_name = "kafka task"
    _heartbeat = False  # the task heartbeats its own locks

    def __init__(self, *, kafka_task: dict[str, Any] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kafka_task = kafka_task

    def _druid_task_id(self) -> str | None:
        try:
            return str(as_dict(self.kafka_task, "kafka_task")["taskId"])
        except (AirflowException, KeyError):
            return None

    def execute(self, context: Context) -> dict[str, Any]:
        from druidflow.streaming import kafka_task

        task = kafka_task.KafkaTaskSpec.model_validate(as_dict(self.kafka_task, "kafka_task"))
        try_number = getattr(context.get("ti"), "try_number", 1) or 1
        if try_number > 1:
            # A retry reads the range again under a new Druid task id (its first attempt's files are its own).
            task = task.model_copy(update={"task_id": f"{task.task_id}_r{try_number}"})

        def run() -> dict[str, Any]:
            report = kafka_task.run(task, self.runtime)
            self.log.info(
                "Kafka task %s: %s, %d messages, %d segments, offsets %s -> %s%s", report.task_id, report.status,
                report.messages, len(report.segments), report.start, report.end,
                f" ({report.error})" if report.error else "",
            )
            if report.status != "SUCCESS":
                if report.error_type == "OffsetsMismatchError":  # already published by a duplicate: nothing to do
                    return report.model_dump()
                raise _error_from(report.error)
            return report.model_dump()

        return self._run(context, run)

    def on_kill(self) -> None:
        task_id = self._druid_task_id()
        if task_id:
            try:
                self.runtime.lockbox.release_all(task_id)
            except Exception:
                self.log.exception("Could not release the locks of Kafka task %s", task_id)


def _error_from(message: str | None) -> DruidflowError:
    from druidflow.exceptions import RetryableError

    # Whatever failed, nothing was published and the range is still unread: reading it again is always safe.
    return RetryableError(message or "the Kafka task failed")
