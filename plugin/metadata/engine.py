"""One way to turn a URL (or an Engine) into a SQLAlchemy Engine that Druidflow's stores can share."""

from __future__ import annotations

from typing import Union

import sqlalchemy as sa
from sqlalchemy.engine import Engine

DEFAULT_URL = "sqlite:///druidflow-metadata.db"


def make_engine(url_or_engine: Union[str, Engine]) -> Engine:
    """An Engine for ``url_or_engine``; SQLite gets WAL mode, a busy timeout and explicit transactions.

    SQLite has no row locks, so every Druidflow write transaction on it starts with ``BEGIN IMMEDIATE``:
    it takes the database's single write lock up front, which serialises writers instead of letting two
    read-then-write transactions both read before either writes. pysqlite's own implicit BEGIN is turned off
    so that this is the only BEGIN issued.
    """
    if isinstance(url_or_engine, Engine):
        return url_or_engine
    url = sa.engine.make_url(url_or_engine)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, future=True)
    engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, future=True)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=60000")
        if url.database and url.database != ":memory:":
            _use_wal(cur)
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _use_wal(cur) -> None:  # type: ignore[no-untyped-def]
    """Switch a SQLite file to WAL once. The switch needs the file to itself, and several processes opening a new
    database at the same moment can be told "database is locked" without waiting; they retry briefly."""
    import sqlite3
    import time

    if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + 60
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
