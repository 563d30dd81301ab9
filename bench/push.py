"""Stream-push load test: events/s accepted and the push endpoint's latency, on loopback, bounded in time.

    python -m bench.push [--metadata-url URL] [--seconds 10] [--clients 4] [--batch 100 --batch 1] [--save]

Starts ``druidflow push-server`` (the same FastAPI apps Airflow mounts, without Airflow's auth) as a subprocess on
a free loopback port with one realtime spec, then for each batch size runs ``--clients`` threads that POST
JSON-lines batches to ``/v1/post/{dataSource}`` for ``--seconds`` seconds (or until ``--max-events`` were sent).
Every 2xx answer means the events are committed to the spool. Reports per batch size: events/s accepted, requests/s,
p50/p99/max latency per request; then the time to hand off (index and publish) everything that was spooled.
Without ``--metadata-url`` a temporary SQLite file is used.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

DATA_SOURCE = "bench_push"


def _spec(buffer_size: int) -> dict[str, Any]:
    return {
        "type": "index_realtime",
        "spec": {
            "dataSchema": {
                "dataSource": DATA_SOURCE,
                "timestampSpec": {"column": "timestamp", "format": "millis"},
                "dimensionsSpec": {"dimensions": ["page", "user", "language"]},
                "metricsSpec": [{"type": "count", "name": "count"}, {"type": "longSum", "name": "added", "fieldName": "added"}],
                "granularitySpec": {"segmentGranularity": "HOUR", "queryGranularity": "MINUTE"},
            },
            "ioConfig": {"type": "realtime", "firehose": {"type": "receiver", "bufferSize": buffer_size}},
            "tuningConfig": {"type": "realtime", "windowPeriod": "PT10M", "maxRowsInMemory": 100_000},
        },
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _body(batch: int, seq: int) -> bytes:
    now = int(time.time() * 1000)
    return b"".join(
        b'{"timestamp":%d,"page":"page-%d","user":"user-%d","language":"en","added":%d}\n' % (now, (seq + i) % 997, (seq + i) % 101, i)
        for i in range(batch)
    )


def _client(url: str, batch: int, until: float, max_events: int, counter: dict, lock: threading.Lock, latencies: list[float]) -> None:
    seq = 0
    with httpx.Client(timeout=60) as http:
        while time.monotonic() < until:
            with lock:
                if counter["sent"] >= max_events:
                    return
            body = _body(batch, seq)
            seq += batch
            t0 = time.perf_counter()
            r = http.post(url, content=body, headers={"Content-Type": "application/x-ndjson"})
            latencies.append(time.perf_counter() - t0)
            with lock:
                if r.status_code == 200:
                    counter["sent"] += r.json()["result"]["sent"]
                    counter["ok"] += 1
                elif r.status_code == 429:
                    counter["refused"] += 1
                    time.sleep(float(r.headers.get("Retry-After", "1")))
                else:
                    counter["errors"] += 1


def measure(url: str, *, clients: int, batch: int, seconds: float, max_events: int) -> dict[str, Any]:
    counter = {"sent": 0, "ok": 0, "refused": 0, "errors": 0}
    lock = threading.Lock()
    latencies: list[list[float]] = [[] for _ in range(clients)]
    until = time.monotonic() + seconds
    start = time.perf_counter()
    threads = [threading.Thread(target=_client, args=(url, batch, until, max_events, counter, lock, latencies[i])) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    lat = np.array([x for per in latencies for x in per]) * 1000
    return {
        "batch": batch,
        "clients": clients,
        "wall_s": round(wall, 2),
        "events_accepted": counter["sent"],
        "events_per_s": round(counter["sent"] / wall, 1),
        "requests_per_s": round(counter["ok"] / wall, 1),
        "refused_429": counter["refused"],
        "errors": counter["errors"],
        "latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "p99": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
            "max": round(float(lat.max()), 2) if len(lat) else None,
        },
    }


def _stderr_tail(server: subprocess.Popen[bytes]) -> str:
    """The end of a server's stderr once it has exited (empty while it runs: reading would block)."""
    if server.poll() is None or server.stderr is None:
        return ""
    return server.stderr.read().decode()[-2000:]


def run(metadata_url: str, deep_storage: str, *, seconds: float, clients: int, batches: list[int], max_events: int) -> dict[str, Any]:
    from druidflow.push import spool
    from druidflow.push.runner import drain
    from druidflow.push.spec import RealtimeTask
    from druidflow.tasks.runtime import Runtime

    rt = Runtime.from_urls(metadata_url, deep_storage)
    specs = Path(tempfile.mkdtemp(prefix="bench-push-specs-"))
    spec = _spec(buffer_size=max(10 * max_events, 1_000_000))
    (specs / f"{DATA_SOURCE}.json").write_text(json.dumps(spec))
    port = _free_port()
    env = {**os.environ, "DRUIDFLOW_WORK_DIR": str(specs / "work")}
    server = subprocess.Popen(
        [sys.executable, "-m", "druidflow.cli", "--metadata-url", metadata_url, "--deep-storage", deep_storage,
         "push-server", str(specs), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/v1/post/{DATA_SOURCE}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.post(url, content=b"", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"push-server did not start: {_stderr_tail(server)}") from None
                time.sleep(0.2)
        results = [measure(url, clients=clients, batch=b, seconds=seconds, max_events=max_events) for b in batches]
    finally:
        server.terminate()
        server.wait(timeout=30)
    pending = spool.pending_events(rt.store.engine, DATA_SOURCE)
    t0 = time.perf_counter()
    handed = drain(RealtimeTask.load(spec), rt)
    handoff_s = time.perf_counter() - t0
    return {
        "metadata": rt.store.engine.dialect.name,
        "push": results,
        "handoff": {"events": handed, "pending_before": pending, "seconds": round(handoff_s, 2),
                    "events_per_s": round(handed / handoff_s, 1) if handoff_s else None},
    }


def _print(report: dict[str, Any]) -> None:
    print(f"stream push on loopback, metadata {report['metadata']}")
    print(f"{'batch':>6} {'clients':>7} {'events/s':>10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'429':>5} {'err':>4}")
    for r in report["push"]:
        lat = r["latency_ms"]
        print(f"{r['batch']:>6} {r['clients']:>7} {r['events_per_s']:>10} {r['requests_per_s']:>8} {lat['p50']:>8} {lat['p99']:>8} "
              f"{lat['max']:>8} {r['refused_429']:>5} {r['errors']:>4}")
    h = report["handoff"]
    print(f"handoff: {h['events']} events indexed and published in {h['seconds']} s ({h['events_per_s']} events/s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.push", description=__doc__.split("\n")[0])
    parser.add_argument("--metadata-url", default=None)
    parser.add_argument("--seconds", type=float, default=10.0, help="per batch size (bounded)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, action="append", help="events per request (repeatable; default 100 and 1)")
    parser.add_argument("--max-events", type=int, default=2_000_000, help="stop a run after this many accepted events")
    parser.add_argument("--save", action="store_true", help="also write bench/results/<time>-push.json")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-push-"))
    url = args.metadata_url or f"sqlite:///{tmp / 'metadata.db'}"
    report = run(url, str(tmp / "deep"), seconds=args.seconds, clients=args.clients, batches=args.batch or [100, 1],
                 max_events=args.max_events)
    _print(report)
    if args.save:
        out = Path(__file__).parent / "results" / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-push.json"
        out.write_text(json.dumps(report, indent=2))
        print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
