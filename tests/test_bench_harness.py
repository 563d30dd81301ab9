"""The benchmark harness: the generator is deterministic and has the documented shape, the agreement check
catches outputs that disagree, the bundled examples are what the generator and the reference job say they are."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest

import bench.engines as engines
import bench.generate as gen
import bench.run as harness
from bench.agreement import check_agreement, summarize
from bench.reference_spec import reference_spec

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
ISO_MS = re.compile(r"^2024-01-0[1-7]T\d\d:\d\d:\d\d\.\d{3}Z$")


# --------------------------------------------------------------------------------------------------- generator


def _bytes(paths: dict[str, Path]) -> dict[str, bytes]:
    return {fmt: p.read_bytes() for fmt, p in paths.items()}


def test_same_seed_gives_the_same_bytes_and_another_seed_other_bytes(tmp_path):
    first = gen.generate(5_000, tmp_path / "a", seed=7, use_manifest=False)
    again = gen.generate(5_000, tmp_path / "b", seed=7, use_manifest=False)
    other = gen.generate(5_000, tmp_path / "c", seed=8, use_manifest=False)
    assert set(first) == {"csv", "json"}
    assert _bytes(first) == _bytes(again)
    assert _bytes(first)["csv"] != _bytes(other)["csv"]
    assert _bytes(first)["json"] != _bytes(other)["json"]


def test_bytes_do_not_depend_on_how_the_text_is_sliced_and_chunks_continue_in_time(tmp_path, monkeypatch):
    whole = _bytes(gen.generate(4_000, tmp_path / "whole", use_manifest=False))
    monkeypatch.setattr(gen, "ENCODE_ROWS", 333)
    assert _bytes(gen.generate(4_000, tmp_path / "sliced", use_manifest=False)) == whole
    monkeypatch.setattr(gen, "CHUNK_ROWS", 1_000)  # 4 chunks, each from its own seeded stream
    chunked = gen.generate(4_000, tmp_path / "chunked", formats=("csv",), use_manifest=False)
    lines = chunked["csv"].read_text().splitlines()
    assert len(lines) == 4_001
    stamps = [line.split(",", 1)[0] for line in lines[1:]]
    assert stamps == sorted(stamps), "the file is in time order across chunk boundaries"
    assert stamps[0].startswith("2024-01-01") and stamps[-1].startswith("2024-01-07")


def test_documented_cardinalities_and_shape():
    vocab = gen.vocabulary(gen.DEFAULT_SEED)
    for values, size in ((vocab.pages, 100_000), (vocab.users, 50_000), (vocab.countries, 200),
                         (vocab.languages, 20), (vocab.namespaces, 10)):  # fmt: skip
        assert len(values) == size and len(set(values.to_pylist())) == size

    table = gen.generate_chunk(200_000, 0)
    assert table.column_names == list(gen.COLUMNS)
    col = {name: table.column(name).to_pylist() for name in gen.COLUMNS}
    assert len(set(col["language"])) == 20
    assert len(set(col["namespace"])) == 10
    assert len(set(col["country"])) == 200
    assert set(col["isRobot"]) == {True, False}
    assert set(col["page"]) <= set(vocab.pages.to_pylist())
    assert set(col["user"]) <= set(vocab.users.to_pylist())
    assert 20_000 < len(set(col["page"])) < 100_000 and 5_000 < len(set(col["user"])) < 50_000
    # Zipf-like: the k-th most popular page gets about 1/k of the first one's edits.
    ranked = [n for _, n in Counter(col["page"]).most_common()]
    assert 6 < ranked[0] / ranked[9] < 15
    assert 0.05 < ranked[0] / len(col["page"]) < 0.12
    # Bots are editors: one user is always or never a robot; each page lives in one namespace.
    assert len(set(zip(col["user"], col["isRobot"]))) == len(set(col["user"]))
    assert len(set(zip(col["page"], col["namespace"]))) == len(set(col["page"]))
    assert all(ISO_MS.match(t) for t in col["timestamp"])
    assert col["timestamp"] == sorted(col["timestamp"])
    assert {t[:10] for t in col["timestamp"]} == {f"2024-01-0{d}" for d in range(1, 8)}
    assert all(a >= 0 and d >= 0 and x == a - d for a, d, x in zip(col["added"], col["deleted"], col["delta"]))
    assert 0.5 < sum(1 for d in col["deleted"] if d == 0) / len(col["deleted"]) < 0.85


def test_csv_and_json_lines_carry_the_same_rows(tmp_path):
    paths = gen.generate(3_000, tmp_path, use_manifest=False)
    expected = gen.generate_chunk(3_000, 0)
    schema = expected.schema
    from_csv = pacsv.read_csv(paths["csv"], convert_options=pacsv.ConvertOptions(column_types=schema))
    from_json = pajson.read_json(paths["json"], parse_options=pajson.ParseOptions(explicit_schema=schema))
    assert paths["csv"].read_text().splitlines()[0] == ",".join(gen.COLUMNS)
    assert from_csv.equals(expected)
    assert from_json.equals(expected)
    first = json.loads(paths["json"].read_text().splitlines()[0])
    assert isinstance(first["isRobot"], bool) and isinstance(first["added"], int)


def test_manifest_skips_current_files_and_rewrites_damaged_ones(tmp_path):
    paths = gen.generate(2_000, tmp_path, formats=("csv",))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["wikipedia-2k.csv"]["rows"] == 2_000
    written = paths["csv"].stat().st_mtime_ns
    gen.generate(2_000, tmp_path, formats=("csv",))
    assert paths["csv"].stat().st_mtime_ns == written, "a current file is not rewritten"
    good = paths["csv"].read_bytes()
    paths["csv"].write_bytes(good[:100])
    gen.generate(2_000, tmp_path, formats=("csv",))
    assert paths["csv"].read_bytes() == good, "a file whose size does not match the manifest is regenerated"


@pytest.mark.parametrize(("text", "rows"), [("1M", 1_000_000), ("5M", 5_000_000), ("50m", 50_000_000),
                                            ("20k", 20_000), ("1_500", 1_500)])  # fmt: skip
def test_parse_rows(text, rows):
    assert gen.parse_rows(text) == rows


@pytest.mark.parametrize("text", ["", "0", "-5", "5G", "lots"])
def test_parse_rows_rejects_nonsense(text):
    with pytest.raises(ValueError, match="--rows"):
        gen.parse_rows(text)


# --------------------------------------------------------------------------------------------------- agreement

DAY = 86_400_000
T0 = 1_704_067_200_000


def _write(path: Path, columns: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def _segments(root: Path, added_on_day_2: int = 7, unit: str = "ms") -> Path:
    """A fabricated rolled-up output: two days, the second split over two files as two partitions would be."""
    per_ms = {"ms": 1, "us": 1000}[unit]
    ts = pa.timestamp(unit, tz="UTC")
    _write(root / "day1" / "0" / "part.parquet", {
        "__time": pa.array([T0 * per_ms, (T0 + 3_600_000) * per_ms], ts),
        "count": [2, 1], "added": [10, 5], "deleted": [1, 0], "delta": [9, 5],
    })  # fmt: skip
    _write(root / "day2" / "0" / "part.parquet", {
        "__time": pa.array([(T0 + DAY) * per_ms], ts), "count": [3], "added": [added_on_day_2], "deleted": [2], "delta": [added_on_day_2 - 2],
    })  # fmt: skip
    _write(root / "day2" / "1" / "part.parquet", {
        "__time": pa.array([(T0 + DAY + 60_000) * per_ms], ts), "count": [1], "added": [1], "deleted": [0], "delta": [1],
    })  # fmt: skip
    return root


def test_summaries_of_equal_outputs_agree_across_time_units(tmp_path):
    druid = summarize(_segments(tmp_path / "druid"))
    peer = summarize(_segments(tmp_path / "peer", unit="us"))
    assert druid["rolled_up"] and druid["days"]["2024-01-02"] == {"rows": 2, "count": 4, "added": 8, "deleted": 2, "delta": 6}
    assert check_agreement({"druidflow": druid, "polars": peer}, expected_rows=7) == []


def test_agreement_fails_when_a_metric_differs(tmp_path):
    druid = summarize(_segments(tmp_path / "druid"))
    peer = summarize(_segments(tmp_path / "peer", added_on_day_2=8))
    problems = check_agreement({"druidflow": druid, "duckdb": peer})
    assert problems and all("2024-01-02" in p for p in problems)
    assert any(p.startswith("2024-01-02 added: druidflow=8 duckdb=9") for p in problems)


def test_agreement_fails_on_a_missing_day_on_row_counts_and_on_the_input_total(tmp_path):
    druid = summarize(_segments(tmp_path / "druid"))
    one_day = {"rolled_up": True, "days": {"2024-01-01": druid["days"]["2024-01-01"]}}
    assert check_agreement({"druidflow": druid, "polars": one_day}) == ["2024-01-02: present in druidflow only"]
    less_rollup = json.loads(json.dumps(druid))
    less_rollup["days"]["2024-01-01"]["rows"] += 1
    assert check_agreement({"druidflow": druid, "polars": less_rollup}) == ["2024-01-01 rows: druidflow=2 polars=3"]
    assert check_agreement({"druidflow": druid}, expected_rows=8) == ["druidflow: total count 7 but the input has 8 rows"]


def test_a_raw_output_agrees_on_totals_only(tmp_path):
    druid = summarize(_segments(tmp_path / "druid"))
    stamps = [T0, T0, T0 + 3_600_000, T0 + DAY, T0 + DAY, T0 + DAY, T0 + DAY + 60_000]
    raw = {"timestamp": pa.array([s * 1_000_000 for s in stamps], pa.timestamp("ns", tz="UTC")), "added": [4, 6, 5, 7, 0, 0, 1],
           "deleted": [1, 0, 0, 2, 0, 0, 0], "delta": [3, 6, 5, 5, 0, 0, 1]}  # fmt: skip
    _write(tmp_path / "floor" / "all.parquet", raw)
    floor = summarize(tmp_path / "floor")
    assert not floor["rolled_up"]
    assert check_agreement({"druidflow": druid, "floor": floor}, expected_rows=7) == []
    _write(tmp_path / "floor" / "all.parquet", {**raw, "added": [4, 6, 5, 7, 0, 0, 2]})
    assert check_agreement({"druidflow": druid, "floor": summarize(tmp_path / "floor")}) == [
        "2024-01-02 added: druidflow=8 floor=9"
    ]


def test_the_harness_exits_non_zero_when_the_engines_disagree(tmp_path, monkeypatch, capsys):
    good = summarize(_segments(tmp_path / "good"))
    bad = summarize(_segments(tmp_path / "bad", added_on_day_2=100))

    def fabricated_run(engine, *args, **kwargs):
        summary = bad if engine == "duckdb" else good
        return {"engine": engine, "status": "ok", "wall_s": 1.0, "cpu_s": 1.0, "peak_rss_bytes": 2**20,
                "output_bytes": 10, "load_1m_before": 0.0, "summary": summary}  # fmt: skip

    monkeypatch.setattr(harness, "run_once", fabricated_run)
    argv = ["--rows", "7", "--repeat", "1", "--engines", "polars,duckdb", "--skip-metadata", "--no-save",
            "--data", str(tmp_path / "data")]  # fmt: skip
    assert harness.main(argv) == 1
    assert "2024-01-02 added: polars=8 duckdb=101" in capsys.readouterr().out
    monkeypatch.setattr(harness, "run_once", lambda engine, *a, **k: {**fabricated_run("polars"), "engine": engine})
    assert harness.main(argv) == 0


def test_run_to_run_differences_are_caught(tmp_path):
    good = summarize(_segments(tmp_path / "good"))
    bad = summarize(_segments(tmp_path / "bad", added_on_day_2=100))
    records = [{"engine": "polars", "summary": good}, {"engine": "polars", "summary": bad}]
    assert any(p.startswith("polars run to run:") for p in harness.agreement(records, rows=7))


def test_an_unavailable_engine_is_reported_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    good = summarize(_segments(tmp_path / "good"))
    calls = []

    def fabricated_run(engine, *args, **kwargs):
        calls.append(engine)
        if engine == "druidflow":
            return {"engine": engine, "status": "unavailable", "reason": "not written yet", "load_1m_before": 0.0}
        return {"engine": engine, "status": "ok", "wall_s": 1.0, "cpu_s": 1.0, "peak_rss_bytes": 2**20,
                "output_bytes": 10, "load_1m_before": 0.0, "summary": good}  # fmt: skip

    monkeypatch.setattr(harness, "run_once", fabricated_run)
    argv = ["--rows", "7", "--repeat", "2", "--engines", "druidflow,polars", "--skip-metadata", "--no-save",
            "--data", str(tmp_path / "data")]  # fmt: skip
    assert harness.main(argv) == 0
    assert calls == ["druidflow", "polars", "polars"], "an unavailable engine is not retried"
    assert "druidflow  unavailable: not written yet" in capsys.readouterr().out


def test_druidflow_is_unavailable_only_when_its_entry_point_does_not_exist(tmp_path, monkeypatch):
    args = (tmp_path / "in.csv", "csv", tmp_path / "out", 1_000)
    monkeypatch.setattr(engines, "DRUIDFLOW_ENTRY", "druidflow.no_such_module.run_local")
    assert engines.run_engine("druidflow", *args)["status"] == "unavailable"
    monkeypatch.setattr(engines, "DRUIDFLOW_ENTRY", "druidflow.intervals.run_local")
    assert engines.run_engine("druidflow", *args)["status"] == "unavailable"
    (tmp_path / "broken_engine.py").write_text("import no_such_dependency_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(engines, "DRUIDFLOW_ENTRY", "broken_engine.run_local")
    result = engines.run_engine("druidflow", *args)
    assert result["status"] == "failed" and "no_such_dependency_anywhere" in result["reason"]


@pytest.mark.slow
def test_the_harness_runs_the_peers_in_child_processes_and_they_agree(tmp_path):
    cmd = [sys.executable, "-m", "bench.run", "--rows", "2000", "--repeat", "1", "--skip-metadata", "--no-save",
           "--engines", "polars,duckdb,floor", "--data", str(tmp_path / "data")]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"Agreement .* across duckdb, floor, polars: OK", done.stdout), done.stdout
    for engine in ("polars", "duckdb", "floor"):
        assert re.search(rf"^{engine}\s+1\s+\d", done.stdout, re.M), done.stdout
    assert "Airflow end-to-end (druidflow_index, LocalExecutor): not measured" in done.stdout


FAKE_DRUIDFLOW = """
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

DIMS = ["page", "language", "user", "country", "isRobot", "namespace"]


def run_local(spec, *, metadata_url, deep_storage):
    source = spec["spec"]["ioConfig"]["inputSource"]
    table = pacsv.read_csv(Path(source["baseDir"]) / source["filter"])
    if os.environ.get("FAKE_DRUIDFLOW_DROPS_A_ROW"):
        table = table.slice(1)
    table = table.set_column(0, "__time", pc.floor_temporal(table["timestamp"], unit="hour"))
    grouped = table.group_by(["__time", *DIMS]).aggregate(
        [("added", "count"), ("added", "sum"), ("deleted", "sum"), ("delta", "sum")]
    )
    names = {"added_count": "count", "added_sum": "added", "deleted_sum": "deleted", "delta_sum": "delta"}
    rolled = grouped.rename_columns([names.get(n, n) for n in grouped.column_names])
    day = pc.floor_temporal(rolled["__time"], unit="day")
    for value in pc.unique(day).to_pylist():
        target = Path(deep_storage) / "wikipedia_bench" / value.strftime("%Y-%m-%d") / "v1" / "0"
        target.mkdir(parents=True)
        pq.write_table(rolled.filter(pc.equal(day, value)), target / "index.parquet", compression="lz4")
    return {"ingestionStatsAndErrors": {"rowStats": {"buildSegments": {"processed": table.num_rows}}}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("drops_a_row", [False, True], ids=["agrees", "loses-a-row"])
def test_a_druidflow_build_is_timed_compared_and_checked_end_to_end(tmp_path, drops_a_row):
    (tmp_path / "fake_druidflow.py").write_text(FAKE_DRUIDFLOW)
    env = {**os.environ, "DRUIDFLOW_BENCH_ENTRY": "fake_druidflow.run_local",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}  # fmt: skip
    if drops_a_row:
        env["FAKE_DRUIDFLOW_DROPS_A_ROW"] = "1"
    cmd = [sys.executable, "-m", "bench.run", "--rows", "2000", "--repeat", "1", "--skip-metadata", "--no-save",
           "--engines", "druidflow,polars,floor", "--data", str(tmp_path / "data")]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert re.search(r"^druidflow\s+1\s+\d", done.stdout, re.M), done.stdout + done.stderr
    assert "Druidflow / fastest peer (polars):" in done.stdout and "Druidflow / floor:" in done.stdout
    if drops_a_row:
        assert done.returncode == 1
        assert "druidflow: total count 1,999 but the input has 2,000 rows" in done.stdout
    else:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "across druidflow, floor, polars: OK" in done.stdout


# --------------------------------------------------------------------------------------------------- examples


def test_the_bundled_sample_is_the_generators_output(tmp_path):
    sample = EXAMPLES / "wikipedia-sample.json"
    assert sample.stat().st_size < 3_100_000
    regenerated = gen.generate(16_000, tmp_path, formats=("json",), name="wikipedia-sample", use_manifest=False)
    assert regenerated["json"].read_bytes() == sample.read_bytes()


def _load(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def test_the_example_index_tasks_are_the_reference_job_over_the_sample_in_both_forms():
    modern = _load("wikipedia-index.json")
    assert modern == reference_spec("examples/wikipedia-sample.json", "json", data_source="wikipedia")
    source = modern["spec"]["ioConfig"]["inputSource"]
    assert source == {"type": "local", "baseDir": "examples", "filter": "wikipedia-sample.json"}
    assert (REPO / source["baseDir"] / source["filter"]).is_file()

    classic = _load("wikipedia-index-classic.json")
    schema, old = modern["spec"]["dataSchema"], classic["spec"]["dataSchema"]
    assert classic["type"] == "index" and "inputSource" not in classic["spec"]["ioConfig"]
    assert old["parser"]["parseSpec"]["format"] == "json"
    assert old["parser"]["parseSpec"]["timestampSpec"] == schema["timestampSpec"]
    assert old["parser"]["parseSpec"]["dimensionsSpec"] == schema["dimensionsSpec"]
    for key in ("dataSource", "metricsSpec", "granularitySpec"):
        assert old[key] == schema[key]
    assert classic["spec"]["ioConfig"]["firehose"] == source


def test_the_compact_and_kill_examples_cover_the_sample_week():
    compact, kill = _load("compact-wikipedia.json"), _load("kill-wikipedia.json")
    assert compact["type"] == "compact" and compact["dataSource"] == "wikipedia"
    assert compact["ioConfig"]["inputSpec"] == {"type": "interval", "interval": "2024-01-01/2024-01-08"}
    assert kill == {"type": "kill", "dataSource": "wikipedia", "interval": "2024-01-01/2024-01-08"}


def test_the_examples_parse_as_druidflow_tasks_and_both_index_forms_mean_the_same():
    from druidflow.specs.tasks import parse_task

    modern = parse_task(_load("wikipedia-index.json"))
    classic = parse_task(_load("wikipedia-index-classic.json"))
    assert modern.spec.data_schema == classic.spec.data_schema
    assert modern.spec.io_config == classic.spec.io_config
    tuning, old_tuning = modern.spec.tuning_config, classic.spec.tuning_config
    assert tuning.effective_partitions_spec == old_tuning.effective_partitions_spec
    assert tuning.max_rows_in_memory == old_tuning.max_rows_in_memory == 1_000_000
    assert tuning.index_spec == old_tuning.index_spec
    assert type(parse_task(_load("compact-wikipedia.json"))).__name__ == "CompactTask"
    assert type(parse_task(_load("kill-wikipedia.json"))).__name__ == "KillTask"
    bench_schema = modern.spec.data_schema.model_copy(update={"data_source": "wikipedia_bench"})
    for fmt in ("csv", "json"):
        assert parse_task(reference_spec("bench/data/wikipedia-5M.csv", fmt)).spec.data_schema == bench_schema
