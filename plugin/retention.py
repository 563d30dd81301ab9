"""Retention rules (Druid §5.5): which used segments to keep and which to drop, per dataSource.

Rules are a JSON list per dataSource, evaluated in order for each used segment; the first rule that applies
decides. A segment no rule applies to is kept (Druid's cluster default is ``loadForever``); the rules stored
for the dataSource ``_default`` are appended to every dataSource's own, as Druid does.

Druid's rules and exactly when each applies to a segment interval ``[s, e)`` at reference time ``now``:

* ``loadForever`` / ``dropForever``: always.
* ``loadByPeriod`` {``period``, ``includeFuture`` = true}: ``[now - period, now)`` overlaps ``[s, e)``; with
  includeFuture, simply ``now - period < e``.
* ``dropByPeriod`` {``period``, ``includeFuture`` = true}: ``[now - period, now)`` contains ``[s, e)``; with
  includeFuture, simply ``now - period <= s``.
* ``dropBeforeByPeriod`` {``period``}: ``e <= now - period``.
* ``loadByInterval`` {``interval``}: the interval overlaps ``[s, e)``; ``dropByInterval`` {``interval``}: it
  contains ``[s, e)``.
* ``broadcastForever`` / ``broadcastByPeriod`` / ``broadcastByInterval``: like the load rules (keep).

Applying rules only marks segments unused (reason ``dropped-by-rule``); their files stay in deep storage until a
kill. Evaluation is vectorised over the segments' start/end arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

import numpy as np
from pydantic import AfterValidator, Field

from druidflow.exceptions import SpecError
from druidflow.intervals import Interval, Period, format_instant, now_ms
from druidflow.specs.base import DruidModel
from druidflow.specs.validation import SpecModel, load_json, validate_as

#: Druid's ``druid.manager.rules.defaultRule``: the dataSource whose rules every dataSource falls back to.
DEFAULT_RULES_DATASOURCE = "_default"
#: The ``unused_reason`` of segments dropped by a rule.
DROPPED_BY_RULE = "dropped-by-rule"


class _Rule(SpecModel):
    type: str

    #: Whether a segment this rule applies to is dropped (marked unused) rather than kept.
    drops: ClassVar[bool] = False

    def applies(self, starts: np.ndarray, ends: np.ndarray, now: int) -> np.ndarray:
        """A boolean mask: does this rule apply to each segment ``[starts[i], ends[i])`` at time ``now``."""
        raise NotImplementedError


class _Load(_Rule):
    tiered_replicants: Optional[dict[str, int]] = None
    use_default_tier_for_null: Optional[bool] = None


def _period(v: str) -> str:
    try:
        Period.parse(v)
    except SpecError as exc:
        raise ValueError(exc.reason) from None
    return v


#: An ISO-8601 period such as ``P30D`` or ``P1M``, kept as written.
PeriodText = Annotated[str, AfterValidator(_period)]


def _ago(now: int, period: str) -> int:
    """``now`` minus the ISO ``period`` (calendar-aware, as Joda's ``new Interval(period, now)``)."""
    return Interval.parse(f"{period}/{format_instant(now)}").start


class _KeepForever(_Load):
    """Keep every segment."""

    def applies(self, starts: np.ndarray, ends: np.ndarray, now: int) -> np.ndarray:
        return np.ones(len(starts), dtype=bool)


class _KeepByPeriod(_Load):
    """Keep segments overlapping the last ``period`` (and, with ``includeFuture``, any later ones)."""

    period: PeriodText
    include_future: bool = True

    def applies(self, starts: np.ndarray, ends: np.ndarray, now: int) -> np.ndarray:
        begin = _ago(now, self.period)
        if self.include_future:
            return begin < ends
        return (begin < ends) & (starts < now)


class _KeepByInterval(_Load):
    """Keep segments overlapping ``interval``."""

    interval: Interval

    def applies(self, starts: np.ndarray, ends: np.ndarray, now: int) -> np.ndarray:
        return (starts < self.interval.end) & (self.interval.start < ends)


# Each concrete rule narrows ``type`` to its own Literal (the union's discriminator); a broadcast rule keeps what
# its load rule keeps, so both share the behaviour of the same base rather than one subclassing the other.


class LoadForever(_KeepForever):
    """Keep every segment."""

    type: Literal["loadForever"] = "loadForever"


class LoadByPeriod(_KeepByPeriod):
    """Keep segments overlapping the last ``period`` (and, with ``includeFuture``, any later ones)."""

    type: Literal["loadByPeriod"] = "loadByPeriod"


class LoadByInterval(_KeepByInterval):
    """Keep segments overlapping ``interval``."""

    type: Literal["loadByInterval"] = "loadByInterval"


class BroadcastForever(_KeepForever):
    type: Literal["broadcastForever"] = "broadcastForever"


class BroadcastByPeriod(_KeepByPeriod):
    type: Literal["broadcastByPeriod"] = "broadcastByPeriod"


class BroadcastByInterval(_KeepByInterval):
    type: Literal["broadcastByInterval"] = "broadcastByInterval"


class DropForever(_Rule):
    """Drop every segment."""

    type: Literal["dropForever"] = "dropForever"
    drops: ClassVar[bool] = True

    def applies(self, starts: np.ndarray, ends: np.ndarray, now: int) -> np.ndarray:
        return np.ones(len(starts), dtype=bool)


class DropByPeriod(_Rule):
    """Drop segments inside the last ``period`` (with ``includeFuture``, every segment starting in it or later)."""

    type: Literal["dropByPeriod"] = "dropByPeriod"
    period: PeriodText
    include_future: bool = True
    drops: ClassVar[bool] = True

    def applies(self, starts: np.ndarray, ends: np.ndarray, now: int) -> np.ndarray:
        begin = _ago(now, self.period)
        if self.include_future:
            return begin <= starts
        return (begin <= starts) & (ends <= now)


class DropBeforeByPeriod(_Rule):
    """Drop segments that ended at least ``period`` ago."""

    type: Literal["dropBeforeByPeriod"] = "dropBeforeByPeriod"
    period: PeriodText
    drops: ClassVar[bool] = True

    def applies(self, starts: np.ndarray, ends: np.ndarray, now: int) -> np.ndarray:
        return ends <= _ago(now, self.period)


class DropByInterval(_Rule):
    """Drop segments lying entirely inside ``interval``."""

    type: Literal["dropByInterval"] = "dropByInterval"
    interval: Interval
    drops: ClassVar[bool] = True

    def applies(self, starts: np.ndarray, ends: np.ndarray, now: int) -> np.ndarray:
        return (self.interval.start <= starts) & (ends <= self.interval.end)


Rule = Annotated[
    Union[
        LoadForever,
        LoadByPeriod,
        LoadByInterval,
        BroadcastForever,
        BroadcastByPeriod,
        BroadcastByInterval,
        DropForever,
        DropByPeriod,
        DropBeforeByPeriod,
        DropByInterval,
    ],
    Field(discriminator="type"),
]
RULE_TYPES = (
    "loadForever", "loadByPeriod", "loadByInterval", "broadcastForever", "broadcastByPeriod", "broadcastByInterval",
    "dropForever", "dropByPeriod", "dropBeforeByPeriod", "dropByInterval",
)


def parse_rules(data: Any, path: str = "rules") -> list[Any]:
    """Validate a rule list (a list of dicts, or JSON text); SpecError names ``rules[i].field`` and the value."""
    data = load_json(data, path)
    if not isinstance(data, list):
        raise SpecError(path, data, "rules are a JSON list, evaluated in order")
    out = []
    for i, item in enumerate(data):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise SpecError(where, item, "a rule is a JSON object with a 'type'")
        if item.get("type") not in RULE_TYPES:
            raise SpecError(f"{where}.type", item.get("type"), f"unknown rule type; one of {', '.join(RULE_TYPES)}")
        out.append(validate_as(Rule, item, where))
    return out


def first_match(rules: Sequence[Any], starts: np.ndarray, ends: np.ndarray, now: int) -> np.ndarray:
    """For each segment, the index of the first rule that applies to it, or -1 when none does."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    matched = np.full(len(starts), -1, dtype=np.int64)
    for i, rule in enumerate(rules):
        open_ = matched < 0
        if not open_.any():
            break
        matched[open_ & rule.applies(starts, ends, now)] = i
    return matched


def drop_mask(rules: Sequence[Any], starts: np.ndarray, ends: np.ndarray, now: int) -> np.ndarray:
    """True for each segment whose first matching rule is a drop rule."""
    matched = first_match(rules, starts, ends, now)
    drops = np.array([r.drops for r in rules] + [False], dtype=bool)  # index -1 -> the trailing False
    return drops[matched]


# ---------------------------------------------------------------------------------------------------- applying


class RuleOutcome(DruidModel):
    """How many used segments one rule decided, and whether it dropped them."""

    rule: dict[str, Any]
    segments: int
    drops: bool


class RetentionResult(DruidModel):
    """What applying the rules of one dataSource did (or, in a dry run, would do)."""

    data_source: str
    now: str
    dry_run: bool = False
    used_segments: int = 0
    rules: list[RuleOutcome] = Field(default_factory=list)
    unmatched: int = 0
    marked_unused: int = 0
    #: Up to 1000 ids of the segments dropped (or to drop).
    dropped: list[str] = Field(default_factory=list)


def effective_rules(store: Any, data_source: str, *, conn: Any = None) -> list[Any]:
    """The dataSource's own rules followed by the ``_default`` ones, validated."""
    own = store.get_rules(data_source, conn=conn)
    default = store.get_rules(DEFAULT_RULES_DATASOURCE, conn=conn) if data_source != DEFAULT_RULES_DATASOURCE else []
    return parse_rules(own, f"rules[{data_source}]") + parse_rules(default, f"rules[{DEFAULT_RULES_DATASOURCE}]")


def set_rules(store: Any, data_source: str, rules: Any) -> list[Any]:
    """Validate ``rules`` and store them for ``data_source``; returns the parsed rules."""
    parsed = parse_rules(rules)
    store.set_rules(data_source, [r.model_dump() for r in parsed])
    return parsed


def apply_rules(
    store: Any,
    data_source: str,
    *,
    dry_run: bool = False,
    clock: Callable[[], int] = now_ms,
) -> RetentionResult:
    """Evaluate the dataSource's rules on each used segment at ``clock()`` and mark those a drop rule matches
    unused (reason ``dropped-by-rule``); with ``dry_run``, only report them. Files are never touched."""
    from druidflow.metadata import kill_queries as q

    now = clock()
    rules = effective_rules(store, data_source)
    with store.engine.connect() as conn:
        ids, starts, ends = q.used_row_arrays(conn, data_source)
    matched = first_match(rules, starts, ends, now)
    counts = np.bincount(matched + 1, minlength=len(rules) + 1) if len(ids) else np.zeros(len(rules) + 1, dtype=np.int64)
    drops = np.array([r.drops for r in rules] + [False], dtype=bool)[matched] if len(ids) else np.zeros(0, dtype=bool)
    to_drop = [ids[i] for i in np.flatnonzero(drops)]
    marked = len(to_drop)
    if to_drop and not dry_run:
        marked = store.mark_unused(data_source, segment_ids=to_drop, reason=DROPPED_BY_RULE)
    return RetentionResult(
        data_source=data_source,
        now=format_instant(now),
        dry_run=dry_run,
        used_segments=len(ids),
        rules=[RuleOutcome(rule=r.model_dump(), segments=int(counts[i + 1]), drops=r.drops) for i, r in enumerate(rules)],
        unmatched=int(counts[0]),
        marked_unused=marked,
        dropped=to_drop[:1000],
    )


def apply_all_rules(
    store: Any,
    data_sources: Optional[Sequence[str]] = None,
    *,
    dry_run: bool = False,
    clock: Callable[[], int] = now_ms,
) -> list[RetentionResult]:
    """:func:`apply_rules` on ``data_sources`` (default: every dataSource with used segments that has rules of its
    own or falls under ``_default`` rules)."""
    if data_sources is None:
        with_rules = {ds for ds, rules in store.all_rules().items() if rules}
        used = store.datasources(used_only=True)
        data_sources = used if DEFAULT_RULES_DATASOURCE in with_rules else [ds for ds in used if ds in with_rules]
    return [apply_rules(store, ds, dry_run=dry_run, clock=clock) for ds in data_sources if ds != DEFAULT_RULES_DATASOURCE]
