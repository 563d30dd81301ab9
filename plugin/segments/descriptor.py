"""``DataSegment``: Druid's segment payload, as stored in the metadata DB and embedded in each segment file."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, Optional

from pydantic import Field, field_validator

from druidflow.intervals import Interval
from druidflow.segments.ids import segment_id
from druidflow.segments.shardspec import NumberedShardSpec, ShardSpec
from druidflow.specs.base import DruidModel

BINARY_VERSION = 9


class DataSegment(DruidModel):
    """One published (or about to be published) segment.

    ``dimensions`` and ``metrics`` are comma-joined strings, as in Druid's payload; use :attr:`dimension_names`
    and :attr:`metric_names` for lists. ``aggregators`` holds the metricsSpec JSON that produced the metric
    columns, so that the segment can be re-read with the combining aggregators (compaction, merges).
    """

    data_source: str
    interval: Interval
    version: str
    load_spec: dict[str, Any] = Field(default_factory=dict)
    dimensions: str = ""
    metrics: str = ""
    shard_spec: ShardSpec = Field(default_factory=NumberedShardSpec)
    binary_version: int = BINARY_VERSION
    size: int = 0
    num_rows: int = 0
    aggregators: list[dict[str, Any]] = Field(default_factory=list)
    rollup: Optional[bool] = None
    query_granularity: Optional[Any] = None
    last_compaction_state: Optional[dict[str, Any]] = None
    identifier: Optional[str] = None  # read-only in Druid; accepted on input, always recomputed

    @field_validator("query_granularity", mode="before")
    @classmethod
    def _one_granularity_form(cls, v: Any) -> Any:
        # "hour", "HOUR", {"type": "period", "period": "PT1H"} are one granularity: stored as Druid writes it.
        if v is None:
            return v
        from druidflow.granularity import Granularity

        try:
            return Granularity.parse(v).to_json()
        except (ValueError, TypeError):
            return v

    @field_validator("dimensions", "metrics", mode="before")
    @classmethod
    def _join(cls, v: Any) -> Any:
        return ",".join(v) if isinstance(v, (list, tuple)) else v

    def model_copy(self, *, update: Optional[Mapping[str, Any]] = None, deep: bool = False) -> DataSegment:
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("id", None)  # the cached id belongs to the original's interval/version/partition
        return copy

    @cached_property
    def id(self) -> str:
        return segment_id(self.data_source, self.interval, self.version, self.partition_num)

    @property
    def partition_num(self) -> int:
        return self.shard_spec.partition_num

    @property
    def dimension_names(self) -> list[str]:
        return [d for d in self.dimensions.split(",") if d]

    @property
    def metric_names(self) -> list[str]:
        return [m for m in self.metrics.split(",") if m]

    @property
    def is_tombstone(self) -> bool:
        return self.shard_spec.type == "tombstone"

    def payload(self) -> dict[str, Any]:
        """The JSON payload, with ``identifier`` filled in as Druid returns it."""
        data = self.model_dump()
        data["identifier"] = self.id
        return data
