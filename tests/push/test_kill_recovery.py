"""Done-when of stream push: several clients push while the realtime (indexing) process is SIGKILLed at random
moments; after recovery exactly the acknowledged events are published, each once.

Each trial is its own dataSource with one-second segments and a two-second window, so windows close (and
handoffs run) continuously while the clients push and the runner is killed and restarted. After the clients stop,
recovery is one drain of the spool. The test also checks that kills landed inside handoffs (left RUNNING tasks).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from druidflow.push import spool
from druidflow.push.runner import drain
from druidflow.push.spec import RealtimeTask

from .helpers import published_ids, realtime_spec
from .server import PushServer

TRIALS = 20
CLIENTS = 3
PUSH_SECONDS = 3.0


def _client(url: str, name: str, stop: threading.Event, acked: list[str], errors: list[str]) -> None:
    rng = random.Random(name)
    n = 0
    with httpx.Client(timeout=60) as http:
        while not stop.is_set():
            batch = [f"{name}-{n + i}" for i in range(rng.randint(1, 12))]
            n += len(batch)
            now = int(time.time() * 1000)
            body = b"".join(json.dumps({"ts": now, "id": i, "client": name, "value": 1}).encode() + b"\n" for i in batch)
            r = http.post(url, content=body)
            if r.status_code == 200:
                # A batch shares one timestamp: all of it is inside the window (acknowledged) or none of it is
                # (thrown away, when the loaded machine delayed the request past the window).
                sent = r.json()["result"]["sent"]
                if sent == len(batch):
                    acked.extend(batch)
                elif sent != 0:
                    errors.append(f"{name}: {sent} of {len(batch)} events sent")
            else:
                errors.append(f"{name}: HTTP {r.status_code} {r.text[:200]}")
            time.sleep(rng.uniform(0, 0.03))


def _runner(spec_file, db_url: str, deep: str, work: str) -> subprocess.Popen:
    env = {**os.environ, "DRUIDFLOW_WORK_DIR": work}
    cmd = [sys.executable, "-m", "druidflow.cli", "--metadata-url", db_url, "--deep-storage", deep,
           "realtime", str(spec_file), "--poll", "0.05", "--no-drain"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_until_watching(proc: subprocess.Popen, timeout: float = 60) -> None:
    """Kill times count from the runner's start of work, not from its interpreter's start-up."""
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        if b"watching the spool" in line:
            break
        if time.monotonic() > deadline:
            break
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained


@pytest.mark.slow
@pytest.mark.parametrize("backend, trials, push_seconds", [
    ("sqlite", TRIALS, PUSH_SECONDS),
    # Fewer, longer trials: the runner takes longer to start on PostgreSQL, and handoffs should also complete.
    pytest.param("postgresql", 4, 2 * PUSH_SECONDS, marks=pytest.mark.postgres),
])
def test_acknowledged_events_are_published_exactly_once_across_sigkills(request, backend, trials, push_seconds, tmp_path):
    from druidflow.tasks.runtime import Runtime

    db_url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    rt = Runtime.from_urls(db_url, str(tmp_path / "deep"), tmp_path / "work")
    specs = tmp_path / "specs"
    specs.mkdir()
    names = [f"kill{i}" for i in range(trials)]
    for ds in names:
        (specs / f"{ds}.json").write_text(json.dumps(realtime_spec(ds, segment="SECOND", window="PT2S", max_rows_in_memory=16)))
    rng = random.Random(17)
    kills = killed_mid_handoff = handed_off_before_recovery = 0
    with PushServer(specs, rt.store.engine) as server:
        for ds in names:
            task = RealtimeTask.load(json.loads((specs / f"{ds}.json").read_text()))
            stop = threading.Event()
            acked: list[list[str]] = [[] for _ in range(CLIENTS)]
            errors: list[str] = []
            clients = [threading.Thread(target=_client, args=(f"{server.url}/v1/post/{ds}", f"c{i}", stop, acked[i], errors))
                       for i in range(CLIENTS)]
            for c in clients:
                c.start()
            deadline = time.monotonic() + push_seconds
            while time.monotonic() < deadline:
                proc = _runner(specs / f"{ds}.json", db_url, str(tmp_path / "deep"), str(tmp_path / "work"))
                _wait_until_watching(proc)
                time.sleep(rng.uniform(0.0, 1.2))
                if proc.poll() is not None:
                    pytest.fail(f"the runner exited by itself ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                kills += 1
            stop.set()
            for c in clients:
                c.join(timeout=120)
            assert not errors, errors[:5]
            handed_off_before_recovery += sum(1 for t in rt.store.list_tasks(datasource=ds) if t.status == "SUCCESS")
            killed_mid_handoff += sum(1 for t in rt.store.list_tasks(datasource=ds) if t.status == "RUNNING")
            drain(task, rt)  # recovery
            expected = sorted(i for per_client in acked for i in per_client)
            published = sorted(published_ids(rt, ds))
            assert len(expected) > 0
            assert published == expected, (ds, len(published), len(expected), len(set(published)))
            assert spool.pending_events(rt.store.engine, ds) == 0
    print(f"{backend}: {trials} trials, {kills} SIGKILLs, {killed_mid_handoff} inside a handoff, {handed_off_before_recovery} handoffs completed")
    assert killed_mid_handoff > 0  # the kills did hit handoffs
    assert handed_off_before_recovery > 0  # and handoffs also completed between kills, with clients pushing
