"""Library manners: the engine leaves the process's garbage collector and allocator as it found them, unless an
entry point that owns the process (the CLI) lets it tune them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SPEC = {
    "type": "index",
    "spec": {
        "dataSchema": {
            "dataSource": "manners",
            "timestampSpec": {"column": "ts", "format": "iso"},
            "dimensionsSpec": {"dimensions": ["d"]},
            "metricsSpec": [{"type": "count", "name": "n"}],
            "granularitySpec": {"segmentGranularity": "DAY", "queryGranularity": "DAY", "intervals": ["2024-01-01/2024-01-03"]},
        },
        "ioConfig": {
            "type": "index",
            "inputSource": {"type": "inline", "data": "\n".join(
                json.dumps({"ts": f"2024-01-0{1 + i % 2}T00:00:00Z", "d": f"v{i % 7}"}) for i in range(200))},
            "inputFormat": {"type": "json"},
        },
    },
}

# Whether glibc serves a 16 MiB block by mmap right after one of that size was freed. Untouched, glibc raises its
# mmap threshold on that free, so the second block comes from the heap (False); once mallopt(M_MMAP_THRESHOLD)
# has fixed the threshold below 16 MiB, every such block is mapped (True).
PROBE = """
import ctypes, gc, json

libc = ctypes.CDLL("libc.so.6")
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def mapped_after_free(size=16 << 20):
    p = libc.malloc(size)
    libc.free(p)
    before = libc.mallinfo2().hblks
    p = libc.malloc(size)
    mapped = libc.mallinfo2().hblks > before
    libc.free(p)
    return mapped
"""


def _run(tmp_path, body: str) -> dict:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(SPEC))
    script = PROBE + textwrap.dedent(body).format(
        url=f"sqlite:///{tmp_path / 'meta.db'}", deep=str(tmp_path / "deep"), spec=str(spec_file))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_an_index_task_run_through_the_python_api_leaves_gc_and_the_allocator_alone(tmp_path):
    state = _run(tmp_path, """
        import json as j
        from druidflow.process_tuning import allocator_tuned
        from druidflow.tasks.dispatch import run_task
        from druidflow.tasks.runtime import Runtime

        spec = j.load(open({spec!r}))
        report = run_task(spec, Runtime.from_urls({url!r}, {deep!r}))
        print(json.dumps({{"status": report["status"] if isinstance(report, dict) else str(report),
                          "gc": gc.isenabled(), "tuned": allocator_tuned(), "mapped": mapped_after_free()}}))
    """)
    assert state["gc"] is True
    assert state["tuned"] is False
    assert state["mapped"] is False, "the library call changed glibc's mmap threshold"


def test_the_cli_tunes_the_allocator_for_its_run(tmp_path):
    state = _run(tmp_path, """
        import druidflow.ingest.builder as builder
        from druidflow import cli
        from druidflow.process_tuning import allocator_tuned

        seen = []
        original = builder.tune_allocator
        def watching():
            original()
            seen.append(allocator_tuned())
        builder.tune_allocator = watching
        code = cli.main(["--metadata-url", {url!r}, "--deep-storage", {deep!r}, "run", {spec!r}])
        print(json.dumps({{"code": code, "tuned_during_run": any(seen), "tuned_after": allocator_tuned(),
                          "gc": gc.isenabled(), "mapped": mapped_after_free()}}))
    """)
    assert state["code"] == 0
    assert state["tuned_during_run"] is True
    assert state["tuned_after"] is False
    assert state["gc"] is True
    # mallopt has no getter: the exit sets glibc's default threshold back, fixed, so a 16 MiB block stays mapped.
    assert state["mapped"] is True
