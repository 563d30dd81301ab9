"""The sketch aggregators of Druid's ``druid-datasketches`` extension and its classic approximate ones.

``thetaSketch``, ``HLLSketchBuild``/``HLLSketchMerge``, ``quantilesDoublesSketch``, ``hyperUnique`` and ``cardinality``
store one serialized sketch per rolled-up row (see :mod:`druidflow.sketches`). Fields and defaults are Druid's
(docs/development/extensions-core/datasketches-{theta,hll,quantiles}.md, docs/querying/hll-old.md). Query-time
fields (``shouldFinalize``, ``round``) change nothing at ingestion, in Druid too; they are kept in the segment's
aggregators and through compaction, and ``round`` rounds what ``druidflow read --estimate`` prints.

Every one needs the ``sketches`` extra; without it a spec naming one fails when it is parsed (at submit).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from druidflow.aggregators import _Aggregator
from druidflow.exceptions import SpecError
from druidflow.sketches import HYPER_UNIQUE_LG_K, SketchSpec, library

SKETCH_TYPES = ("thetaSketch", "HLLSketchBuild", "HLLSketchMerge", "quantilesDoublesSketch", "hyperUnique", "cardinality")


def _power_of_two(v: int) -> bool:
    return v > 0 and v & (v - 1) == 0


class _SketchAggregator(_Aggregator):
    """A sketch metric: its column holds serialized sketches (``kind`` ``sketch``)."""

    field_name: str = Field(min_length=1)

    @model_validator(mode="after")
    def _library_installed(self) -> _SketchAggregator:
        library(self.type)
        return self

    @property
    def kind(self) -> Any:
        return "sketch"

    @property
    def value_type(self) -> Any:
        return "sketch"

    @property
    def input_column(self) -> str | None:
        return self.field_name

    @property
    def expression(self) -> str | None:
        return None

    @property
    def required_columns(self) -> list[str]:
        return [self.field_name]

    @property
    def input_is_sketch(self) -> bool:
        """Whether text input holds base64 sketches (a binary input column always holds sketches)."""
        return False

    @property
    def sketch(self) -> SketchSpec:
        raise NotImplementedError


class ThetaSketchAggregator(_SketchAggregator):
    """``thetaSketch``: ``size`` (a power of 2, default 16384) nominal entries; ``isInputThetaSketch`` reads sketches."""

    type: Literal["thetaSketch"]
    size: int = 16384
    should_finalize: bool = True
    is_input_theta_sketch: bool = False

    @field_validator("size")
    @classmethod
    def _size(cls, v: int) -> int:
        if not _power_of_two(v) or not 16 <= v <= 1 << 26:
            raise SpecError("", v, "thetaSketch size must be a power of 2 from 16 to 67108864")
        return v

    @property
    def input_is_sketch(self) -> bool:
        return self.is_input_theta_sketch

    @property
    def sketch(self) -> SketchSpec:
        return SketchSpec("theta", lg_k=self.size.bit_length() - 1)

    def combining(self) -> Any:
        return ThetaSketchAggregator(type="thetaSketch", name=self.name, field_name=self.name, size=self.size,
                                     should_finalize=self.should_finalize)


HllType = Literal["HLL_4", "HLL_6", "HLL_8"]


class _HllSketchAggregator(_SketchAggregator):
    lg_k: int = Field(12, ge=4, le=21)
    tgt_hll_type: HllType = "HLL_4"
    round: bool = False
    should_finalize: bool = True
    # Druid hashes a string's UTF-16LE code units by default; the Python library hashes UTF-8 only (Druid's "utf8"):
    # estimates are alike, but a sketch built here unions exactly with Druid's only under "utf8". An explicit
    # "utf16le" is refused rather than silently hashed otherwise.
    string_encoding: Literal["utf8"] | None = None

    @property
    def sketch(self) -> SketchSpec:
        return SketchSpec("hll", lg_k=self.lg_k, hll_type=self.tgt_hll_type)

    def combining(self) -> Any:
        return HllSketchMergeAggregator(type="HLLSketchMerge", name=self.name, field_name=self.name, lg_k=self.lg_k,
                                        tgt_hll_type=self.tgt_hll_type, round=self.round,
                                        should_finalize=self.should_finalize, string_encoding=self.string_encoding)


class HllSketchBuildAggregator(_HllSketchAggregator):
    """``HLLSketchBuild``: an HLL sketch of the raw values (``lgK`` 4..21, default 12; ``tgtHllType`` HLL_4/6/8)."""

    type: Literal["HLLSketchBuild"]


class HllSketchMergeAggregator(_HllSketchAggregator):
    """``HLLSketchMerge``: the union of HLL sketches in the input (binary, or base64 text)."""

    type: Literal["HLLSketchMerge"]

    @property
    def input_is_sketch(self) -> bool:
        return True


class QuantilesDoublesSketchAggregator(_SketchAggregator):
    """``quantilesDoublesSketch``: a DoublesSketch of numeric input (``k`` a power of 2 from 2 to 32768, default 128)."""

    type: Literal["quantilesDoublesSketch"]
    k: int = 128
    # Druid sizes off-heap memory with it; an on-heap sketch here needs no bound, and the result is the same.
    max_stream_length: int = Field(1_000_000_000, ge=1)
    should_finalize: bool = True

    @field_validator("k")
    @classmethod
    def _k(cls, v: int) -> int:
        if not _power_of_two(v) or not 2 <= v <= 32768:
            raise SpecError("", v, "quantilesDoublesSketch k must be a power of 2 from 2 to 32768")
        return v

    @property
    def sketch(self) -> SketchSpec:
        return SketchSpec("quantiles", k=self.k)

    def combining(self) -> Any:
        return QuantilesDoublesSketchAggregator(type="quantilesDoublesSketch", name=self.name, field_name=self.name,
                                                k=self.k, max_stream_length=self.max_stream_length,
                                                should_finalize=self.should_finalize)


class HyperUniqueAggregator(_SketchAggregator):
    """``hyperUnique``: distinct values of ``fieldName``, stored as a DataSketches HLL (2^11 buckets), not Druid's
    HyperLogLogCollector bytes; ``isInputHyperUnique`` (Druid-serialized collectors in the input) is refused."""

    type: Literal["hyperUnique"]
    is_input_hyper_unique: bool = False
    round: bool = False

    @field_validator("is_input_hyper_unique")
    @classmethod
    def _no_druid_collectors(cls, v: bool) -> bool:
        if v:
            raise SpecError("", v, "Druid's serialized HyperLogLogCollector input is not supported "
                            "(hyperUnique is stored as a DataSketches HLL here); ingest the raw values, or HLL sketches "
                            "with HLLSketchMerge")
        return v

    @property
    def sketch(self) -> SketchSpec:
        return SketchSpec("hll", lg_k=HYPER_UNIQUE_LG_K, hll_type="HLL_4")

    def combining(self) -> Any:
        return HyperUniqueAggregator(type="hyperUnique", name=self.name, field_name=self.name, round=self.round)


class CardinalityAggregator(_Aggregator):
    """``cardinality``: distinct values across ``fields`` (``byRow``: distinct combinations of them); it combines as a
    ``hyperUnique`` of itself, as in Druid. ``fields`` entries are names or ``default`` dimension specs."""

    type: Literal["cardinality"]
    fields: list[Any] = Field(min_length=1)
    by_row: bool = False
    round: bool = False

    @model_validator(mode="after")
    def _library_installed(self) -> CardinalityAggregator:
        library(self.type)
        return self

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: list[Any]) -> list[Any]:
        out = []
        for i, f in enumerate(v):
            if isinstance(f, dict):
                if f.get("type", "default") != "default" or set(f) - {"type", "dimension"}:
                    raise SpecError(f"[{i}]", f, "only names and {'type': 'default', 'dimension': ...} specs are supported "
                                    "(no extraction, outputName or outputType)")
                f = f.get("dimension")
            if not isinstance(f, str) or not f:
                raise SpecError(f"[{i}]", f, "a field must be a non-empty column name")
            out.append(f)
        return out

    @property
    def kind(self) -> Any:
        return "sketch"

    @property
    def value_type(self) -> Any:
        return "sketch"

    @property
    def input_column(self) -> str | None:
        return None

    @property
    def expression(self) -> str | None:
        return None

    @property
    def required_columns(self) -> list[str]:
        return list(self.fields)

    @property
    def input_is_sketch(self) -> bool:
        return False

    @property
    def sketch(self) -> SketchSpec:
        return SketchSpec("hll", lg_k=HYPER_UNIQUE_LG_K, hll_type="HLL_4")

    def combining(self) -> Any:
        return HyperUniqueAggregator(type="hyperUnique", name=self.name, field_name=self.name, round=self.round)


SKETCH_CLASSES = (
    ThetaSketchAggregator, HllSketchBuildAggregator, HllSketchMergeAggregator, QuantilesDoublesSketchAggregator,
    HyperUniqueAggregator, CardinalityAggregator,
)
