"""Memory stays bounded whatever the size of the input: a 4x bigger file must not need more memory.

Each read runs in a fresh subprocess, which reports its peak RSS (``resource.getrusage``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

pytestmark = pytest.mark.slow

READ_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from druidflow.inputs import open_input
    from druidflow.specs.io import CsvInputFormat, JsonInputFormat, LocalInputSource
    path, kind = sys.argv[1], sys.argv[2]
    fmt = JsonInputFormat() if kind == "json" else CsvInputFormat(columns=["ts", "page", "user", "added"])
    rows = bad = 0
    for batch in open_input(LocalInputSource(files=[path]), fmt).batches():
        rows += batch.num_rows
        bad += len(batch.unparseable)
    print(json.dumps({"rows": rows, "bad": bad, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
    """
)


def write_lines(path: Path, n: int, kind: str) -> None:
    """n generated rows, built vectorised (a few per mille of them broken, for JSON)."""
    with open(path, "wb") as out:
        step = 250_000
        for start in range(0, n, step):
            i = pa.array(range(start, min(n, start + step)), pa.int64())
            sec = pc.utf8_lpad(pc.cast(pc.remainder(i, 60), pa.string()), 2, "0")
            page = pc.cast(pc.remainder(i, 1000), pa.string())
            user = pc.cast(pc.remainder(i, 97), pa.string())
            added = pc.cast(i, pa.string())
            if kind == "json":
                line = pc.binary_join_element_wise(
                    '{"ts":"2024-01-01T00:00:', sec, 'Z","page":"p', page, '","user":"u', user, '","added":', added, "}\n", ""
                )
                line = pc.if_else(pc.equal(pc.remainder(i, 997), 0), pa.scalar("{broken\n"), line)
            else:
                line = pc.binary_join_element_wise("2024-01-01T00:00:", sec, "Z,p", page, ",u", user, ",", added, "\n", "")
            line = pa.concat_arrays([line])  # a fresh array: its data buffer holds the lines, in order, from 0
            end = np.frombuffer(line.buffers()[1], dtype=np.int32)[len(line)]
            out.write(line.buffers()[2][:end])


def peak_rss_mb(path: Path, kind: str) -> tuple[float, dict]:
    proc = subprocess.run([sys.executable, "-c", READ_SCRIPT, str(path), kind], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    return result["peak_kb"] / 1024, result


@pytest.mark.parametrize("kind", ["json", "csv"])
def test_peak_memory_does_not_grow_with_input_size(tmp_path, kind):
    small, big = tmp_path / f"small.{kind}", tmp_path / f"big.{kind}"
    write_lines(small, 500_000, kind)
    write_lines(big, 2_000_000, kind)
    small_mb, small_result = peak_rss_mb(small, kind)
    big_mb, big_result = peak_rss_mb(big, kind)
    big_file_mb = big.stat().st_size / 2**20

    assert small_result["rows"] + small_result["bad"] == 500_000
    assert big_result["rows"] + big_result["bad"] == 2_000_000
    if kind == "json":
        assert big_result["bad"] == len(range(0, 2_000_000, 997))  # broken lines counted, not fatal
    # 1.5 M more rows (~3/4 of a file of big_file_mb) cost (almost) no more memory.
    assert big_file_mb > 60
    assert big_mb - small_mb < 0.25 * big_file_mb, (small_mb, big_mb, big_file_mb)
    print(f"{kind}: peak RSS {small_mb:.0f} MB for 500k rows, {big_mb:.0f} MB for 2M rows ({big_file_mb:.0f} MB file)")
