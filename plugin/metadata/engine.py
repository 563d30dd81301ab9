"""One way to turn a URL (or an Engine) into a SQLAlchemy Engine that Druidflow's stores can share.

Problems with the database itself surface here as one-line errors instead of driver tracebacks: a string that is
not a URL or names a driver that is not installed (:class:`MetadataConfigError`), a server that cannot be reached,
a database that does not exist or a SQLite file that cannot be opened (:class:`MetadataUnavailableError`), and a
database without Druidflow's tables (:class:`MetadataError` naming the command that creates them).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from druidflow.exceptions import MetadataConfigError, MetadataError, MetadataUnavailableError

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy.engine import Connection
    from sqlalchemy.pool import ConnectionPoolEntry

DEFAULT_URL = "sqlite:///druidflow-metadata.db"

# Python module a SQLAlchemy driver imports -> what to install for it.
_DRIVER_PACKAGES = {
    "psycopg2": "psycopg2-binary (pip install 'druidflow[postgres]')",
    "psycopg": "psycopg (pip install 'psycopg[binary]')",
    "asyncpg": "asyncpg",
    "pg8000": "pg8000",
    "MySQLdb": "mysqlclient",
    "pymysql": "PyMySQL",
}
# A bare postgresql:// URL gets the first of these that is installed (SQLAlchemy's own default may not be).
_POSTGRES_DRIVERS = (("psycopg2", "postgresql+psycopg2"), ("psycopg", "postgresql+psycopg"))

# SQLite's and PostgreSQL's words for a table that is not there.
_MISSING_TABLE = re.compile(r'no such table: druidflow_\w+|relation "druidflow_\w+" does not exist')

CREATE_TABLES_HINT = (
    "create them with `druidflow --metadata-url URL migrate` "
    "(or `airflow db migrate` with the druidflow provider installed)"
)


def safe_url(url: Union[URL, str]) -> str:
    """The URL as text with any password hidden."""
    return url.render_as_string(hide_password=True) if isinstance(url, URL) else str(url)


def parse_url(text: Union[str, URL]) -> URL:
    """``text`` as a SQLAlchemy URL whose driver is installed; a bare ``postgresql://`` gets an installed driver."""
    if isinstance(text, URL):
        url = text
    else:
        try:
            url = sa.engine.make_url(text)
        except (sa.exc.ArgumentError, ValueError):
            raise MetadataConfigError(
                f"{text!r} is not a database URL (e.g. sqlite:////abs/path/metadata.db or "
                "postgresql+psycopg2://user@host:5432/db)"
            ) from None
    if url.drivername in ("postgresql", "postgres"):
        for module, drivername in _POSTGRES_DRIVERS:
            if importlib.util.find_spec(module) is not None:
                return url.set(drivername=drivername)
        raise MetadataConfigError(
            f"{safe_url(url)}: no PostgreSQL driver is installed; install psycopg2-binary "
            "(pip install 'druidflow[postgres]') or psycopg"
        )
    return url


def _create_engine(url: URL, **kwargs: Any) -> Engine:
    try:
        return sa.create_engine(url, **kwargs)
    except ImportError as exc:
        module = (getattr(exc, "name", None) or "").split(".")[0]
        package = _DRIVER_PACKAGES.get(module, module or str(exc))
        raise MetadataConfigError(
            f"{safe_url(url)}: the database driver {url.drivername!r} needs the Python package {package}, "
            "which is not installed"
        ) from None
    except sa.exc.NoSuchModuleError:
        raise MetadataConfigError(f"{safe_url(url)}: unknown kind of database {url.drivername!r}") from None


def make_engine(url_or_engine: Union[str, Engine]) -> Engine:
    """An Engine for ``url_or_engine``; SQLite gets WAL mode, a busy timeout and explicit transactions.

    SQLite has no row locks, so every Druidflow write transaction on it starts with ``BEGIN IMMEDIATE``:
    it takes the database's single write lock up front, which serialises writers instead of letting two
    read-then-write transactions both read before either writes. pysqlite's own implicit BEGIN is turned off
    so that this is the only BEGIN issued.
    """
    if isinstance(url_or_engine, Engine):
        return url_or_engine
    url = parse_url(url_or_engine)
    if url.get_backend_name() != "sqlite":
        engine = _create_engine(url, pool_pre_ping=True, future=True)
        sa.event.listen(engine, "handle_error", _explain_error)
        return engine
    engine = _create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, future=True)
    sa.event.listen(engine, "handle_error", _explain_error)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=60000")
        if url.database and url.database != ":memory:":
            _use_wal(cur)
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _use_wal(cur: sqlite3.Cursor) -> None:
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


def _explain_error(ctx: Any) -> None:
    """SQLAlchemy's ``handle_error`` hook: replace a failure to connect, or a missing Druidflow table, by an error
    that says what is wrong in one line. Every other error passes through unchanged."""
    url = ctx.engine.url if ctx.engine is not None else None
    text = str(ctx.original_exception).strip()
    first = text.splitlines()[0] if text else type(ctx.original_exception).__name__
    if ctx.connection is not None and _MISSING_TABLE.search(first):
        raise MetadataError(f"Druidflow's tables are missing in {safe_url(url or '?')} ({first}): {CREATE_TABLES_HINT}")
    if ctx.connection is not None or url is None or ctx.is_pre_ping:
        return  # pre-ping failures must reach SQLAlchemy, which then reconnects
    raise MetadataUnavailableError(_connect_failure(url, text, first))


def _connect_failure(url: URL, text: str, first: str) -> str:
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not path.parent.is_dir():
            why = f"its directory {path.parent} does not exist"
        elif path.is_dir():
            why = "it is a directory"
        else:
            why = first
        return f"cannot open the SQLite database {path}: {why}"
    # libpq: 'connection to server at "h" (1.2.3.4), port 5432 failed: FATAL:  database "x" does not exist'
    reason = first.rsplit("failed: ", 1)[-1].replace("FATAL:", "").strip()
    where = f"{url.host or 'localhost'}:{url.port or 'default port'}"
    if "database" in reason and "does not exist" in reason:
        return f"{safe_url(url)}: {reason} on the server {where}; create it first (e.g. createdb {url.database})"
    if any(k in text for k in ("refused", "could not translate host", "timeout expired", "Name or service", "No route")):
        return f"{safe_url(url)}: cannot reach the database server at {where} ({reason})"
    return f"{safe_url(url)}: cannot connect ({reason})"
