"""Retention rules: each rule's exact reach (Druid's appliesTo), first match wins, the ``_default`` rules, and
applying them to a real metadata store (marks unused with a reason, never touches files)."""

from __future__ import annotations

import numpy as np
import pytest

from druidflow import retention
from druidflow.exceptions import SpecError
from druidflow.intervals import MS_DAY, Interval, parse_instant
from druidflow.metadata.store import MetadataStore
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.shardspec import NumberedShardSpec

NOW = parse_instant("2024-06-15T12:00:00Z")


def iv(text: str) -> Interval:
    return Interval.parse(text)


def applies(rule: dict, *intervals: str, now: int = NOW) -> list[bool]:
    (parsed,) = retention.parse_rules([rule])
    starts = np.array([iv(t).start for t in intervals], dtype=np.int64)
    ends = np.array([iv(t).end for t in intervals], dtype=np.int64)
    return parsed.applies(starts, ends, now).tolist()


# ---------------------------------------------------------------------------------------------------- each rule


def test_forever_rules_apply_to_everything():
    assert applies({"type": "loadForever"}, "1000/3000", "2024-06-01/2024-06-02") == [True, True]
    assert applies({"type": "dropForever"}, "1000/3000") == [True]


def test_drop_before_by_period_drops_segments_that_ended_at_least_the_period_ago():
    # now - P1M = 2024-05-15T12:00Z
    rule = {"type": "dropBeforeByPeriod", "period": "P1M"}
    assert applies(rule, "2024-05-14/2024-05-15", "2024-05-15/2024-05-15T12:00", "2024-05-15/2024-05-16") == [
        True, True, False,
    ]


def test_drop_by_period_drops_segments_inside_the_recent_period():
    # [now - P7D, now) = [2024-06-08T12:00Z, 2024-06-15T12:00Z)
    inside, straddles = "2024-06-09/2024-06-10", "2024-06-08/2024-06-09"
    before, future = "2024-06-01/2024-06-02", "2024-06-20/2024-06-21"
    with_future = {"type": "dropByPeriod", "period": "P7D"}  # includeFuture defaults to true
    assert applies(with_future, inside, straddles, before, future) == [True, False, False, True]
    no_future = {"type": "dropByPeriod", "period": "P7D", "includeFuture": False}
    assert applies(no_future, inside, straddles, before, future) == [True, False, False, False]


def test_load_by_period_keeps_segments_overlapping_the_recent_period():
    rule = {"type": "loadByPeriod", "period": "P7D"}
    straddles, before, future = "2024-06-08/2024-06-09", "2024-06-01/2024-06-02", "2024-06-20/2024-06-21"
    assert applies(rule, straddles, before, future) == [True, False, True]
    assert applies({**rule, "includeFuture": False}, straddles, before, future) == [True, False, False]


def test_interval_rules_drop_contained_and_load_overlapping_segments():
    drop = {"type": "dropByInterval", "interval": "2024-01-01/2024-02-01"}
    assert applies(drop, "2024-01-05/2024-01-06", "2024-01-31/2024-02-02") == [True, False]
    load = {"type": "loadByInterval", "interval": "2024-01-01/2024-02-01"}
    assert applies(load, "2024-01-31/2024-02-02", "2024-02-01/2024-02-02") == [True, False]
    broadcast = {"type": "broadcastByInterval", "interval": "2024-01-01/2024-02-01"}
    assert applies(broadcast, "2024-01-31/2024-02-02") == [True]


def test_calendar_periods_follow_month_lengths():
    # now - P1M from 2024-03-31 is 2024-02-29 (leap year, clamped to the month's end)
    now = parse_instant("2024-03-31T00:00:00Z")
    rule = {"type": "dropBeforeByPeriod", "period": "P1M"}
    assert applies(rule, "2024-02-28/2024-02-29", "2024-02-29/2024-03-01", now=now) == [True, False]


def test_first_matching_rule_decides():
    rules = retention.parse_rules(
        [
            {"type": "loadByPeriod", "period": "P30D"},
            {"type": "dropByInterval", "interval": "2024-06-01/2024-07-01"},
            {"type": "loadByInterval", "interval": "2024-01-01/2024-02-01"},
            {"type": "dropForever"},
        ]
    )
    segs = ["2024-06-10/2024-06-11", "2023-12-01/2023-12-02", "2024-01-10/2024-01-11"]
    starts = np.array([iv(s).start for s in segs])
    ends = np.array([iv(s).end for s in segs])
    assert retention.first_match(rules, starts, ends, NOW).tolist() == [0, 3, 2]
    assert retention.drop_mask(rules, starts, ends, NOW).tolist() == [False, True, False]
    # no rule applies: kept
    only_drop_interval = retention.parse_rules([{"type": "dropByInterval", "interval": "2020-01-01/2020-02-01"}])
    assert retention.first_match(only_drop_interval, starts, ends, NOW).tolist() == [-1, -1, -1]
    assert not retention.drop_mask(only_drop_interval, starts, ends, NOW).any()


@pytest.mark.parametrize(
    ("rules", "path", "message"),
    [
        ({"type": "dropForever"}, "rules", "JSON list"),
        ([{"type": "dropSometimes"}], "rules[0].type", "unknown rule type"),
        ([{"type": "loadForever"}, {"type": "dropByPeriod", "period": "30 days"}], "rules[1].period", "ISO-8601 period"),
        ([{"type": "dropByInterval"}], "rules[0].interval", ""),
        ([{"type": "dropForever", "period": "P1D"}], "rules[0].period", "unknown field"),
    ],
)
def test_bad_rules_name_the_field(rules, path, message):
    with pytest.raises(SpecError) as caught:
        retention.parse_rules(rules)
    assert caught.value.path == path and message in str(caught.value)


def test_druid_rule_json_with_tiers_is_accepted_and_round_trips():
    rule = {"type": "loadByPeriod", "period": "P1M", "includeFuture": True, "tieredReplicants": {"_default_tier": 2}}
    (parsed,) = retention.parse_rules([rule])
    assert parsed.model_dump() == rule


# ---------------------------------------------------------------------------------------------------- applying


def segment(interval: str, ds: str = "wiki") -> DataSegment:
    i = iv(interval)
    return DataSegment(
        data_source=ds,
        interval=i,
        version="v1",
        shard_spec=NumberedShardSpec(partition_num=0, partitions=1),
        load_spec={"type": "local", "path": f"/deep/{ds}/{i.start}/index.parquet"},
        size=10,
        num_rows=1,
    )


@pytest.fixture
def store(db_url) -> MetadataStore:
    s = MetadataStore(db_url)
    s.migrate()
    return s


def test_applying_rules_marks_dropped_segments_unused_with_a_reason(store):
    days = [NOW - k * MS_DAY for k in (1, 10, 40, 100)]
    segs = [segment(f"{Interval(d - d % MS_DAY, d - d % MS_DAY + MS_DAY)}") for d in days]
    other = segment("2024-01-01/2024-01-02", ds="other")
    store.publish_segments(segs)
    store.publish_segments([other])
    retention.set_rules(store, "wiki", [{"type": "loadByPeriod", "period": "P30D"}, {"type": "dropForever"}])

    plan = retention.apply_rules(store, "wiki", dry_run=True, clock=lambda: NOW)
    assert plan.marked_unused == 2 and sorted(plan.dropped) == sorted(s.id for s in segs[2:])
    assert len(store.used_segments("wiki")) == 4  # a dry run changes nothing

    (result,) = retention.apply_all_rules(store, clock=lambda: NOW)  # "other" has no rules: untouched
    assert result.data_source == "wiki" and result.marked_unused == 2
    assert [o.segments for o in result.rules] == [2, 2] and result.unmatched == 0
    records = {r.id: r for r in store.segments("wiki", include_unused=True)}
    assert {sid for sid, r in records.items() if not r.used} == {s.id for s in segs[2:]}
    assert {r.unused_reason for r in records.values() if not r.used} == {"dropped-by-rule"}
    assert store.used_segments("other") == [other]
    # applying again finds nothing more to drop
    assert retention.apply_rules(store, "wiki", clock=lambda: NOW).marked_unused == 0


def test_default_rules_follow_each_datasource_s_own(store):
    store.publish_segments([segment("2024-01-01/2024-01-02"), segment("2024-06-14/2024-06-15")])
    store.publish_segments([segment("2024-01-01/2024-01-02", ds="other")])
    retention.set_rules(store, "_default", [{"type": "dropBeforeByPeriod", "period": "P90D"}])
    retention.set_rules(store, "wiki", [{"type": "loadForever"}])
    results = {r.data_source: r for r in retention.apply_all_rules(store, clock=lambda: NOW)}
    assert results["wiki"].marked_unused == 0  # its own loadForever matches first
    assert results["other"].marked_unused == 1  # falls back to _default
    assert [r["type"] for r in (o.rule for o in results["wiki"].rules)] == ["loadForever", "dropBeforeByPeriod"]


def test_stored_rules_are_validated(store):
    with pytest.raises(SpecError, match=r"rules\[0\]\.period"):
        retention.set_rules(store, "wiki", [{"type": "dropBeforeByPeriod", "period": "ninety days"}])
    assert store.get_rules("wiki") == []


def test_rules_and_apply_rules_commands(store, db_url, tmp_path):
    import contextlib
    import io
    import json

    from druidflow.cli import main

    store.publish_segments([segment("2020-01-01/2020-01-02"), segment("2099-01-01/2099-01-02")])

    def cli(*args: str) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["--metadata-url", db_url, "--deep-storage", str(tmp_path / "deep"), *args]) == 0
        return out.getvalue()

    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"type": "dropBeforeByPeriod", "period": "P1Y"}]))
    assert json.loads(cli("rules", "wiki", "--set", f"@{rules}")) == [{"type": "dropBeforeByPeriod", "period": "P1Y"}]
    assert "would mark 1 of 2" in cli("apply-rules", "--dry-run") and len(store.used_segments("wiki")) == 2
    assert "marked 1 of 2" in cli("apply-rules", "wiki")
    assert [s.interval for s in store.used_segments("wiki")] == [iv("2099-01-01/2099-01-02")]
