"""Hashed and range partitioning, perfect rollup, and the determine-partitions pass of the index task."""

from __future__ import annotations

import json
import math
import random
import re

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from druidflow.exceptions import SpecError
from druidflow.ingest.hashing import buckets_of, group_keys, java_double_strings, row_hashes
from druidflow.ingest.murmur import murmur3_32
from druidflow.intervals import Interval
from druidflow.tasks import index
from druidflow.tasks.runtime import Runtime
from tests.tasks.test_index import rows_of

# ------------------------------------------------------------------ an independent implementation of the recipe


def murmur3_32_reference(data: bytes, seed: int = 0) -> int:
    """Plain-Python murmur3_32 (x86), written from the algorithm, not from the library the engine uses."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF

    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & mask

    h = seed
    n = len(data) // 4
    for i in range(n):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = rotl((k * c1) & mask, 15) * c2 & mask
        h = (rotl(h ^ k, 13) * 5 + 0xE6546B64) & mask
    tail = data[4 * n :]
    k = 0
    for i, b in enumerate(tail):
        k |= b << (8 * i)
    if tail:
        k = rotl((k * c1) & mask, 15) * c2 & mask
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def java_abs_rem(h: int, n: int) -> int:
    rem = int(math.fmod(h, n))  # Java's % keeps the dividend's sign
    return abs(rem)


def java_double(x: float) -> str:
    """Java's ``Double.toString``, written from its specification: the fewest digits that read back as ``x``;
    plain decimal in [10^-3, 10^7), else ``d.dddE±n``; always a digit after the point."""
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1, x) < 0 else "0.0"
    plain = 1e-3 <= abs(x) < 1e7
    for precision in range(1 if plain else 2, 18):  # the scientific form shows at least two digits
        text = f"{x:.{precision - 1}e}"
        if float(text) == x:
            break
    mantissa, exponent = text.split("e")
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    power = int(exponent)
    sign = "-" if x < 0 else ""
    if plain:
        if power >= 0:
            whole, frac = digits[: power + 1].ljust(power + 1, "0"), digits[power + 1 :]
        else:
            whole, frac = "0", "0" * (-power - 1) + digits
        return f"{sign}{whole}.{frac or '0'}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{power}"


def java_string(v) -> str:
    """``String.valueOf`` of a raw (JSON-decoded) value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return java_double(v)
    return str(v)


def jackson(obj) -> bytes:
    """Jackson's compact JSON: like json.dumps, but control characters use upper-case hex (``\\u001F``)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), text).encode()


def druid_key(row: dict, dims: list[str], partition_dims: list[str] = (), time_ms: int = 0) -> bytes:
    """``HashPartitioner.extractKeys`` + ``serializeGroupKey`` over a raw row (``Rows.objectToStrings`` values)."""

    def get_dimension(d):
        v = row.get(d)
        if v is None:
            return []
        if isinstance(v, list):
            return [None if x is None else java_string(x) for x in v]
        return [java_string(v)]

    if partition_dims:
        key = [get_dimension(d) for d in partition_dims]
    else:
        groups = {}
        for d in sorted(dims):
            values = get_dimension(d)
            if values:  # TreeSet(naturalNullsFirst): distinct, sorted, null first
                groups[d] = sorted(set(values), key=lambda x: (x is not None, x or ""))
        key = [time_ms, groups]
    return jackson(key)


def druid_bucket(row: dict, dims: list[str], n: int, partition_dims: list[str] = (), time_ms: int = 0) -> int:
    return java_abs_rem(murmur3_32_reference(druid_key(row, dims, partition_dims, time_ms)), n)


def test_murmur_reference_matches_known_vectors():
    # Published murmur3_32 test vectors (seed 0).
    assert murmur3_32_reference(b"") == 0
    assert murmur3_32_reference(b"hello") == 0x248BFA47
    assert murmur3_32_reference(b"The quick brown fox jumps over the lazy dog") == 0x2E4FF723


def test_vectorised_murmur_matches_the_reference_on_every_length_and_alignment():
    rng = random.Random(5)
    words = ["", "a", "ab", "abc", "abcd", "abcde", "é€😀", None] + [
        "".join(rng.choice("ab\"é漢\x01") for _ in range(rng.randint(0, 70))) for _ in range(3000)
    ]
    arr = pa.array(words, pa.string())
    expected = [murmur3_32_reference((w or "").encode()) for w in words]
    assert murmur3_32(arr).tolist() == expected
    assert murmur3_32(arr.slice(3, 500)).tolist() == expected[3:503]  # an offset into the buffers


def test_java_double_strings_follow_double_to_string():
    values = [2.0, 0.001, 1e7, 9999999.0, 1.0e-4, 123456789.0, 0.30000000000000004, -0.0, 1.5e300, 5e-324, -2.5, 100.0]
    expected = ["2.0", "0.001", "1.0E7", "9999999.0", "1.0E-4", "1.23456789E8", "0.30000000000000004", "-0.0",
                "1.5E300", "4.9E-324", "-2.5", "100.0"]
    assert [java_double(v) for v in values] == expected  # the reference, checked by hand
    assert java_double_strings(pa.array(values)).to_pylist() == expected


# Hand-written keys, each checked against Druid's code path by reading it (Rows.toGroupKey, objectToStrings).
LITERAL_KEYS = [
    # JSON "" is a value ([""]); null is no value (left out of the map).
    ({"a": "", "b": None}, ["a", "b"], [], '[0,{"a":[""]}]'),
    # A JSON integer in a double dimension is hashed as written ("2"), a double as Double.toString ("2.0").
    ({"d": 2, "s": 2.0}, ["d", "s"], [], '[0,{"d":["2"],"s":["2.0"]}]'),
    ({"d": 1e7}, ["d"], [], '[0,{"d":["1.0E7"]}]'),
    # Arrays: the group key takes the sorted distinct set (null first), partitionDimensions the input order.
    ({"m": ["b", "a", "b", None]}, ["m"], [], '[0,{"m":[null,"a","b"]}]'),
    ({"m": ["b", "a", "b", None]}, ["m"], ["m"], '[["b","a","b",null]]'),
    ({"m": [], "x": "q\"\\\n\x1f"}, ["m", "x"], [], '[0,{"x":["q\\"\\\\\\n\\u001F"]}]'),
    ({"a": "x"}, ["a"], ["a", "missing"], '[["x"],[]]'),
    ({"t": True}, ["t"], [], '[0,{"t":["true"]}]'),
]


@pytest.mark.parametrize("row,dims,partition_dims,literal", LITERAL_KEYS)
def test_group_keys_equal_hand_checked_literals(row, dims, partition_dims, literal):
    assert druid_key(row, dims, partition_dims).decode() == literal
    table = pa.Table.from_pylist([row])
    (got,) = group_keys(table, pa.array([0], pa.int64()), dims, partition_dims).to_pylist()
    assert got == literal


@pytest.mark.parametrize("partition_dims", [[], ["b"], ["a", "b"], ["m", "a"]])
def test_shard_assignment_matches_an_independent_implementation(partition_dims):
    rng = random.Random(7)
    values = ["x", "y", "zé", 'q"uote', "back\\slash", "tab\t", "漢字", "", "ctl\x02"]
    rows = []
    for _ in range(400):
        m = rng.choice([None, [], [rng.choice(values) for _ in range(rng.randint(1, 4))], [None, "x"]])
        rows.append({"a": rng.choice(values + [None]), "b": rng.choice(values + [None]), "m": m})
    times = [rng.choice([0, 3_600_000, 1_704_067_200_000]) for _ in rows]
    table = pa.Table.from_pylist(rows)
    hashes = row_hashes(table, pa.array(times, pa.int64()), ["a", "b", "m"], partition_dims)
    for n in (1, 2, 3, 7):
        expected = [druid_bucket(r, ["a", "b", "m"], n, partition_dims, t) for r, t in zip(rows, times)]
        assert buckets_of(hashes, n).tolist() == expected


def test_numbers_hash_as_their_raw_text():
    # JSON numbers: integers and doubles in one column keep their kinds as pyarrow reads them per column.
    rows = [{"i": 3, "f": 2.5}, {"i": -7, "f": 1e-5}, {"i": None, "f": 2.0}]
    table = pa.Table.from_pylist(rows)
    keys = group_keys(table, pa.array([0, 0, 0], pa.int64()), ["i", "f"]).to_pylist()
    assert keys == [druid_key(r, ["i", "f"]).decode() for r in rows]
    assert keys[1] == '[0,{"f":["1.0E-5"],"i":["-7"]}]'


# ------------------------------------------------------------------ the index task with partitioning


@pytest.fixture
def rt(db_url, tmp_path) -> Runtime:
    return Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")


def dup_heavy_rows(n_rows=6000, seed=3):
    rng = random.Random(seed)
    out = []
    for _ in range(n_rows):
        day = rng.randint(1, 2)
        out.append(
            {
                "ts": f"2024-01-0{day}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
                "a": f"a{rng.randint(0, 30)}",
                "b": f"b{rng.randint(0, 5)}",
                "v": rng.randint(0, 9),
            }
        )
    return out


def spec_for(rows, partitions: dict, *, intervals=("2024-01-01/2024-01-03",), force=True, **io) -> dict:
    gran = {"segmentGranularity": "DAY", "queryGranularity": "HOUR", "rollup": True}
    if intervals is not None:
        gran["intervals"] = list(intervals)
    return {
        "type": "index",
        "spec": {
            "dataSchema": {
                "dataSource": "p",
                "timestampSpec": {"column": "ts", "format": "iso"},
                "dimensionsSpec": {"dimensions": ["a", "b"]},
                "metricsSpec": [{"type": "count", "name": "count"}, {"type": "longSum", "name": "v", "fieldName": "v"}],
                "granularitySpec": gran,
            },
            "ioConfig": {
                "type": "index",
                "inputSource": {"type": "inline", "data": "\n".join(json.dumps(r) for r in rows)},
                "inputFormat": {"type": "json"},
                **io,
            },
            "tuningConfig": {"type": "index", "forceGuaranteedRollup": force, "partitionsSpec": partitions},
        },
    }


def segment_rows(rt, segment) -> list[dict]:
    with rt.storage.open_local(segment.load_spec) as path:
        table = pq.read_table(path)
    table = table.set_column(0, "__time", table.column("__time").cast(pa.int64()))
    return table.to_pylist()


def by_chunk(segments):
    out = {}
    for s in segments:
        out.setdefault(s.interval, []).append(s)
    return out


def test_hashed_with_num_shards_puts_each_row_where_druid_would_and_rolls_up_perfectly(rt):
    rows = dup_heavy_rows()
    report = index.run(spec_for(rows, {"type": "hashed", "numShards": 3}), rt)
    payload = report.reports["ingestionStatsAndErrors"]["payload"]
    assert payload["rowStats"]["determinePartitions"]["processed"] == 0  # intervals + numShards: no determine pass
    chunks = by_chunk(report.segments)
    assert len(chunks) == 2
    for segs in chunks.values():
        assert sorted(s.partition_num for s in segs) == [0, 1, 2]
        seen_keys = set()
        for s in segs:
            spec = s.shard_spec
            assert (spec.type, spec.partitions, spec.num_buckets) == ("hashed", 3, 3)
            for r in segment_rows(rt, s):
                assert druid_bucket(r, ["a", "b"], 3, time_ms=r["__time"]) == spec.bucket_id
                key = (r["__time"], r["a"], r["b"])
                assert key not in seen_keys  # perfect rollup: a key lives in exactly one segment of its chunk
                seen_keys.add(key)
    visible = rows_of(rt, "p")
    assert pc.sum(visible["count"]).as_py() == len(rows)
    assert pc.sum(visible["v"]).as_py() == sum(r["v"] for r in rows)


def test_hashed_with_partition_dimensions(rt):
    rows = dup_heavy_rows(2000)
    report = index.run(spec_for(rows, {"type": "hashed", "numShards": 4, "partitionDimensions": ["b"]}), rt)
    for s in report.segments:
        assert s.shard_spec.partition_dimensions == ["b"]
        for r in segment_rows(rt, s):
            assert druid_bucket(r, ["a", "b"], 4, ["b"]) == s.shard_spec.bucket_id


def test_hashed_with_a_target_counts_distinct_rolled_up_rows_per_chunk(rt):
    rows = dup_heavy_rows()
    report = index.run(spec_for(rows, {"type": "hashed", "targetRowsPerSegment": 1000}), rt)
    payload = report.reports["ingestionStatsAndErrors"]["payload"]
    assert payload["rowStats"]["determinePartitions"]["processed"] == len(rows)  # the determine pass ran
    for segs in by_chunk(report.segments).values():
        distinct = sum(s.num_rows for s in segs)
        assert len(segs) == math.ceil(distinct / 1000) or abs(len(segs) - math.ceil(distinct / 1000)) <= 1
        assert all(s.shard_spec.num_buckets == len(segs) for s in segs)


@pytest.mark.parametrize("kind", ["single_dim", "range"])
def test_range_partitioning_cuts_shards_near_the_target_with_chained_bounds(rt, kind):
    rng = random.Random(11)
    rows = [
        {"ts": f"2024-01-01T{rng.randint(0, 23):02d}:00:00Z", "a": f"a{i:05d}", "b": f"b{rng.randint(0, 3)}", "v": 1}
        for i in range(3000)
    ]
    partitions = (
        {"type": "single_dim", "partitionDimension": "a", "targetRowsPerSegment": 500}
        if kind == "single_dim"
        else {"type": "range", "partitionDimensions": ["a", "b"], "targetRowsPerSegment": 500}
    )
    report = index.run(spec_for(rows, partitions, intervals=("2024-01-01/2024-01-02",)), rt)
    segs = sorted(report.segments, key=lambda s: s.partition_num)
    assert len(segs) == 6
    assert all(450 <= s.num_rows <= 550 for s in segs)
    specs = [s.shard_spec for s in segs]
    assert specs[0].start is None and specs[-1].end is None
    for left, right in zip(specs, specs[1:]):
        assert left.end == right.start  # bounds chain with no gap
    for s in segs:
        lo, hi = s.shard_spec.start, s.shard_spec.end
        for r in segment_rows(rt, s):
            value = r["a"] if kind == "single_dim" else [r["a"], r["b"]]
            assert lo is None or value >= lo
            assert hi is None or value < hi
    assert pc.sum(rows_of(rt, "p")["count"]).as_py() == 3000


def test_a_new_hashed_version_is_invisible_until_every_shard_is_published(rt):
    rows = dup_heavy_rows()
    index.run(spec_for(rows, {"type": "hashed", "numShards": 2}), rt)
    day = Interval.parse("2024-01-01/2024-01-02")
    old = {s.id for s in rt.store.visible_segments("p", day)}
    task = index.submit(spec_for(rows, {"type": "hashed", "numShards": 3}), rt)
    index.acquire_locks(task, rt)
    plan = index.determine_partitions(task, rt)
    units = [u for u in plan.build_units if u.chunks[0].interval == day]
    assert len(units) == 3
    results = [index.build(task, u, rt) for u in units]
    rt.store.publish_segments([s for r in results[:2] for s in r.segments])  # one shard missing
    assert {s.id for s in rt.store.visible_segments("p", day)} == old
    rt.store.publish_segments(results[2].segments)
    assert {s.id for s in rt.store.visible_segments("p", day)} == {s.id for r in results for s in r.segments}
    index.release(task.task_id, rt)


def test_mapped_units_built_separately_equal_one_pass_and_count_rows_once(rt):
    rows = dup_heavy_rows(3000)
    task = index.submit(spec_for(rows, {"type": "hashed", "numShards": 3}), rt)
    index.acquire_locks(task, rt)
    plan = index.determine_partitions(task, rt)
    assert len(plan.build_units) == 6 and sum(u.primary for u in plan.build_units) == 1
    results = [index.build(task, u, rt) for u in plan.build_units]
    report = index.publish(task, plan, results, rt)
    stats = report.reports["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]
    assert stats["processed"] == len(rows) and stats["thrownAway"] == 0
    index.release(task.task_id, rt)


def test_appends_onto_hashed_segments_become_extra_numbered_partitions(rt):
    rows = dup_heavy_rows(2000)
    first = index.run(spec_for(rows, {"type": "hashed", "numShards": 2}), rt)
    more = [dict(r, v=100) for r in rows[:50]]
    appended = index.run(spec_for(more, {"type": "dynamic"}, force=False, appendToExisting=True), rt)
    versions = {s.interval: s.version for s in first.segments}
    for s in appended.segments:
        assert s.shard_spec.type == "numbered" and s.partition_num == 2 and s.version == versions[s.interval]
    assert pc.sum(rows_of(rt, "p")["count"]).as_py() == 2050


def test_illegal_combinations_are_rejected_before_any_work(rt):
    rows = dup_heavy_rows(10)
    with pytest.raises(SpecError, match="appendToExisting"):
        index.run(spec_for(rows, {"type": "hashed", "numShards": 2}, appendToExisting=True), rt)
    with pytest.raises(SpecError, match="partitionsSpec"):
        index.run(spec_for(rows, {"type": "dynamic"}, force=True), rt)
    with pytest.raises(SpecError, match="partitionsSpec"):
        index.run(spec_for(rows, {"type": "hashed", "numShards": 2}, force=False), rt)
    assert rt.store.used_segments("p") == []


def test_csv_numbers_in_a_double_dimension_hash_as_written(rt, tmp_path):
    # Druid hashes a CSV value as its text: "2" and "2.50" in a double dimension, not 2.0 and 2.5 (the CSV
    # reader keeps every column as text; the hash is taken before the dimension is typed).
    (tmp_path / "in").mkdir()
    texts = ["2", "2.50", "7", "1e3", "0.1", "3", "4.0", "5", "6", "8"]
    (tmp_path / "in" / "data.csv").write_text("".join(f"2024-01-01T00:00:0{i % 10}Z,{t}\n" for i, t in enumerate(texts)))
    spec = spec_for([], {"type": "hashed", "numShards": 4, "partitionDimensions": ["d"]}, intervals=("2024-01-01/2024-01-02",))
    spec["spec"]["dataSchema"]["dimensionsSpec"] = {"dimensions": [{"type": "double", "name": "d"}]}
    spec["spec"]["dataSchema"]["metricsSpec"] = [{"type": "count", "name": "count"}]
    spec["spec"]["ioConfig"]["inputSource"] = {"type": "local", "baseDir": str(tmp_path / "in"), "filter": "*.csv"}
    spec["spec"]["ioConfig"]["inputFormat"] = {"type": "csv", "columns": ["ts", "d"]}
    report = index.run(spec, rt)
    bucket_of_value = {float(t): druid_bucket({"d": t}, ["d"], 4, ["d"]) for t in texts}
    assert len(set(bucket_of_value.values())) > 1
    for s in report.segments:
        for r in segment_rows(rt, s):
            assert bucket_of_value[r["d"]] == s.shard_spec.bucket_id
    assert sum(s.num_rows for s in report.segments) == len(texts)
    assert sorted(s.partition_num for s in report.segments) == list(range(len(report.segments)))


JSON_NUMBERS = ["1", "2.5", "3", "2.0", "7", "1e3", "12", "4.0", "-0", "6", "10000000", "1.0E7"]


@pytest.mark.parametrize(
    "dimensions,partition_dims",
    [
        (["d"], ["d"]),  # a string dimension: its text is String.valueOf of the number Jackson read
        ([{"type": "double", "name": "d"}], ["d"]),  # a double dimension: hashed before typing, as written
        (None, ["d"]),  # schemaless
        (None, []),  # schemaless, the whole group key
        ([{"type": "double", "name": "d"}, "s"], []),
    ],
)
def test_json_integers_and_doubles_in_one_column_hash_as_druid_reads_them(rt, dimensions, partition_dims):
    # pyarrow reads the column as doubles (1 -> 1.0); Druid keeps 1 a Long ("1") and 2.0 a Double ("2.0").
    lines = [f'{{"ts":"2024-01-01T00:{i:02d}:00Z","d":{v},"s":"x{i % 3}"}}' for i, v in enumerate(JSON_NUMBERS)]
    spec = spec_for([], {"type": "hashed", "numShards": 5, "partitionDimensions": partition_dims}, intervals=("2024-01-01/2024-01-02",))
    spec["spec"]["dataSchema"]["dimensionsSpec"] = {"dimensions": dimensions} if dimensions is not None else {}
    spec["spec"]["dataSchema"]["metricsSpec"] = [{"type": "count", "name": "count"}]
    spec["spec"]["dataSchema"]["granularitySpec"]["queryGranularity"] = "MINUTE"
    spec["spec"]["ioConfig"]["inputSource"] = {"type": "inline", "data": "\n".join(lines)}
    report = index.run(spec, rt)
    raw = [json.loads(line) for line in lines]
    dims = ["d", "s"]
    minute = {r["ts"][14:16]: r for r in raw}
    got = {}
    for s in report.segments:
        for r in segment_rows(rt, s):
            source = minute[f"{(r['__time'] // 60_000) % 60:02d}"]
            got[json.dumps(source["d"])] = s.shard_spec.bucket_id
            expected = druid_bucket(source, dims, 5, partition_dims, r["__time"])
            assert s.shard_spec.bucket_id == expected, (source, r)
            if dimensions != [{"type": "double", "name": "d"}] and dimensions != [{"type": "double", "name": "d"}, "s"]:
                assert r["d"] == java_string(source["d"])  # the stored string: "1", "2.5", "2.0", "1000.0", "0"
    assert len(got) == len(JSON_NUMBERS) and len(set(got.values())) > 1
    # Without the kinds, 1 and 1.0 would hash alike; the literal's kind decides here.
    assert druid_key({"d": 1}, ["d"], ["d"]) != druid_key({"d": 1.0}, ["d"], ["d"])


@pytest.mark.parametrize("partition_dims", [["m"], []])
def test_json_arrays_mixing_integers_and_doubles_hash_as_druid_reads_them(rt, partition_dims):
    arrays = ["[1, 2.0]", "[2.0, 1]", "[3, 3.5, 3]", "[1e3]", "[7]", "[7.0]", "[null, 4]", "[5, 6.0, 5]"]
    lines = [f'{{"ts":"2024-01-01T00:{i:02d}:00Z","m":{v}}}' for i, v in enumerate(arrays)]
    spec = spec_for([], {"type": "hashed", "numShards": 4, "partitionDimensions": partition_dims}, intervals=("2024-01-01/2024-01-02",))
    spec["spec"]["dataSchema"]["dimensionsSpec"] = {}
    spec["spec"]["dataSchema"]["metricsSpec"] = [{"type": "count", "name": "count"}]
    spec["spec"]["dataSchema"]["granularitySpec"]["queryGranularity"] = "MINUTE"
    spec["spec"]["ioConfig"]["inputSource"] = {"type": "inline", "data": "\n".join(lines)}
    report = index.run(spec, rt)
    by_minute = {i: json.loads(line) for i, line in enumerate(lines)}
    seen = 0
    for s in report.segments:
        for r in segment_rows(rt, s):
            source = by_minute[(r["__time"] // 60_000) % 60]
            assert s.shard_spec.bucket_id == druid_bucket(source, ["m"], 4, partition_dims, r["__time"]), source
            seen += 1
    assert seen == len(arrays)
