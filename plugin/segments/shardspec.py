"""Druid's shard specs (the ``shardSpec`` object of a segment payload) and what they say about completeness.

A time chunk's segments of one version form a partition set. For ``numbered``-like specs the *core* set is
partitions ``0..N-1`` (N = ``partitions`` / ``numCorePartitions``); the set is complete when all of them exist,
and extra partitions ``>= N`` (appends) are allowed. ``N = 0`` means there is no core set, so any non-empty set
is complete, which is how appended and legacy dynamic segments become visible at once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field

from druidflow.specs.base import DruidModel


class _ShardSpec(DruidModel):
    partition_num: int = 0

    @property
    def core_partitions(self) -> int:
        """Size of the core partition set; 0 means none (every non-empty set is complete)."""
        return 0

    @property
    def extendable(self) -> bool:
        """Whether appends may add partitions to this segment's chunk."""
        return True

    @property
    def partitioned(self) -> bool:
        return True


class NoneShardSpec(_ShardSpec):
    type: Literal["none"] = "none"

    @property
    def core_partitions(self) -> int:
        return 1

    @property
    def extendable(self) -> bool:
        return False

    @property
    def partitioned(self) -> bool:
        return False


class LinearShardSpec(_ShardSpec):
    type: Literal["linear"] = "linear"


class NumberedShardSpec(_ShardSpec):
    type: Literal["numbered"] = "numbered"
    partitions: int = 0

    @property
    def core_partitions(self) -> int:
        return self.partitions


class HashBasedNumberedShardSpec(_ShardSpec):
    type: Literal["hashed"] = "hashed"
    partitions: int = 0
    bucket_id: Optional[int] = None
    num_buckets: Optional[int] = None
    partition_dimensions: list[str] = Field(default_factory=list)
    partition_function: Optional[str] = "murmur3_32_abs"

    @property
    def core_partitions(self) -> int:
        return self.partitions


class SingleDimensionShardSpec(_ShardSpec):
    type: Literal["single"] = "single"
    dimension: str
    start: Optional[str] = None
    end: Optional[str] = None
    num_core_partitions: Optional[int] = None

    @property
    def core_partitions(self) -> int:
        return self.num_core_partitions or 0

    @property
    def extendable(self) -> bool:
        return self.num_core_partitions is not None


class DimensionRangeShardSpec(_ShardSpec):
    type: Literal["range"] = "range"
    dimensions: list[str]
    start: Optional[list[Optional[str]]] = None
    end: Optional[list[Optional[str]]] = None
    num_core_partitions: Optional[int] = None

    @property
    def core_partitions(self) -> int:
        return self.num_core_partitions or 0

    @property
    def extendable(self) -> bool:
        return self.num_core_partitions is not None


class TombstoneShardSpec(_ShardSpec):
    type: Literal["tombstone"] = "tombstone"
    partitions: int = 1

    @property
    def core_partitions(self) -> int:
        return 1


ShardSpec = Annotated[
    Union[
        NoneShardSpec,
        LinearShardSpec,
        NumberedShardSpec,
        HashBasedNumberedShardSpec,
        SingleDimensionShardSpec,
        DimensionRangeShardSpec,
        TombstoneShardSpec,
    ],
    Field(discriminator="type"),
]


def with_core_partitions(spec: Any, n: int) -> Any:
    """A copy of ``spec`` whose core partition set has size ``n`` (filled in at publish, as Druid >= 0.19 does)."""
    if isinstance(spec, (NumberedShardSpec, HashBasedNumberedShardSpec)):
        return spec.model_copy(update={"partitions": n})
    if isinstance(spec, (SingleDimensionShardSpec, DimensionRangeShardSpec)):
        return spec.model_copy(update={"num_core_partitions": n})
    return spec
