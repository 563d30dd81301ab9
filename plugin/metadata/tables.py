"""Druidflow's tables, all prefixed ``druidflow_`` so that they can live in the Airflow metadata DB.

Druid keeps instants as ISO strings (``start``, ``end``, versions); we keep those for fidelity and add
``start_ms``/``end_ms`` integers, because string order breaks for Druid's far-past ETERNITY bounds and
integer range predicates use the indexes well. Alembic migrations in ``migrations/`` create exactly these
tables; a test checks that the two never drift apart.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

PREFIX = "druidflow_"

metadata = MetaData()

segments = Table(
    f"{PREFIX}segments",
    metadata,
    Column("id", String(512), primary_key=True),
    Column("dataSource", String(255), nullable=False),
    Column("created_date", String(32), nullable=False),
    Column("start", String(40), nullable=False),
    Column("end", String(40), nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("partitioned", Boolean, nullable=False),
    Column("version", String(255), nullable=False),
    Column("partition_num", Integer, nullable=False),
    Column("used", Boolean, nullable=False),
    Column("used_status_last_updated", String(32), nullable=False),
    # Why the segment is unused: overshadowed-by-compaction, overshadowed-by-reindex, dropped-by-user, dropped-by-rule.
    Column("unused_reason", String(64), nullable=True),
    # Set once a kill has claimed the row: from then on it can never be marked used again.
    Column("kill_task_id", String(255), nullable=True),
    Column("size", BigInteger, nullable=False, default=0),
    Column("num_rows", BigInteger, nullable=False, default=0),
    # The physical file(s) the loadSpec points at, so that kill can reference-count shared files.
    Column("load_path", String(1024), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    # The payload's shardSpec type and core partition count (NULL: unknown, a single/range set that must chain),
    # so that visibility reads no payload (migration df_narrow).
    Column("shard_type", String(32), nullable=False),
    Column("core_partitions", Integer, nullable=True),
    Index(f"ix_{PREFIX}segments_ds_used_start_end", "dataSource", "used", "start_ms", "end_ms"),
    Index(f"ix_{PREFIX}segments_ds_start_end", "dataSource", "start_ms", "end_ms"),
    Index(f"ix_{PREFIX}segments_load_path", "load_path"),
    Index(f"ix_{PREFIX}segments_kill_task", "kill_task_id"),
    # The console's summary and timeline, and visibility's per-set aggregate, read only this index (migrations
    # df_console, df_narrow).
    Index(f"ix_{PREFIX}segments_console", "dataSource", "used", "start_ms", "end_ms", "version", "partition_num",
          "size", "num_rows", "core_partitions"),
)

pending_segments = Table(
    f"{PREFIX}pending_segments",
    metadata,
    Column("id", String(512), primary_key=True),
    Column("dataSource", String(255), nullable=False),
    Column("created_date", String(32), nullable=False),
    Column("start", String(40), nullable=False),
    Column("end", String(40), nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("version", String(255), nullable=False),
    Column("partition_num", Integer, nullable=False),
    Column("sequence_name", String(255), nullable=False),
    Column("sequence_prev_id", String(512), nullable=False),
    # Druid's idempotency key: SHA-1 of sequence name, then previous id or interval, then version.
    Column("sequence_name_prev_id_sha1", String(64), nullable=False),
    Column("task_allocator_id", String(255), nullable=True),
    Column("payload", LargeBinary, nullable=False),
    UniqueConstraint("sequence_name_prev_id_sha1", name=f"uq_{PREFIX}pending_segments_sha1"),
    Index(f"ix_{PREFIX}pending_segments_ds_start_end", "dataSource", "start_ms", "end_ms"),
    Index(f"ix_{PREFIX}pending_segments_ds_sequence", "dataSource", "sequence_name"),
    Index(f"ix_{PREFIX}pending_segments_allocator", "dataSource", "task_allocator_id"),
)

tasks = Table(
    f"{PREFIX}tasks",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("dataSource", String(255), nullable=False),
    Column("group_id", String(255), nullable=False),
    Column("status", String(16), nullable=False),  # RUNNING | SUCCESS | FAILED (Druid's TaskState)
    Column("active", Boolean, nullable=False),
    Column("payload", Text, nullable=False),  # the task JSON with defaults filled in
    Column("status_payload", Text, nullable=True),  # Druid's TaskStatus JSON
    Column("report", Text, nullable=True),  # the task report JSON (ingestionStatsAndErrors, kill report, ...)
    Column("error_msg", Text, nullable=True),
    Column("created_date", String(32), nullable=False),
    Column("updated_date", String(32), nullable=False),
    Index(f"ix_{PREFIX}tasks_active_created", "active", "created_date"),
    Index(f"ix_{PREFIX}tasks_ds_created", "dataSource", "created_date"),
    # The console's newest-first task list, filtered by type or status (migration df_console).
    Index(f"ix_{PREFIX}tasks_created", "created_date"),
    Index(f"ix_{PREFIX}tasks_type_created", "type", "created_date"),
    Index(f"ix_{PREFIX}tasks_status_created", "status", "created_date"),
)

# --- Task locks (owned by druidflow.locks) -----------------------------------------------------------------
# One row per dataSource: the lockbox's per-dataSource mutex (taken with SELECT ... FOR UPDATE on PostgreSQL;
# SQLite's BEGIN IMMEDIATE serialises everything anyway) and the last lock version handed out for it, so that
# versions keep increasing even if a clock steps back.
lock_datasources = Table(
    f"{PREFIX}lock_datasources",
    metadata,
    Column("dataSource", String(255), primary_key=True),
    Column("last_version", String(64), nullable=False),
)

# One row per (lock, task): Druid's TaskLockPosse is the set of rows sharing ``posse_id`` (tasks of one groupId
# share one lock and one version). Each row carries its task's lease; a posse exists while one of its rows is
# live (lease not expired and not yet recorded as expired).
task_locks = Table(
    f"{PREFIX}task_locks",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("posse_id", String(32), nullable=False),
    Column("task_id", String(255), nullable=False),
    Column("group_id", String(255), nullable=False),
    Column("dataSource", String(255), nullable=False),
    Column("interval", String(100), nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("type", String(16), nullable=False),  # EXCLUSIVE | SHARED | REPLACE | APPEND
    Column("version", String(64), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    Column("lease_expires_ms", BigInteger, nullable=False),
    # Set, once and for good, by the first lockbox transaction that relies on the lease having run out.
    Column("expired_at_ms", BigInteger, nullable=True),
    Column("created_date", String(32), nullable=False),
    UniqueConstraint("posse_id", "task_id", name=f"uq_{PREFIX}task_locks_posse_task"),
    Index(f"ix_{PREFIX}task_locks_task", "task_id"),
    Index(f"ix_{PREFIX}task_locks_ds_start_end", "dataSource", "start_ms", "end_ms"),
)

# The audit trail of every lock state change: acquire, revoke, release, expire, force_release. Rows of one
# dataSource are written only while its mutex is held, so their ids are in the order the changes happened.
lock_events = Table(
    f"{PREFIX}lock_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", String(32), nullable=False),
    Column("event", String(32), nullable=False),
    Column("task_id", String(255), nullable=False),
    Column("group_id", String(255), nullable=True),
    Column("dataSource", String(255), nullable=False),
    Column("interval", String(100), nullable=False),
    Column("type", String(16), nullable=True),
    Column("version", String(64), nullable=True),
    Column("priority", Integer, nullable=True),
    Column("posse_id", String(32), nullable=True),
    # Who caused it: the preempting task for a revoke, the admin for a force release.
    Column("actor", String(255), nullable=True),
    Column("detail", Text, nullable=True),
    Index(f"ix_{PREFIX}lock_events_task", "task_id"),
    Index(f"ix_{PREFIX}lock_events_ds_id", "dataSource", "id"),
    # The console: which task took the lock a segment version came from (migration df_console).
    Index(f"ix_{PREFIX}lock_events_ds_version", "dataSource", "version"),
)

# Concurrent append and replace (Druid's druid_upgradeSegments): a segment committed under an APPEND lock into
# an interval a REPLACE lock holds, waiting for that REPLACE task's publish to copy it into the REPLACE version.
upgrade_segments = Table(
    f"{PREFIX}upgrade_segments",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("dataSource", String(255), nullable=False),
    Column("segment_id", String(512), nullable=False),
    Column("upgrade_version", String(255), nullable=False),  # the REPLACE lock's version
    Column("created_date", String(32), nullable=False),
    UniqueConstraint("segment_id", "upgrade_version", name=f"uq_{PREFIX}upgrade_segments_segment_version"),
    Index(f"ix_{PREFIX}upgrade_segments_ds_version", "dataSource", "upgrade_version"),
)

# Retention rules per dataSource (Druid's druid_rules): a JSON list, first match wins.
rules = Table(
    f"{PREFIX}rules",
    metadata,
    Column("dataSource", String(255), primary_key=True),
    Column("version", String(32), nullable=False),
    Column("payload", Text, nullable=False),
)

# Streaming offsets committed with the segments that hold their rows (Druid's druid_dataSource): one row per
# dataSource; ``commit_metadata_sha1`` is what the publish transaction compares-and-swaps on.
datasource_metadata = Table(
    f"{PREFIX}datasource_metadata",
    metadata,
    Column("dataSource", String(255), primary_key=True),
    Column("created_date", String(32), nullable=False),
    Column("updated_date", String(32), nullable=False),
    Column("commit_metadata_payload", Text, nullable=False),
    Column("commit_metadata_sha1", String(64), nullable=False),
)

# Streaming supervisors (Druid's druid_supervisors, keeping the current spec and state rather than a history).
supervisors = Table(
    f"{PREFIX}supervisors",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("dataSource", String(255), nullable=False),
    Column("type", String(32), nullable=False),
    Column("created_date", String(32), nullable=False),
    Column("updated_date", String(32), nullable=False),
    Column("suspended", Boolean, nullable=False),
    Column("payload", Text, nullable=False),
)

# Stream push (druidflow.push): the durable spool of acknowledged events, one row per (request, segment bucket),
# its payload the events as JSON lines. The row id is the event batch's position; a handoff deletes exactly the
# rows it published in the same transaction as the segments, so a batch is published once or not at all.
push_spool = Table(
    f"{PREFIX}push_spool",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("dataSource", String(255), nullable=False),
    Column("bucket_start_ms", BigInteger, nullable=False),
    Column("bucket_end_ms", BigInteger, nullable=False),
    Column("received_date", String(32), nullable=False),
    Column("events", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Index(f"ix_{PREFIX}push_spool_ds_bucket", "dataSource", "bucket_start_ms", "id"),
)

# Per pushed dataSource: the events in its spool (kept with the spool rows in the same transactions, so the capacity
# check is one row) and what its handoffs committed (written in the transaction that publishes the segments).
push_datasources = Table(
    f"{PREFIX}push_datasources",
    metadata,
    Column("dataSource", String(255), primary_key=True),
    Column("pending_events", BigInteger, nullable=False),
    Column("committed_events", BigInteger, nullable=False),
    Column("committed_batches", BigInteger, nullable=False),
    Column("last_spool_id", BigInteger, nullable=False),
    Column("last_task_id", String(255), nullable=True),
    Column("updated_date", String(32), nullable=False),
)

__all__ = [
    "metadata",
    "segments",
    "pending_segments",
    "tasks",
    "lock_datasources",
    "task_locks",
    "lock_events",
    "rules",
    "datasource_metadata",
    "supervisors",
    "upgrade_segments",
    "push_spool",
    "push_datasources",
    "PREFIX",
]

