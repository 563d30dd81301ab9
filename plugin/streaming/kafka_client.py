"""The Kafka side of a task and a supervisor, on confluent-kafka: partitions, offsets, and reading a range.

A task spools the message values of its ``[start, ...)`` ranges to a local file, one line per message, so the
index build reads it like any JSON-lines/CSV/TSV input; it never lets the consumer commit (offsets are committed
with the segments, :mod:`druidflow.streaming.offsets`). A partition's end is where the task stopped: the broker's
end of the partition (partition EOF, from the fetch response), the task's message budget, or ``taskDuration``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from druidflow.exceptions import InputError, SpecError
from druidflow.streaming.kafka_spec import KafkaIOConfig

_METADATA_TIMEOUT_S = 15.0
_PARTITION_EOF = -191  # confluent_kafka.KafkaError._PARTITION_EOF


def consumer(io: KafkaIOConfig, group: str) -> Any:
    """A consumer with the spec's consumerProperties; it never commits (``enable.auto.commit`` is forced off)."""
    try:
        from confluent_kafka import Consumer, KafkaException
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise InputError("Kafka ingestion needs confluent-kafka: pip install 'druidflow[kafka]'") from exc
    config = {str(k): v for k, v in io.consumer_properties.items()}
    config.setdefault("group.id", group)
    config.update({"enable.auto.commit": False, "enable.partition.eof": True, "auto.offset.reset": "error"})
    try:
        return Consumer(config)
    except (KafkaException, ValueError, TypeError) as exc:
        raise SpecError("spec.ioConfig.consumerProperties", io.consumer_properties, f"rejected by the Kafka client: {exc}") from None


def partitions(cons: Any, topic: str) -> list[int]:
    """The topic's partition ids; InputError when the topic does not exist or the broker cannot be reached."""
    from confluent_kafka import KafkaException

    try:
        meta = cons.list_topics(topic, timeout=_METADATA_TIMEOUT_S)
    except KafkaException as exc:
        raise InputError(f"Kafka topic {topic!r}: cannot read its metadata: {exc}") from None
    info = meta.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        reason = info.error if info is not None and info.error is not None else "no such topic"
        raise InputError(f"Kafka topic {topic!r}: {reason}")
    return sorted(info.partitions)


def watermarks(cons: Any, topic: str, parts: list[int]) -> dict[int, tuple[int, int]]:
    """(earliest, latest) offset per partition, as the broker lists them."""
    from confluent_kafka import KafkaException, TopicPartition

    out = {}
    for p in parts:
        try:
            out[p] = tuple(cons.get_watermark_offsets(TopicPartition(topic, p), timeout=_METADATA_TIMEOUT_S))
        except KafkaException as exc:
            raise InputError(f"Kafka topic {topic!r} partition {p}: cannot list its offsets: {exc}") from None
    return out


@dataclass
class SpoolResult:
    """What a task read: the end offset per partition (exclusive), which partitions it read to their end, how
    many messages went to the spool file and how many had no value (Kafka tombstones, thrown away)."""

    end: dict[int, int]
    at_end: set[int] = field(default_factory=set)
    messages: int = 0
    null_messages: int = 0
    bytes: int = 0


def spool(
    cons: Any,
    topic: str,
    start: Mapping[int, int],
    out: Path,
    *,
    max_messages: int,
    deadline: float,
    poll_timeout_ms: int = 100,
    flush_every_s: float = 600.0,
) -> SpoolResult:
    """Read ``[start[p], ...)`` of each partition into ``out`` until every partition is at its end, the budget is
    spent or the monotonic ``deadline`` passes. Messages of one partition are consumed in order, so whatever
    prefix is written, ``end`` is exactly one past the last offset spooled per partition."""
    from confluent_kafka import KafkaException, TopicPartition

    result = SpoolResult(end={p: int(o) for p, o in start.items()})
    if not start:
        out.write_bytes(b"")
        return result
    cons.assign([TopicPartition(topic, p, int(o)) for p, o in start.items()])
    last_flush = time.monotonic()
    try:
        with out.open("wb") as f:
            while len(result.at_end) < len(start) and result.messages + result.null_messages < max_messages:
                if time.monotonic() >= deadline:
                    break
                budget = max_messages - result.messages - result.null_messages
                batch = cons.consume(num_messages=min(10_000, budget), timeout=poll_timeout_ms / 1000.0)
                lines = []
                end, at_end = result.end, result.at_end
                for m in batch:
                    err = m.error()
                    if err is not None:
                        p = m.partition()
                        if err.code() == _PARTITION_EOF:
                            if m.offset() is not None and m.offset() >= end.get(p, 0):
                                at_end.add(p)
                            continue
                        raise InputError(f"Kafka topic {topic!r} partition {p}: {err.str()}")
                    p, offset = m.partition(), m.offset()
                    if offset < end.get(p, offset + 1):
                        continue  # already spooled (a gap after it, e.g. transaction markers, is fine)
                    if budget <= 0:
                        break
                    budget -= 1
                    end[p] = offset + 1
                    if at_end:
                        at_end.discard(p)  # a message after the partition's EOF: it is not at its end any more
                    value = m.value()
                    if not value:
                        result.null_messages += 1
                        continue
                    # One message is one line; a newline inside JSON is whitespace, so flattening it keeps the value.
                    if b"\n" in value or b"\r" in value:
                        value = value.replace(b"\r", b" ").replace(b"\n", b" ")
                    lines.append(value)
                result.messages += len(lines)
                if lines:
                    blob = b"\n".join(lines) + b"\n"
                    f.write(blob)
                    result.bytes += len(blob)
                if time.monotonic() - last_flush >= flush_every_s:
                    f.flush()
                    last_flush = time.monotonic()
    except KafkaException as exc:
        raise InputError(f"Kafka topic {topic!r}: {exc}") from None
    finally:
        try:
            cons.unassign()
        except KafkaException:
            pass
    return result
