"""The classic (Druid <= 0.16) firehoses of ``ioConfig.firehose``, each turned into the equivalent input source.

Readers only ever see input sources: :meth:`to_input_source` converts a firehose while the classic spec is
normalised (:mod:`druidflow.specs.ingestion`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from druidflow.intervals import Interval
from druidflow.specs.base import DruidModel
from druidflow.specs.io import (
    CombiningInputSource,
    DruidInputSource,
    HttpInputSource,
    InlineInputSource,
    LocalInputSource,
    PasswordProvider,
    S3InputSource,
    WindowedSegmentId,
    _check_uri,
)


class _PrefetchKnobs(DruidModel):
    """The cache/prefetch settings of Druid's prefetchable firehoses; accepted and validated (our readers stream,
    so they have no effect)."""

    max_cache_capacity_bytes: int = Field(default=1 << 30, ge=0)
    max_fetch_capacity_bytes: int = Field(default=1 << 30, ge=0)
    prefetch_trigger_bytes: Optional[int] = Field(default=None, ge=0)
    fetch_timeout: int = Field(default=60_000, ge=0)
    max_fetch_retry: int = Field(default=3, ge=0)


class LocalFirehose(DruidModel):
    """``{"type": "local", "baseDir", "filter"}`` (both required)."""

    type: Literal["local"] = "local"
    base_dir: str = Field(min_length=1)
    filter: str = Field(min_length=1)
    parser: Optional[dict[str, Any]] = None  # some old specs repeat the parser here; ignored, as Druid does

    def to_input_source(self) -> LocalInputSource:
        return LocalInputSource(base_dir=self.base_dir, filter=self.filter)


class HttpFirehose(_PrefetchKnobs):
    """``{"type": "http", "uris"}`` plus the prefetch knobs and basic authentication."""

    type: Literal["http"] = "http"
    uris: list[str] = Field(min_length=1)
    http_authentication_username: Optional[str] = None
    http_authentication_password: Optional[PasswordProvider] = None

    @field_validator("uris")
    @classmethod
    def _uris(cls, uris: list[str]) -> list[str]:
        return [_check_uri(u, ("http", "https"), need_path=False) for u in uris]

    def to_input_source(self) -> HttpInputSource:
        return HttpInputSource(
            uris=self.uris,
            http_authentication_username=self.http_authentication_username,
            http_authentication_password=self.http_authentication_password,
        )


class StaticS3Firehose(_PrefetchKnobs):
    """``{"type": "static-s3"}`` with ``uris`` or ``prefixes`` (not both) plus the prefetch knobs."""

    type: Literal["static-s3"] = "static-s3"
    uris: Optional[list[str]] = None
    prefixes: Optional[list[str]] = None

    @field_validator("uris")
    @classmethod
    def _uris(cls, uris: Optional[list[str]]) -> Optional[list[str]]:
        return None if uris is None else [_check_uri(u, ("s3", "s3a", "s3n"), need_path=True) for u in uris]

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, prefixes: Optional[list[str]]) -> Optional[list[str]]:
        return None if prefixes is None else [_check_uri(u, ("s3", "s3a", "s3n"), need_path=False) for u in prefixes]

    @model_validator(mode="after")
    def _one(self) -> StaticS3Firehose:
        if bool(self.uris) == bool(self.prefixes):
            raise ValueError("exactly one of uris or prefixes must be set")
        return self

    def to_input_source(self) -> S3InputSource:
        return S3InputSource(uris=self.uris or None, prefixes=self.prefixes or None)


class InlineFirehose(DruidModel):
    """``{"type": "inline", "data": "..."}``."""

    type: Literal["inline"] = "inline"
    data: str = Field(min_length=1)

    def to_input_source(self) -> InlineInputSource:
        return InlineInputSource(data=self.data)


class IngestSegmentFirehose(DruidModel):
    """``{"type": "ingestSegment"}``: re-read Druid segments (``interval`` or ``segments``)."""

    type: Literal["ingestSegment"] = "ingestSegment"
    data_source: str = Field(min_length=1)
    interval: Optional[Interval] = None
    segments: Optional[list[WindowedSegmentId]] = None
    dimensions: Optional[list[str]] = None
    metrics: Optional[list[str]] = None
    filter: Optional[dict[str, Any]] = None
    max_input_segment_bytes_per_task: Optional[int] = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _interval_or_segments(self) -> IngestSegmentFirehose:
        if (self.interval is None) == (self.segments is None):
            raise ValueError("exactly one of interval or segments must be set")
        return self

    def to_input_source(self) -> DruidInputSource:
        return DruidInputSource(
            data_source=self.data_source,
            interval=self.interval,
            segments=self.segments,
            filter=self.filter,
            dimensions=self.dimensions,
            metrics=self.metrics,
        )


class CombiningFirehose(DruidModel):
    """``{"type": "combining", "delegates": [...]}``: every delegate firehose's rows, one after another (Druid's
    update tutorial: an ``ingestSegment`` firehose over existing segments plus a ``local`` one over a new file)."""

    type: Literal["combining"] = "combining"
    delegates: list[Firehose] = Field(min_length=1)

    def to_input_source(self) -> CombiningInputSource:
        return CombiningInputSource(delegates=[d.to_input_source() for d in self.delegates])


Firehose = Annotated[
    Union[LocalFirehose, HttpFirehose, StaticS3Firehose, InlineFirehose, IngestSegmentFirehose, CombiningFirehose],
    Field(discriminator="type"),
]
# The recursive reference above resolves when the model is first used (DruidModel defers building).


