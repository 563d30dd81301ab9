"""What every task envelope has (``type``, ``id``, ``context``, ``resource``), its generated id, its context keys and
the lock settings they imply. The task types are in :mod:`druidflow.specs.tasks`."""

from __future__ import annotations

import re
import secrets
from typing import Any, ClassVar, Optional

from pydantic import Field, field_validator, model_validator

from druidflow.exceptions import SpecError
from druidflow.intervals import Interval, format_instant, now_ms
from druidflow.specs.limits import LONG_MAX, check_java_int
from druidflow.specs.validation import SpecModel, check_druid_id, drop_nulls, get_field

DEFAULT_PRIORITIES = {"index": 50, "index_parallel": 50, "index_hadoop": 50, "compact": 25, "merge": 25, "append": 25, "same_interval_merge": 25}
"""Default lock priority per task type (Druid's ``Tasks.DEFAULT_*_PRIORITY``); every other type gets 0."""

DEFAULT_LOCK_TIMEOUT_MS = 300_000
LOCK_TYPES = ("EXCLUSIVE", "SHARED", "APPEND", "REPLACE")
CONVERTED_VERSION_SUFFIX = "_converted"


# --------------------------------------------------------------------------------------------------- task ids


def random_id_part() -> str:
    """Druid's ``IdUtils.getRandomId``: 8 characters, each ``a`` + one random nibble (so ``a``-``p``)."""
    bits = secrets.randbits(32)
    return "".join(chr(ord("a") + ((bits >> (4 * i)) & 0xF)) for i in range(8))


def generate_task_id(task_type: str, data_source: str, interval: Optional[Interval] = None, now: Optional[int] = None) -> str:
    """``<type>_<dataSource>_<random8>[_<start>_<end>]_<now>`` (Druid's ``IdUtils.newTaskId``, UTC ISO instants)."""
    parts = [task_type, data_source, random_id_part()]
    if interval is not None:
        parts += [format_instant(interval.start), format_instant(interval.end)]
    parts.append(format_instant(now_ms() if now is None else now))
    return "_".join(parts)


def valid_id(value: Any) -> bool:
    try:
        check_druid_id(value, "dataSource")
    except SpecError:
        return False
    return True


def raw_interval(value: Any) -> Optional[Interval]:
    try:
        return Interval.parse(value)
    except (SpecError, TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------------------------- context


def as_bool(value: Any) -> Optional[bool]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def as_int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    return None


_BOOL_KEYS = ("useSharedLock", "useConcurrentLocks", "forceTimeChunkLock", "storeCompactionState", "storeEmptyColumns", "dryRun")


def _check_context(ctx: dict[str, Any]) -> dict[str, Any]:
    if "priority" in ctx:
        priority = as_int(ctx["priority"])
        if priority is None:
            raise SpecError("priority", ctx["priority"], "the task priority must be an integer")
        check_java_int(priority, "priority")
    if "taskLockTimeout" in ctx:
        timeout = as_int(ctx["taskLockTimeout"])
        if timeout is None or timeout <= 0 or timeout > LONG_MAX:
            raise SpecError("taskLockTimeout", ctx["taskLockTimeout"], "must be a positive number of milliseconds (a Java long)")
    if ctx.get("taskLockType") is not None:
        kind = ctx["taskLockType"]
        if not isinstance(kind, str) or kind.upper() not in LOCK_TYPES:
            raise SpecError("taskLockType", kind, f"must be one of {', '.join(LOCK_TYPES)}")
    for key in _BOOL_KEYS:
        if key in ctx and as_bool(ctx[key]) is None:
            raise SpecError(key, ctx[key], "must be true or false")
    if as_bool(ctx.get("forceTimeChunkLock", True)) is False:
        raise SpecError("forceTimeChunkLock", ctx["forceTimeChunkLock"], "Druidflow locks whole time chunks; segment locking is not supported")
    return ctx


# ------------------------------------------------------------------------------------------------ base


class TaskResource(SpecModel):
    """``resource``: ``{"availabilityGroup": <id>, "requiredCapacity": 1}`` (accepted; Druidflow has no slots)."""

    availability_group: Optional[str] = None
    required_capacity: int = Field(default=1, gt=0)


class BaseTask(SpecModel):
    """What every task envelope has: ``type``, ``id``, ``context`` (and the optional ``resource``)."""

    type: str
    id: Optional[str] = None  # always set after validation (generated when absent)
    resource: Optional[TaskResource] = None
    context: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _assign_id(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = drop_nulls(data)
        if get_field(data, "id") is None:
            ds = cls._raw_data_source(data)
            if valid_id(ds):
                kind = data.get("type") or cls.model_fields["type"].default
                data = {**data, "id": generate_task_id(cls._id_type(kind), ds, cls._raw_id_interval(data))}
        return data

    @classmethod
    def _raw_data_source(cls, data: dict[str, Any]) -> Any:
        return get_field(data, "dataSource")

    @classmethod
    def _raw_id_interval(cls, data: dict[str, Any]) -> Optional[Interval]:
        return None

    @classmethod
    def _id_type(cls, kind: Any) -> str:
        return str(kind)

    @field_validator("id")
    @classmethod
    def _id(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else check_druid_id(v, "task id")

    @field_validator("context", mode="before")
    @classmethod
    def _context(cls, v: Any) -> Any:
        return _check_context(v) if isinstance(v, dict) else v

    @property
    def task_type(self) -> str:
        return self.type

    @property
    def task_id(self) -> str:
        if self.id is None:  # validation sets it; only an unvalidated model (model_construct) lacks one
            raise SpecError("id", None, f"this {self.type} task has no id")
        return self.id

    @property
    def group_id(self) -> str:
        """Tasks of one group share their locks; it is the task id except for appending index tasks."""
        return self.task_id

    @property
    def priority(self) -> int:
        """Lock priority: the context ``priority``, else the type's default (index 50, compact/merge/append 25, else 0)."""
        given = as_int(self.context.get("priority"))
        return given if given is not None else DEFAULT_PRIORITIES.get(self.task_type, 0)

    @property
    def lock_timeout_ms(self) -> int:
        """How long a blocking lock request waits (context ``taskLockTimeout``, default 300 000 ms)."""
        given = as_int(self.context.get("taskLockTimeout"))
        return given if given is not None else DEFAULT_LOCK_TIMEOUT_MS

    @property
    def lock_type(self) -> str:
        """The time-chunk lock type this task asks for (Druid's ``determineLockType``); EXCLUSIVE by default.

        ``useConcurrentLocks`` gives APPEND for appending tasks and REPLACE for the others; otherwise the context
        ``taskLockType`` (or SHARED with ``useSharedLock``), where SHARED and APPEND fall back to EXCLUSIVE for a
        task that does not append.
        """
        appending = self._appends
        if as_bool(self.context.get("useConcurrentLocks")):
            return "APPEND" if appending else "REPLACE"
        kind = self.context.get("taskLockType")
        kind = kind.upper() if isinstance(kind, str) else ("SHARED" if as_bool(self.context.get("useSharedLock")) else "EXCLUSIVE")
        if kind in ("SHARED", "APPEND") and not appending:
            return "EXCLUSIVE"
        return kind

    @property
    def _appends(self) -> bool:
        return False

    def context_flag(self, key: str, default: bool = False) -> bool:
        """A boolean context key (``true``/``false``, JSON or string)."""
        value = as_bool(self.context.get(key))
        return default if value is None else value


def check_data_source(v: str) -> str:
    return check_druid_id(v, "dataSource")


class DataSourceTask(BaseTask):
    """A task naming its one dataSource at the top level (``dataSource``)."""

    data_source: str

    @field_validator("data_source")
    @classmethod
    def _data_source(cls, v: str) -> str:
        return check_data_source(v)


class IntervalTask(DataSourceTask):
    """A task on one non-empty ``interval`` of its dataSource; the interval is part of its generated id."""

    interval: Interval

    #: How the error for an empty interval names it.
    interval_role: ClassVar[str] = "the interval"

    @classmethod
    def _raw_id_interval(cls, data: dict[str, Any]) -> Optional[Interval]:
        return raw_interval(get_field(data, "interval"))

    @field_validator("interval")
    @classmethod
    def _non_empty(cls, v: Interval) -> Interval:
        if v.is_empty():
            raise SpecError("", str(v), f"{cls.interval_role} must not be empty")
        return v
