"""The compaction state a compaction records on its output segments, and the test "does this chunk need compacting?".

Every segment a ``compact`` task publishes carries ``lastCompactionState`` (Druid's ``CompactionState``):

.. code-block:: json

    {"partitionsSpec": {"type": "dynamic", "maxRowsPerSegment": 5000000, "maxTotalRows": 20000000},
     "indexSpec": {"bitmap": {"type": "roaring"}, "dimensionCompression": "lz4", ...every default filled in},
     "granularitySpec": {"segmentGranularity": "DAY", "queryGranularity": "HOUR", "rollup": true},
     "dimensionsSpec": {"dimensions": ["page", {"type": "long", "name": "n"}]},
     "metricsSpec": [{"type": "longSum", "name": "count", "fieldName": "count"}],
     "transformSpec": {"transforms": []},
     "fingerprint": "<sha256 of the canonical JSON of the fields above>"}

The fingerprint lets a reader see at a glance which segments were compacted the same way; the decision itself
(:func:`needs_compaction`) compares field by field, because a configuration may leave fields out ("don't care"),
and says *which* field differs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Optional

from druidflow.aggregators import parse_metrics_spec
from druidflow.granularity import Granularity
from druidflow.segments.descriptor import DataSegment
from druidflow.specs.base import DruidModel
from druidflow.specs.dimensions import DimensionsSpec
from druidflow.specs.tuning import DEFAULT_MAX_ROWS_PER_SEGMENT, IndexSpec, IndexTuningConfig, PartitionsSpec
from druidflow.specs.validation import validate_as
from druidflow.transforms import TransformSpec

#: Druid's ``Long.MAX_VALUE``: dynamic partitioning's ``maxTotalRows`` is normalised to it before comparing,
#: since it only bounds memory during the build and does not shape the segments.
LONG_MAX = 2**63 - 1

_STATE_FIELDS = ("partitionsSpec", "indexSpec", "granularitySpec", "dimensionsSpec", "metricsSpec", "transformSpec")


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def fingerprint(state: dict[str, Any]) -> str:
    """The SHA-256 (hex) of a compaction state's canonical JSON, its own ``fingerprint`` key left out."""
    body = {k: state.get(k) for k in _STATE_FIELDS}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def compaction_state(
    *,
    tuning: Optional[IndexTuningConfig],
    segment_granularity: Optional[Granularity],
    query_granularity: Granularity,
    rollup: bool,
    dimensions_spec: DimensionsSpec,
    metrics_spec: Sequence[Any],
    transform_spec: Optional[TransformSpec],
) -> dict[str, Any]:
    """The ``lastCompactionState`` of a compaction's output: the effective settings it ran with, plus a fingerprint.

    ``segment_granularity`` is None when the output kept the inputs' own (unequal) intervals.
    """
    tuning = tuning or IndexTuningConfig()
    state: dict[str, Any] = {
        "partitionsSpec": tuning.effective_partitions_spec.model_dump(),
        "indexSpec": tuning.index_spec.effective().model_dump(),
        "granularitySpec": {
            "segmentGranularity": None if segment_granularity is None else segment_granularity.to_json(),
            "queryGranularity": query_granularity.to_json(),
            "rollup": rollup,
        },
        "dimensionsSpec": {"dimensions": [_dimension_json(d) for d in dimensions_spec.dimension_schemas]},
        "metricsSpec": [m.model_dump() if hasattr(m, "model_dump") else dict(m) for m in metrics_spec],
        "transformSpec": (transform_spec or TransformSpec()).model_dump(),
    }
    state["fingerprint"] = fingerprint(state)
    return state


def _dimension_json(dim: Any) -> Any:
    return dim.name if dim.type == "string" and dim.multi_value_handling is None else dim.model_dump()


# ------------------------------------------------------------------------------------------------ normalising


def normalise_partitions_spec(spec: Any) -> dict[str, Any]:
    """A partitionsSpec with its defaults filled in and dynamic ``maxTotalRows`` set to Long.MAX (Druid's rule)."""
    if isinstance(spec, dict):
        spec = validate_as(PartitionsSpec, spec, "partitionsSpec")
    out = spec.model_dump()
    if out.get("type") == "dynamic":
        out["maxTotalRows"] = LONG_MAX
    return out


def normalise_index_spec(spec: Any) -> dict[str, Any]:
    """An indexSpec with every default filled in."""
    if isinstance(spec, dict):
        spec = IndexSpec.parse(spec)
    return spec.effective().model_dump()


def _dimensions(spec: Any) -> list[tuple[str, str]]:
    if isinstance(spec, dict):
        spec = DimensionsSpec.parse(spec)
    return [(d.name, d.type) for d in spec.dimension_schemas]


def _metrics(spec: Any) -> list[dict[str, Any]]:
    return [m.model_dump() for m in parse_metrics_spec(spec or [])]


def _transform(spec: Any) -> dict[str, Any]:
    if spec is None:
        return TransformSpec().model_dump()
    if isinstance(spec, dict):
        spec = TransformSpec.parse(spec)
    return spec.model_dump()


def _granularity(value: Any) -> Optional[Granularity]:
    return None if value is None else Granularity.parse(value)


# ------------------------------------------------------------------------------------------------ wanted state


class WantedState(DruidModel):
    """What an auto-compaction configuration asks of a compacted chunk; None means "don't care".

    ``partitions_spec`` and ``index_spec`` are always compared (with defaults filled in), as Druid does.
    """

    partitions_spec: dict[str, Any]
    index_spec: dict[str, Any]
    segment_granularity: Optional[Granularity] = None
    query_granularity: Optional[Granularity] = None
    rollup: Optional[bool] = None
    dimensions_spec: Optional[DimensionsSpec] = None
    metrics_spec: Optional[list[dict[str, Any]]] = None
    transform_spec: Optional[TransformSpec] = None

    @property
    def target_rows_per_segment(self) -> int:
        """The segment size the partitioning aims at: below it, a segment counts as a fragment."""
        spec = self.partitions_spec
        for key in ("maxRowsPerSegment", "targetRowsPerSegment"):
            if spec.get(key):
                return int(spec[key])
        return DEFAULT_MAX_ROWS_PER_SEGMENT


def _first_difference(path: str, stored: Any, wanted: Any) -> Optional[str]:
    """``"<path>.<key> is X, the config wants Y"`` for the first differing key, or None when equal."""
    if stored == wanted:
        return None
    if isinstance(stored, dict) and isinstance(wanted, dict):
        for key in sorted(set(stored) | set(wanted)):
            diff = _first_difference(f"{path}.{key}", stored.get(key), wanted.get(key))
            if diff:
                return diff
        return None
    return f"{path} is {canonical_json(stored)}, the config wants {canonical_json(wanted)}"


def state_difference(stored: dict[str, Any], wanted: WantedState, segments: Sequence[DataSegment] = ()) -> Optional[str]:
    """Why a stored compaction state does not satisfy ``wanted`` (the first field that differs), or None."""
    try:
        diff = _first_difference(
            "partitionsSpec", normalise_partitions_spec(stored.get("partitionsSpec") or {}), normalise_partitions_spec(wanted.partitions_spec)
        )
        if diff:
            return diff
        diff = _first_difference("indexSpec", normalise_index_spec(stored.get("indexSpec") or {}), normalise_index_spec(wanted.index_spec))
        if diff:
            return diff
        gran = stored.get("granularitySpec") or {}
        if wanted.segment_granularity is not None:
            have = _granularity(gran.get("segmentGranularity"))
            if have is None:
                # No granularity recorded (the intervals were kept as they were): check their alignment instead.
                unaligned = [s for s in segments if wanted.segment_granularity.bucket(s.interval.start) != s.interval]
                if unaligned:
                    return f"segment {unaligned[0].id} is not one {wanted.segment_granularity} bucket"
            elif have != wanted.segment_granularity:
                return f"granularitySpec.segmentGranularity is {have}, the config wants {wanted.segment_granularity}"
        if wanted.query_granularity is not None:
            have = _granularity(gran.get("queryGranularity")) or Granularity.parse("NONE")
            if have != wanted.query_granularity:
                return f"granularitySpec.queryGranularity is {have}, the config wants {wanted.query_granularity}"
        if wanted.rollup is not None and gran.get("rollup") is not wanted.rollup:
            return f"granularitySpec.rollup is {gran.get('rollup')}, the config wants {wanted.rollup}"
        if wanted.dimensions_spec is not None:
            have_dims = _dimensions(stored.get("dimensionsSpec") or {})
            want_dims = _dimensions(wanted.dimensions_spec)
            if have_dims != want_dims:
                return f"dimensionsSpec.dimensions are {_names(have_dims)}, the config wants {_names(want_dims)}"
        if wanted.metrics_spec is not None:
            diff = _first_difference("metricsSpec", _metrics(stored.get("metricsSpec")), _metrics(wanted.metrics_spec))
            if diff:
                return diff
        if wanted.transform_spec is not None:
            diff = _first_difference("transformSpec", _transform(stored.get("transformSpec")), _transform(wanted.transform_spec))
            if diff:
                return diff
    except Exception as exc:
        return f"the stored compaction state cannot be read ({exc})"
    return None


def _names(dims: list[tuple[str, str]]) -> str:
    return "[" + ", ".join(n if t == "string" else f"{n}:{t}" for n, t in dims) + "]"


def needs_compaction(segments: Sequence[DataSegment], wanted: WantedState, *, small: Optional[int] = None) -> Optional[str]:
    """Why the segments of one time chunk should be compacted under ``wanted``, or None when they are done.

    In order: more than one segment below the target row count (fragmented); a segment without a compaction state
    (never compacted); segments compacted in different ways; a stored state that differs from ``wanted``.
    ``small``, when the caller counted them already, is how many segments hold fewer rows than the target.
    """
    if not segments:
        return None
    target = wanted.target_rows_per_segment
    if small is None:
        small = sum(1 for s in segments if s.num_rows < target)
    if small > 1:
        return f"fragmented: {small} of {len(segments)} segments hold fewer than the target {target:,} rows"
    missing = [s for s in segments if not s.last_compaction_state]
    if missing:
        return f"never compacted: {len(missing)} of {len(segments)} segment(s) have no compaction state"
    states = {canonical_json({k: (s.last_compaction_state or {}).get(k) for k in _STATE_FIELDS}) for s in segments}
    if len(states) > 1:
        return f"the {len(segments)} segments were compacted with {len(states)} different states"
    diff = state_difference(segments[0].last_compaction_state or {}, wanted, segments)
    return f"compaction state differs: {diff}" if diff else None


def wanted_state(
    *,
    tuning_config: Optional[IndexTuningConfig],
    granularity_spec: Any = None,
    dimensions_spec: Optional[DimensionsSpec] = None,
    metrics_spec: Optional[Sequence[Any]] = None,
    transform_spec: Optional[TransformSpec] = None,
) -> WantedState:
    """The :class:`WantedState` of a configuration (``granularity_spec`` is a compaction granularitySpec or None)."""
    tuning = tuning_config or IndexTuningConfig()
    return WantedState(
        partitions_spec=tuning.effective_partitions_spec.model_dump(),
        index_spec=tuning.index_spec.effective().model_dump(),
        segment_granularity=getattr(granularity_spec, "segment_granularity", None),
        query_granularity=getattr(granularity_spec, "query_granularity", None),
        rollup=getattr(granularity_spec, "rollup", None),
        dimensions_spec=dimensions_spec,
        metrics_spec=None if metrics_spec is None else [m.model_dump() if hasattr(m, "model_dump") else m for m in metrics_spec],
        transform_spec=transform_spec,
    )

