"""``druidflow run`` imports nothing it does not use: no pandas (pyarrow would import it on Druidflow's behalf), no
Alembic once the schema is at head, no S3/Airflow/DuckDB/polars; pandas still works for code that asks for it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = """
import contextlib, io, json, sys
from druidflow import cli
with contextlib.redirect_stdout(io.StringIO()):
    cli.main(["--metadata-url", sys.argv[1], "--deep-storage", sys.argv[2], "run", sys.argv[3]])
before = sorted(m for m in ("pandas", "alembic", "boto3", "botocore", "airflow", "duckdb", "polars") if m in sys.modules)
import pandas as pd
import pyarrow as pa
frame = pa.table({"x": [1, 2]}).to_pandas()
back = pa.array(pd.Series([3, 4]))
print(json.dumps({"before": before, "frame": frame["x"].tolist(), "back": back.to_pylist()}))
"""


def _spec(tmp_path: Path) -> Path:
    (tmp_path / "in.json").write_text("\n".join(json.dumps({"ts": f"2024-01-01T0{h}:00:00Z", "page": f"p{h}", "n": h}) for h in range(5)))
    spec = {
        "type": "index",
        "spec": {
            "dataSchema": {
                "dataSource": "lazy", "timestampSpec": {"column": "ts", "format": "iso"},
                "dimensionsSpec": {"dimensions": ["page"]},
                "metricsSpec": [{"type": "count", "name": "count"}, {"type": "longSum", "name": "n", "fieldName": "n"}],
                "granularitySpec": {"segmentGranularity": "DAY", "queryGranularity": "HOUR", "intervals": ["2024-01-01/P1D"]},
            },
            "ioConfig": {"type": "index", "inputSource": {"type": "local", "baseDir": str(tmp_path), "filter": "in.json"},
                         "inputFormat": {"type": "json"}},
        },
    }  # fmt: skip
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def test_druidflow_run_imports_no_pandas_and_no_alembic_at_head_but_pandas_still_works(tmp_path):
    spec = _spec(tmp_path)
    url, deep = f"sqlite:///{tmp_path}/m.db", str(tmp_path / "deep")
    subprocess.run([sys.executable, "-m", "druidflow.cli", "--metadata-url", url, "migrate"], check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-c", CHILD, url, deep, str(spec)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["before"] == []
    assert result["frame"] == [1, 2] and result["back"] == [3, 4]
    assert (tmp_path / "deep").exists()
