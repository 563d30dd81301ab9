"""The lockbox's one-round-trip path on PostgreSQL: a new lock where nothing overlaps, and ``release_all``.

A lock pair through SQLAlchemy is a dozen round trips (pool pre-ping, BEGIN, the mutex, the read, the writes,
COMMIT, twice), and on a machine whose cores are shared that, not the mutex, is what caps pairs per second. The
two commonest steps are therefore PL/pgSQL functions, each called as one autocommitted statement on a connection
this process keeps open:

* ``druidflow_lock_acquire_new`` takes the dataSource's mutex row (``SELECT ... FOR UPDATE``), and only if no lock
  row of the dataSource that is not yet recorded as expired overlaps the request (then Druid's decision is "a new
  posse, nothing revoked") and the new version is above the dataSource's last one, inserts the lock row, bumps
  the last version and writes the ``acquire`` event. Otherwise it writes nothing and answers false, and the
  lockbox takes its general path (which reads the rows, records expiries, reuses, revokes or fails).
* ``druidflow_lock_release_all`` takes the mutexes of the task's dataSources in code-point order (``COLLATE
  "C"``, the order of Python's ``sorted`` that the general path uses, so that mutex waits never form a cycle),
  purges long-expired rows where due, deletes the task's rows and writes their ``release`` events.

Why the mutex argument still holds: a function that is ``VOLATILE`` takes a fresh snapshot for each statement it
runs at READ COMMITTED, so the overlap check, which runs after the mutex row is ours, sees everything the previous
holder committed; a single SQL statement (a CTE) could not do this, as all its parts share the snapshot taken
before it waited for the mutex. The commit is the statement's own, and stays synchronous: a lock the caller was
told it holds survives a server crash.

The clock is read before the call, not after the mutex is taken: a lease is then a little shorter and a version a
little older than on the general path, never longer; a version that is not above the last one is refused by the
function and the general path computes the next one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

ACQUIRE_FUNCTION = "druidflow_lock_acquire_new"
RELEASE_FUNCTION = "druidflow_lock_release_all"

_EVENT_COLUMNS = (
    '"at", "event", "task_id", "group_id", "dataSource", "interval", "type", "version", "priority", "posse_id", '
    '"actor", "detail"'
)

# Idempotent DDL (CREATE OR REPLACE): run by the migration df_lockfast and by TaskLockbox.create_tables.
FUNCTIONS_DDL = (
    f"""
CREATE OR REPLACE FUNCTION {ACQUIRE_FUNCTION}(
    p_ds text, p_posse text, p_task text, p_group text, p_interval text, p_start bigint, p_end bigint,
    p_type text, p_version text, p_priority integer, p_lease bigint, p_at text, p_new_version boolean
) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    last text;
BEGIN
    SELECT last_version INTO last FROM druidflow_lock_datasources WHERE "dataSource" = p_ds FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO druidflow_lock_datasources ("dataSource", last_version) VALUES (p_ds, '')
            ON CONFLICT DO NOTHING;
        SELECT last_version INTO last FROM druidflow_lock_datasources WHERE "dataSource" = p_ds FOR UPDATE;
    END IF;
    -- Versions are ISO instants of one width, so that text order is time order; anything else goes the long way.
    IF p_new_version AND last <> '' AND (length(last) <> length(p_version) OR last >= p_version) THEN
        RETURN false;
    END IF;
    IF EXISTS (
        SELECT 1 FROM druidflow_task_locks
        WHERE "dataSource" = p_ds AND start_ms < p_end AND end_ms > p_start AND expired_at_ms IS NULL
    ) THEN
        RETURN false;
    END IF;
    INSERT INTO druidflow_task_locks (
        posse_id, task_id, group_id, "dataSource", "interval", start_ms, end_ms, "type", version, priority,
        revoked, lease_expires_ms, expired_at_ms, created_date
    ) VALUES (
        p_posse, p_task, p_group, p_ds, p_interval, p_start, p_end, p_type, p_version, p_priority,
        false, p_lease, NULL, p_at
    );
    IF p_new_version THEN
        UPDATE druidflow_lock_datasources SET last_version = p_version WHERE "dataSource" = p_ds;
    END IF;
    INSERT INTO druidflow_lock_events ({_EVENT_COLUMNS})
    VALUES (p_at, 'acquire', p_task, p_group, p_ds, p_interval, p_type, p_version, p_priority, p_posse, NULL, NULL);
    RETURN true;
END
$$""",
    f"""
CREATE OR REPLACE FUNCTION {RELEASE_FUNCTION}(
    p_task text, p_at text, p_purge_before bigint, p_recently_purged text[]
) RETURNS TABLE (released integer, purged text[]) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    ds text;
    held text[] := '{{}}';
    due text[] := '{{}}';
    n integer;
BEGIN
    FOR ds IN
        SELECT DISTINCT "dataSource" COLLATE "C" FROM druidflow_task_locks WHERE task_id = p_task ORDER BY 1
    LOOP
        PERFORM 1 FROM druidflow_lock_datasources WHERE "dataSource" = ds FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO druidflow_lock_datasources ("dataSource", last_version) VALUES (ds, '')
                ON CONFLICT DO NOTHING;
            PERFORM 1 FROM druidflow_lock_datasources WHERE "dataSource" = ds FOR UPDATE;
        END IF;
        held := held || ds;
    END LOOP;
    IF cardinality(held) = 0 THEN
        RETURN QUERY SELECT 0, due;
        RETURN;
    END IF;
    due := ARRAY(SELECT unnest(held) EXCEPT SELECT unnest(p_recently_purged));
    IF cardinality(due) > 0 THEN
        DELETE FROM druidflow_task_locks
        WHERE "dataSource" = ANY(due) AND expired_at_ms IS NOT NULL AND expired_at_ms < p_purge_before;
    END IF;
    WITH deleted AS (
        DELETE FROM druidflow_task_locks WHERE task_id = p_task AND "dataSource" = ANY(held) RETURNING *
    )
    INSERT INTO druidflow_lock_events ({_EVENT_COLUMNS})
    SELECT p_at, 'release', task_id, group_id, "dataSource", "interval", "type", version, priority, posse_id,
           NULL, NULL
    FROM deleted ORDER BY "dataSource" COLLATE "C", id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN QUERY SELECT n, due;
END
$$""",
)


def install(conn: Connection) -> None:
    """Create or replace the functions (PostgreSQL only; a no-op elsewhere)."""
    if conn.dialect.name != "postgresql":
        return
    for ddl in FUNCTIONS_DDL:
        conn.exec_driver_sql(ddl)


class FastPath:
    """One autocommitting DBAPI connection per thread and process, calling the functions above.

    Each call answers None when the fast path cannot answer (no function in this database, a broken
    connection): the caller then takes the general path, which is also correct if the call did commit (a retried
    acquire finds the task's own lock and reuses it; a retried release finds nothing left to release).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = threading.local()
        self._all: list[Any] = []
        self._guard = threading.Lock()
        self.available = True

    def acquire_new(
        self, datasource: str, posse_id: str, task_id: str, group_id: str, interval: str, start: int, end: int,
        lock_type: str, version: str, priority: int, lease: int, at: str, new_version: bool,
    ) -> bool | None:
        """True: the lock was granted and committed; False: the general path must decide (nothing written)."""
        row = self._call(
            f"SELECT {ACQUIRE_FUNCTION}(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (datasource, posse_id, task_id, group_id, interval, start, end, lock_type, version, priority, lease, at,
             new_version),
        )
        return None if row is None else bool(row[0])

    def release_all(
        self, task_id: str, at: str, purge_before: int, recently_purged: Sequence[str]
    ) -> tuple[int, list[str]] | None:
        """How many rows were released, and the dataSources whose expired rows were purged."""
        row = self._call(
            f"SELECT released, purged FROM {RELEASE_FUNCTION}(%s, %s, %s, %s::text[])",
            (task_id, at, purge_before, list(recently_purged)),
        )
        return None if row is None else (int(row[0]), list(row[1] or []))

    def close(self) -> None:
        """Close the connections this process opened."""
        with self._guard:
            mine = [(pid, c) for pid, c in self._all if pid == os.getpid()]
            self._all = [(pid, c) for pid, c in self._all if pid != os.getpid()]
        for _, conn in mine:
            try:
                conn.close()
            except Exception:
                pass
        self._local = threading.local()

    def _call(self, sql: str, params: tuple[Any, ...]) -> Any:
        if not self.available:
            return None
        import psycopg2

        conn = self._connection()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchone()
        except psycopg2.errors.UndefinedFunction:
            log.info("the lockbox functions are not installed in this database; locking takes the general path")
            self.available = False
            return None
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            self._drop(conn)
            return None

    def _connection(self) -> Any:
        pid = os.getpid()
        held = getattr(self._local, "conn", None)
        if held is not None and held[0] == pid and not held[1].closed:
            return held[1]
        # A connection from the pool, detached from it: ours until close(); never one inherited across a fork.
        proxy = self._engine.raw_connection()
        proxy.detach()
        conn: Any = proxy.dbapi_connection  # a psycopg2 connection (FastPath is made for that driver only)
        conn.autocommit = True
        with conn.cursor() as cur:
            # The mutex argument needs READ COMMITTED (a fresh snapshot per statement of the function).
            cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED")
        self._local.conn = (pid, conn)
        with self._guard:
            self._all.append((pid, conn))
        return conn

    def _drop(self, conn: Any) -> None:
        self._local.conn = None
        with self._guard:
            self._all = [(pid, c) for pid, c in self._all if c is not conn]
        try:
            conn.close()
        except Exception:
            pass
