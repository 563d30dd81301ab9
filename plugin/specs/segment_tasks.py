"""Druid's legacy segment tasks: ``merge`` and ``append`` (a list of segments into one), ``same_interval_merge``
and ``convert_segment`` (re-write segments in the current format)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from druidflow.aggregators import Aggregator
from druidflow.exceptions import SpecError
from druidflow.intervals import Interval, umbrella
from druidflow.segments.descriptor import DataSegment
from druidflow.specs.task_base import CONVERTED_VERSION_SUFFIX, DataSourceTask, IntervalTask, raw_interval
from druidflow.specs.tuning import IndexSpec, SegmentWriteOutMediumFactory
from druidflow.specs.validation import get_field


def _unique_aggregator_names(aggs: Optional[list[Any]], field: str) -> None:
    names: set[str] = set()
    for i, agg in enumerate(aggs or ()):
        if agg.name in names:
            raise SpecError(f"{field}[{i}].name", agg.name, "two aggregators have this name")
        names.add(agg.name)


def _is_unsharded(segment: DataSegment) -> bool:
    spec = segment.shard_spec
    if spec.type == "none":
        return True
    if spec.type == "tombstone":
        return False
    return spec.partition_num == 0 and spec.core_partitions <= 1


class _SegmentListTask(DataSourceTask):
    """``merge`` and ``append``: a list of full segment objects of one dataSource, merged into one segment."""

    segments: list[DataSegment] = Field(min_length=1)
    index_spec: Optional[IndexSpec] = None
    segment_write_out_medium_factory: Optional[SegmentWriteOutMediumFactory] = None

    @model_validator(mode="after")
    def _segments_fit(self) -> _SegmentListTask:
        seen: set[str] = set()
        for i, seg in enumerate(self.segments):
            if seg.data_source.lower() != self.data_source.lower():
                raise SpecError(f"segments[{i}].dataSource", seg.data_source, f"the segment is not of dataSource {self.data_source!r}")
            if seg.id in seen:
                raise SpecError(f"segments[{i}]", seg.id, "segment listed twice")
            seen.add(seg.id)
            if not _is_unsharded(seg):
                raise SpecError(
                    f"segments[{i}].shardSpec", seg.shard_spec.model_dump(), f"{self.type} needs unsharded segments (one partition per time chunk)"
                )
        _unique_aggregator_names(getattr(self, "aggregations", None), "aggregations")
        return self

    @property
    def interval(self) -> Interval:
        """The umbrella interval of the segments: what is locked, and the interval of the output segment."""
        return umbrella([s.interval for s in self.segments])

    @property
    def segment_ids(self) -> list[str]:
        return [s.id for s in self.segments]


class MergeTask(_SegmentListTask):
    """``merge`` (Druid <= 0.14): merge the segments into one, re-aggregating with ``aggregations`` when ``rollup``."""

    type: Literal["merge"] = "merge"
    aggregations: list[Aggregator]
    rollup: bool = True


class AppendTask(_SegmentListTask):
    """``append`` (Druid <= 0.14): concatenate the visible rows of the segments into one segment, without rollup."""

    type: Literal["append"] = "append"
    aggregations: Optional[list[Aggregator]] = None


class SameIntervalMergeTask(IntervalTask):
    """``same_interval_merge``: merge every used segment of ``interval`` into one."""

    type: Literal["same_interval_merge"] = "same_interval_merge"
    aggregations: list[Aggregator]
    rollup: bool = True
    index_spec: Optional[IndexSpec] = None
    segment_write_out_medium_factory: Optional[SegmentWriteOutMediumFactory] = None

    @model_validator(mode="after")
    def _names(self) -> SameIntervalMergeTask:
        _unique_aggregator_names(self.aggregations, "aggregations")
        return self


class ConvertSegmentTask(IntervalTask):
    """``convert_segment``: rewrite the used segments of ``interval`` (or just ``segment``) with ``indexSpec``.

    Converted segments keep interval and partition; their version gets ``_converted`` appended (as the Druid
    docs say, so the new version sorts above the old one and overshadows it). ``interval`` may be left out when
    ``segment`` is given (it is then the segment's interval). ``validate`` compares old and new rows.
    """

    type: Literal["convert_segment", "version_converter"] = "convert_segment"
    segment: Optional[DataSegment] = None
    index_spec: IndexSpec
    force: bool = False
    validate_segments: bool = Field(default=True, alias="validate")
    segment_write_out_medium_factory: Optional[SegmentWriteOutMediumFactory] = None

    @model_validator(mode="before")
    @classmethod
    def _interval_from_segment(cls, data: Any) -> Any:
        if isinstance(data, dict) and get_field(data, "interval") is None and isinstance(get_field(data, "segment"), dict):
            interval = get_field(get_field(data, "segment"), "interval")
            if interval is not None:
                data = {**data, "interval": interval}
        return data

    @classmethod
    def _raw_id_interval(cls, data: dict[str, Any]) -> Optional[Interval]:
        return raw_interval(get_field(data, "interval") or get_field(get_field(data, "segment"), "interval"))

    @classmethod
    def _id_type(cls, kind: Any) -> str:
        return "convert_segment"

    @field_validator("type")
    @classmethod
    def _canonical(cls, v: str) -> str:
        return "convert_segment"

    @model_validator(mode="after")
    def _segment_fits(self) -> ConvertSegmentTask:
        seg = self.segment
        if seg is not None:
            if seg.data_source != self.data_source:
                raise SpecError("segment.dataSource", seg.data_source, f"the segment is not of dataSource {self.data_source!r}")
            if not self.interval.contains(seg.interval):
                raise SpecError("segment.interval", str(seg.interval), f"the segment lies outside interval {self.interval}")
        return self

    @staticmethod
    def converted_version(version: str) -> str:
        """The version of a converted segment: the old one with ``_converted`` appended (once per conversion)."""
        return version + CONVERTED_VERSION_SUFFIX
