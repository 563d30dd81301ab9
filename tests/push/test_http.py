"""The push endpoints in-process (FastAPI TestClient): Druid's paths and answers, and every refusal's status."""

from __future__ import annotations

import gzip
import json

import pytest
from fastapi.testclient import TestClient

from druidflow.intervals import now_ms
from druidflow.push import spool
from druidflow.push.http import standalone_app

from .helpers import events, ndjson, realtime_spec


@pytest.fixture
def client(rt, tmp_path, monkeypatch):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "events.json").write_text(json.dumps(realtime_spec("events", buffer_size=50)))
    (specs / "clicks.json").write_text(json.dumps(realtime_spec("clicks", service_name="firehose:clicks")))
    (specs / "broken.json").write_text(json.dumps(realtime_spec("broken", window="soon")))
    monkeypatch.setenv("DRUIDFLOW_PUSH_MAX_BODY_BYTES", "20000")
    return TestClient(standalone_app(specs, rt.store.engine))


def test_tranquility_post_answers_received_and_sent(client, rt):
    now = now_ms()
    body = ndjson(events(now, range(3)) + events(now - 3_600_000, ["old"]))
    r = client.post("/v1/post/events", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 200 and r.json() == {"result": {"received": 4, "sent": 3}}
    r = client.post("/v1/post/events", json=events(now, ["a", "b"]))
    assert r.json() == {"result": {"received": 2, "sent": 2}}
    assert spool.pending_events(rt.store.engine, "events") == 5


def test_firehose_push_events_by_service_name(client, rt):
    r = client.post("/druid/worker/v1/chat/firehose:clicks/push-events", json=events(now_ms(), range(4)))
    assert r.status_code == 200 and r.json() == {"eventCount": 4, "sent": 4}
    assert spool.pending_events(rt.store.engine, "clicks") == 4
    assert client.post("/druid/worker/v1/chat/clicks/push-events", json=[]).status_code == 404


def test_refusals(client, rt):
    now = now_ms()
    bad = client.post("/v1/post/events", content=b'{"ts": 1}\n{"ts": \n')
    assert bad.status_code == 400 and "line 2" in bad.json()["detail"]
    assert client.post("/v1/post/nope", json=[]).status_code == 404
    assert client.post("/v1/post/broken", json=[]).status_code == 404
    big = ndjson(events(now, range(400)))
    assert len(big) > 20000
    assert client.post("/v1/post/events", content=big).status_code == 413
    bomb = gzip.compress(b" " * 100_000)
    assert client.post("/v1/post/events", content=bomb, headers={"Content-Encoding": "gzip"}).status_code == 413
    smile = client.post("/v1/post/events", content=b"\x3a\x29\x0a", headers={"Content-Type": "application/x-jackson-smile"})
    assert smile.status_code == 415
    assert spool.pending_events(rt.store.engine, "events") == 0


def test_gzip_bodies_are_accepted(client):
    body = gzip.compress(ndjson(events(now_ms(), range(5))))
    r = client.post("/v1/post/events", content=body, headers={"Content-Encoding": "gzip"})
    assert r.json() == {"result": {"received": 5, "sent": 5}}


def test_a_full_spool_answers_429_with_retry_after(client, rt):
    now = now_ms()
    assert client.post("/v1/post/events", json=events(now, range(45))).status_code == 200
    r = client.post("/v1/post/events", json=events(now, range(45, 55)))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert spool.pending_events(rt.store.engine, "events") == 45
