"""The ``compact`` task's spec: its input (an interval or exact segments), granularity and schema overrides, every
input form normalised at parse time into one shape."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from druidflow.aggregators import Aggregator
from druidflow.exceptions import SpecError
from druidflow.granularity import Granularity
from druidflow.intervals import Interval, parse_instant, umbrella
from druidflow.segments.descriptor import DataSegment
from druidflow.specs.dimensions import DimensionsSpec
from druidflow.specs.task_base import DataSourceTask, valid_id
from druidflow.specs.tuning import IndexTuningConfig
from druidflow.specs.validation import SpecModel, drop_nulls, field_key, get_field, pop_field, validate_as
from druidflow.transforms import TransformSpec


class CompactionIntervalSpec(SpecModel):
    """``{"type": "interval", "interval": I, "sha256OfSortedSegmentIds": optional}``: the visible segments of ``I``."""

    type: Literal["interval"] = "interval"
    interval: Interval
    sha256_of_sorted_segment_ids: Optional[str] = None

    @field_validator("interval")
    @classmethod
    def _non_empty(cls, v: Interval) -> Interval:
        if v.is_empty():
            raise SpecError("", str(v), "the interval to compact must not be empty")
        return v

    @field_validator("sha256_of_sorted_segment_ids")
    @classmethod
    def _hex(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", v):
            raise SpecError("", v, "expected the hex SHA-256 (64 characters) of the sorted segment ids")
        return None if v is None else v.lower()


class SpecificSegmentsSpec(SpecModel):
    """``{"type": "segments", "segments": [segment ids]}``: exactly these segments, which must still be the used set."""

    type: Literal["segments"] = "segments"
    segments: list[str] = Field(min_length=1)

    @field_validator("segments")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        seen: set[str] = set()
        for i, sid in enumerate(v):
            if sid in seen:
                raise SpecError(f"[{i}]", sid, "segment listed twice")
            seen.add(sid)
        return v


CompactionInputSpec = Annotated[Union[CompactionIntervalSpec, SpecificSegmentsSpec], Field(discriminator="type")]


class CompactionIOConfig(SpecModel):
    """``ioConfig`` of a compaction: ``{"type": "compact", "inputSpec": ..., "dropExisting": false}``."""

    type: Literal["compact"] = "compact"
    input_spec: CompactionInputSpec
    drop_existing: bool = False
    allow_non_aligned_interval: bool = False


class CompactionGranularitySpec(SpecModel):
    """``granularitySpec`` of a compaction; each null field keeps what the input segments have."""

    segment_granularity: Optional[Granularity] = None
    query_granularity: Optional[Granularity] = None
    rollup: Optional[bool] = None


def segment_id_interval(data_source: str, segment_id: str) -> Interval:
    """The interval of a segment id of ``data_source`` (``<ds>_<start>_<end>_<version>[_<n>]``); ValueError if not one."""
    prefix = data_source + "_"
    if not segment_id.startswith(prefix):
        raise ValueError(f"not a segment id of dataSource {data_source!r}")
    parts = segment_id[len(prefix) :].split("_")
    if len(parts) < 3 or not parts[2]:
        raise ValueError("a segment id is <dataSource>_<start>_<end>_<version>[_<partitionNum>]")
    try:
        return Interval(parse_instant(parts[0]), parse_instant(parts[1]))
    except SpecError as exc:
        raise ValueError(f"a segment id is <dataSource>_<start>_<end>_<version>[_<partitionNum>]: {exc.reason}") from None


class CompactTask(DataSourceTask):
    """A ``compact`` task (Druid §3.1), normalised: the input is always ``ioConfig.inputSpec``.

    The deprecated top-level ``interval`` and ``segments`` (full segment objects or ids) become an ``interval``
    or ``segments`` inputSpec; ``dimensions`` becomes ``dimensionsSpec``; ``segmentGranularity`` moves into
    ``granularitySpec``. Exactly one input form must be given. Null ``dimensionsSpec``, ``metricsSpec`` and
    granularities mean "infer from the input segments".
    """

    type: Literal["compact"] = "compact"
    io_config: CompactionIOConfig
    dimensions_spec: Optional[DimensionsSpec] = None
    metrics_spec: Optional[list[Aggregator]] = None
    granularity_spec: Optional[CompactionGranularitySpec] = None
    transform_spec: Optional[TransformSpec] = None
    tuning_config: Optional[IndexTuningConfig] = None

    @model_validator(mode="before")
    @classmethod
    def _one_shape(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = drop_nulls(dict(data))
        forms = [name for name in ("interval", "segments", "ioConfig") if field_key(data, name) is not None]
        if len(forms) != 1:
            raise SpecError(
                forms[1] if forms else "ioConfig",
                get_field(data, forms[1]) if forms else None,
                "give exactly one of interval, segments or ioConfig.inputSpec" + (f" (got {' and '.join(forms)})" if forms else ""),
            )
        # the deprecated forms are validated here, so that their errors name the field the user wrote
        if forms[0] == "interval":
            spec = validate_as(CompactionIntervalSpec, {"type": "interval", "interval": pop_field(data, "interval")})
            data["ioConfig"] = {"type": "compact", "inputSpec": spec}
        elif forms[0] == "segments":
            ids = _segment_ids(pop_field(data, "segments"))
            spec = validate_as(SpecificSegmentsSpec, {"type": "segments", "segments": ids})
            ds = get_field(data, "dataSource")
            if valid_id(ds):
                _check_segment_ids(ds, spec.segments, "segments")
            data["ioConfig"] = {"type": "compact", "inputSpec": spec}
        if field_key(data, "dimensions") is not None:
            dims = pop_field(data, "dimensions")
            if field_key(data, "dimensionsSpec") is not None:
                raise SpecError("dimensions", dims, "give dimensions or dimensionsSpec, not both")
            data["dimensionsSpec"] = {"dimensions": dims}
        if field_key(data, "segmentGranularity") is not None:
            seg = pop_field(data, "segmentGranularity")
            raw_gran = get_field(data, "granularitySpec")
            if raw_gran is not None and not isinstance(raw_gran, dict):
                raise SpecError("granularitySpec", raw_gran, "expected an object such as {\"segmentGranularity\": \"DAY\"}")
            gran = dict(raw_gran or {})
            given = get_field(gran, "segmentGranularity")
            if given is not None and not _same_granularity(given, seg):
                raise SpecError(
                    "segmentGranularity", seg, f"conflicts with granularitySpec.segmentGranularity ({given!r}); give one"
                )
            gran.pop(field_key(gran, "segmentGranularity") or "segmentGranularity", None)
            gran["segmentGranularity"] = seg
            data.pop(field_key(data, "granularitySpec") or "granularitySpec", None)
            data["granularitySpec"] = gran
        return data

    @model_validator(mode="after")
    def _consistent(self) -> CompactTask:
        spec = self.io_config.input_spec
        if isinstance(spec, SpecificSegmentsSpec):
            _check_segment_ids(self.data_source, spec.segments, "ioConfig.inputSpec.segments")
        names: set[str] = set()
        for i, agg in enumerate(self.metrics_spec or ()):
            if agg.name in names:
                raise SpecError(f"metricsSpec[{i}].name", agg.name, "two metrics have this name")
            names.add(agg.name)
        if self.tuning_config is not None and self.tuning_config.await_segment_availability_timeout_millis:
            raise SpecError(
                "tuningConfig.awaitSegmentAvailabilityTimeoutMillis",
                self.tuning_config.await_segment_availability_timeout_millis,
                "is not allowed in a compaction task",
            )
        return self

    @property
    def interval(self) -> Optional[Interval]:
        """The interval to compact (interval inputSpec), or None for a segments inputSpec."""
        spec = self.io_config.input_spec
        return spec.interval if isinstance(spec, CompactionIntervalSpec) else None

    @property
    def segment_ids(self) -> Optional[list[str]]:
        """The exact segments to compact (segments inputSpec), or None for an interval inputSpec."""
        spec = self.io_config.input_spec
        return list(spec.segments) if isinstance(spec, SpecificSegmentsSpec) else None

    @property
    def sha256_of_sorted_segment_ids(self) -> Optional[str]:
        spec = self.io_config.input_spec
        return spec.sha256_of_sorted_segment_ids if isinstance(spec, CompactionIntervalSpec) else None

    @property
    def requested_interval(self) -> Interval:
        """The interval named by the input: the inputSpec's interval, or the umbrella of the listed segments."""
        if self.interval is not None:
            return self.interval
        return umbrella([segment_id_interval(self.data_source, sid) for sid in self.segment_ids or ()])


def _check_segment_ids(data_source: str, ids: list[str], path: str) -> None:
    for i, sid in enumerate(ids):
        try:
            segment_id_interval(data_source, sid)
        except ValueError as exc:
            raise SpecError(f"{path}[{i}]", sid, str(exc)) from None


def _same_granularity(a: Any, b: Any) -> bool:
    try:
        return Granularity.parse(a) == Granularity.parse(b)
    except SpecError:
        return a == b


def _segment_ids(value: Any) -> Any:
    """Ids of the classic ``segments`` field (full segment objects or ids)."""
    if not isinstance(value, list):
        return value
    out: list[Any] = []
    for i, seg in enumerate(value):
        if isinstance(seg, dict):
            out.append(validate_as(DataSegment, seg, f"segments[{i}]").id)
        else:
            out.append(seg)
    return out
