"""indexSpecForIntermediatePersists decides how the build's intermediate persists are compressed (lz4 by default,
as Druid's indexSpec default), and the result does not depend on it."""

from __future__ import annotations

import json

import pytest

import druidflow.ingest.builder as builder
from druidflow.query import visible_rows
from druidflow.specs.tuning import IndexSpec
from druidflow.tasks import index
from druidflow.tasks.runtime import Runtime
from tests.index_specs import index_task


@pytest.mark.parametrize(
    ("dims", "metrics", "codec"),
    [("lz4", "lz4", "lz4"), ("uncompressed", "none", None), ("zstd", "uncompressed", "zstd"),
     ("uncompressed", "lz4", "lz4"), ("lzf", "lzf", "lz4")],
)
def test_persist_codec_follows_the_index_spec(dims, metrics, codec):
    spec = IndexSpec.parse({"dimensionCompression": dims, "metricCompression": metrics}, "indexSpec")
    assert builder.persist_codec(spec) == codec


def _spec(input_dir, tuning: dict) -> dict:
    return index_task(
        data_source="wiki", input_source={"type": "local", "baseDir": str(input_dir), "filter": "*.json"}, timestamp_format="iso",
        dimensions=["page", "user"], metrics=[{"type": "count", "name": "count"}, {"type": "longSum", "name": "n", "fieldName": "n"}],
        query_granularity="NONE", intervals=["2024-01-01/P1D"], tuning={"maxRowsInMemory": 2000, **tuning},
    )


def _build(tmp_path, monkeypatch, name: str, tuning: dict) -> tuple[int, int, int]:
    """(persists, their bytes, sum of n over the published rows) of one build with small in-memory limits."""
    rows = [{"ts": f"2024-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z", "page": f"page-{i % 97}",
             "user": f"user-{i % 13}", "n": i} for i in range(12_000)]
    sizes = []
    persist = builder.IncrementalIndex._persist

    def spy(self, rolled):
        persist(self, rolled)
        sizes.append(max(self.work_dir.glob("persist-*.arrow"), key=lambda p: p.stat().st_mtime_ns).stat().st_size)

    monkeypatch.setattr(builder.IncrementalIndex, "_persist", spy)
    rt = Runtime.from_urls(f"sqlite:///{tmp_path}/{name}.db", str(tmp_path / name), tmp_path / f"work-{name}")
    inputs = tmp_path / f"input-{name}"
    inputs.mkdir()
    for part in range(4):  # one batch per file: each fills memory past maxRowsInMemory and is persisted
        (inputs / f"part-{part}.json").write_text("\n".join(json.dumps(r) for r in rows[part::4]) + "\n")
    index.run(_spec(inputs, tuning), rt)
    total = sum(sum(b.column("n").to_pylist()) for b in visible_rows(rt.store, rt.storage, "wiki"))
    assert total == sum(r["n"] for r in rows)
    return len(sizes), sum(sizes), total


def test_the_build_compresses_its_persists_as_the_spec_says(tmp_path, monkeypatch):
    plain_spec = {"indexSpecForIntermediatePersists": {"dimensionCompression": "uncompressed", "metricCompression": "none"}}
    n_lz4, lz4_bytes, lz4_total = _build(tmp_path, monkeypatch, "lz4", {})
    n_plain, plain_bytes, plain_total = _build(tmp_path, monkeypatch, "plain", plain_spec)
    assert n_lz4 == n_plain >= 3 and lz4_total == plain_total
    assert lz4_bytes < 0.7 * plain_bytes, (lz4_bytes, plain_bytes)
