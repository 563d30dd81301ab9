"""Metadata-store and timeline figures: publish 100k segments in one call, read them back, build the timeline of
100k and 1M segments in memory, and the visible timeline of a dataSource of 1M stored segments read from the
database (narrow columns aggregated per partition set: no payload parsed).

Issue 20's targets are printed next to their figures with ``<figure>_ratio_to_target`` (<= 1 meets it): publish of
100k segments < 5 s (on PostgreSQL), the visible timeline of 1M stored segments < 2 s and < 500 MiB. Timings on a
loaded machine are noisy; compare ratios from one run, and re-measure on an idle machine.

``run(url) -> dict`` is what ``bench/run.py`` calls, once on a SQLite file and once on PostgreSQL (where it works
in a schema of its own, dropped afterwards). ``python -m bench.metadata [URL]`` prints the figures; without a
URL it uses a temporary SQLite file.
"""

from __future__ import annotations

import sys
import time
import uuid
from functools import cache, lru_cache, partial

from bench.cpu import load_average, measured, tagged
from bench.metadata_db import isolated, main_over_url
from druidflow.intervals import MS_HOUR, Interval, parse_instant
from druidflow.metadata.store import MetadataStore
from druidflow.segments.descriptor import DataSegment
from druidflow.segments.ids import storage_dir
from druidflow.segments.shardspec import NumberedShardSpec
from druidflow.segments.timeline import Timeline

PUBLISH_COUNT = 100_000
STORED_COUNT = 1_000_000
PUBLISH_TARGET_S = 5.0
VISIBLE_TARGET_S = 2.0
VISIBLE_TARGET_MIB = 500.0
TIMELINE_COUNTS = (100_000, 1_000_000)
PARTITIONS = 5
V1, V2 = "2024-02-01T00:00:00.000Z", "2024-03-01T00:00:00.000Z"
START = parse_instant("2020-01-01")


def make_segments(count: int, data_source: str = "bench") -> list[DataSegment]:
    """``count`` segments shaped like a busy dataSource: hourly chunks of 5 partitions in version V1, every
    fourth chunk overwritten by a complete V2 set, every 20th of those left incomplete (V1 stays visible)."""
    specs = [NumberedShardSpec(partition_num=p, partitions=PARTITIONS) for p in range(PARTITIONS)]
    out: list[DataSegment] = []
    hour = 0
    while len(out) < count:
        iv = Interval(START + hour * MS_HOUR, START + (hour + 1) * MS_HOUR)
        sets = [V1, V2] if hour % 4 == 0 else [V1]
        for version in sets:
            present = PARTITIONS - 1 if (version == V2 and hour % 80 == 0) else PARTITIONS
            for p in range(present):
                out.append(
                    DataSegment(
                        data_source=data_source,
                        interval=iv,
                        version=version,
                        shard_spec=specs[p],
                        load_spec={"type": "local", "path": f"/deep/{storage_dir(data_source, iv, version, p)}/index.parquet"},
                        dimensions="page,user,country",
                        metrics="count,added,deleted",
                        size=1_000_000 + p,
                        num_rows=10_000,
                    )
                )
        hour += 1
    return out[:count]


def _timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, round(time.perf_counter() - started, 3)


@cache
def timeline_figures() -> tuple[tuple[str, float], ...]:
    """In-memory timeline figures; the same on every backend, so computed once per process."""
    figures: list[tuple[str, float]] = []
    for count in TIMELINE_COUNTS:
        label = f"{count // 1000}k" if count < 1_000_000 else f"{count // 1_000_000}M"
        segments = make_segments(count)
        timeline, build_s = _timed(partial(Timeline, segments))
        entries, visible_s = _timed(timeline.visible)
        visible, segments_s = _timed(timeline.visible_segments)
        shadowed, overshadowed_s = _timed(timeline.overshadowed)
        figures += [
            (f"timeline_{label}_build_s", build_s),
            (f"timeline_{label}_visible_s", visible_s),
            (f"timeline_{label}_visible_segments_s", segments_s),
            (f"timeline_{label}_overshadowed_s", overshadowed_s),
            (f"timeline_{label}_entries", len(entries)),
            (f"timeline_{label}_overshadowed", len(shadowed)),
        ]
        del segments, timeline, entries, visible, shadowed
    return tuple(figures)


def _bulk_load(store: MetadataStore, count: int, data_source: str) -> None:
    """``count`` rows shaped like :func:`make_segments`' written straight into the table (building 1M pydantic
    segments and publishing them would take the bench minutes); payloads are the same JSON a publish writes."""
    import sqlalchemy as sa

    from druidflow.metadata.segment_rows import payload_bytes, segment_row
    from druidflow.metadata.tables import segments as S

    # Hour 4: complete V1 and V2 sets of 5 partitions each (hour 0's V2 lacks one).
    template = [s for s in make_segments(40, data_source) if s.interval.start == START + 4 * MS_HOUR]
    now = "2024-04-01T00:00:00.000Z"
    rows_by_kind = {(s.version, s.partition_num): segment_row(s, payload_bytes(s), used=True, now=now) for s in template}
    payloads = {k: r["payload"].decode() for k, r in rows_by_kind.items()}
    hour, written, batch = 0, 0, []
    with store.engine.begin() as conn:
        while written < count:
            start_ms, end_ms = START + hour * MS_HOUR, START + (hour + 1) * MS_HOUR
            start, end = _iso(start_ms), _iso(end_ms)
            base_start, base_end = rows_by_kind[(V1, 0)]["start"], rows_by_kind[(V1, 0)]["end"]
            for version in ([V1, V2] if hour % 4 == 0 else [V1]):
                present = PARTITIONS - 1 if (version == V2 and hour % 80 == 0) else PARTITIONS
                for p in range(min(present, count - written)):
                    row = dict(rows_by_kind[(version, p)])
                    tokens = ((f"{base_start}/{base_end}", f"{start}/{end}"), (f"{base_start}_{base_end}", f"{start}_{end}"))
                    row.update(
                        id=_moved(row["id"], tokens), start=start, end=end, start_ms=start_ms, end_ms=end_ms,
                        load_path=_moved(row["load_path"], tokens), payload=_moved(payloads[(version, p)], tokens).encode(),
                    )
                    batch.append(row)
                    written += 1
                if len(batch) >= 20_000:
                    conn.execute(sa.insert(S), batch)
                    batch = []
            hour += 1
        if batch:
            conn.execute(sa.insert(S), batch)


def _moved(text: str, tokens: tuple[tuple[str, str], ...]) -> str:
    """``text`` with each (old, new) token replaced whole: one hour's end is the next one's start."""
    for old, new in tokens:
        text = text.replace(old, new)
    return text


@lru_cache(maxsize=65536)
def _iso(ms: int) -> str:
    from druidflow.intervals import format_instant

    return format_instant(ms)


def _vacuum(store: MetadataStore) -> None:
    """On PostgreSQL, what autovacuum does within a minute of a bulk insert in production (its insert threshold
    is 20% of the table): statistics, and the visibility map that lets the partition-set aggregate read the
    covering index alone. Without them, straight after the load, the planner guesses a few hundred rows, hashes
    with spills to disk and reads the whole heap (measured: 4.0 s against 1.3 s for the same query)."""
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE druidflow_segments")


def stored_visible_figures(store: MetadataStore, url: str = "", tag: str = "") -> dict:
    """The visible timeline (entries with segment counts, rows, bytes) of 1M stored segments, read from the
    database: its time and CPU, and its peak traced memory in a second run (tracing slows it down)."""
    import tracemalloc

    _bulk_load(store, STORED_COUNT, "stored")
    _vacuum(store)
    with measured(url, tag) as cpu:
        summary = store.visible_summary("stored")
    visible_s = round(cpu.wall_s, 3)
    tracemalloc.start()
    store.visible_summary("stored")
    peak_mib = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {
        "visible_timeline_1M_stored_s": visible_s,
        "visible_timeline_1M_stored_target_s": VISIBLE_TARGET_S,
        "visible_timeline_1M_stored_ratio_to_target": round(visible_s / VISIBLE_TARGET_S, 2),
        **cpu.figures("visible_timeline_1M_stored"),
        "visible_timeline_1M_stored_cpu_ratio_to_target": round(cpu.total_s / VISIBLE_TARGET_S, 2),
        "visible_timeline_1M_stored_peak_mib": round(peak_mib, 1),
        "visible_timeline_1M_stored_target_mib": VISIBLE_TARGET_MIB,
        "visible_timeline_1M_stored_mib_ratio_to_target": round(peak_mib / VISIBLE_TARGET_MIB, 2),
        "visible_timeline_1M_stored_entries": len(summary),
    }


def run(url: str) -> dict:
    """Publish 100k segments in one call (then again: an idempotent no-op), read them back, mark the whole
    dataSource unused and used again (only the non-overshadowed come back); plus the in-memory timeline figures."""
    segments = make_segments(PUBLISH_COUNT)
    tag = f"druidflow_bench_{uuid.uuid4().hex[:8]}"
    load = load_average()
    with isolated(url) as isolated_url:
        db_url = tagged(isolated_url, tag)
        store = MetadataStore(db_url)
        try:
            store.migrate()
            store.used_span("bench")  # connect before the clock
            with measured(db_url, tag) as publish_cpu:
                result = store.publish_segments(segments)
            publish_s = round(publish_cpu.wall_s, 3)
            again, republish_s = _timed(lambda: store.publish_segments(segments))
            assert len(result.inserted) == PUBLISH_COUNT and len(again.already_present) == PUBLISH_COUNT
            used, read_s = _timed(lambda: store.used_segments("bench"))
            visible, visible_s = _timed(lambda: store.visible_segments("bench"))
            dropped, drop_s = _timed(lambda: store.mark_unused("bench", reason="dropped-by-user"))
            revived, revive_s = _timed(lambda: store.mark_used("bench"))
            stored = stored_visible_figures(store, db_url, tag)
        finally:
            store.engine.dispose()
    figures: dict = {
        "load_average": load,
        "publish_100k_s": publish_s,
        "publish_100k_target_s": PUBLISH_TARGET_S,
        "publish_100k_ratio_to_target": round(publish_s / PUBLISH_TARGET_S, 2),
        **publish_cpu.figures("publish_100k"),
        "publish_100k_cpu_ratio_to_target": round(publish_cpu.total_s / PUBLISH_TARGET_S, 2),
        "publish_segments_per_s": round(PUBLISH_COUNT / publish_s) if publish_s else None,
        "republish_100k_noop_s": republish_s,
        "read_used_100k_s": read_s,
        "visible_segments_100k_s": visible_s,
        "mark_unused_all_s": drop_s,
        "mark_used_all_s": revive_s,
        "used_segments": len(used),
        "visible_segments": len(visible),
        "marked_unused": dropped,
        "marked_used_again": revived,
        **stored,
    }
    figures.update(timeline_figures())
    return figures


def main(argv: list[str]) -> int:
    return main_over_url(run, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
