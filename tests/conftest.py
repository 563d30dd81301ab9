"""Shared fixtures: real SQLite and PostgreSQL databases, one isolated namespace per test.

PostgreSQL tests never skip: when the server is missing they fail, loudly, with what to do. Point them
elsewhere with ``DRUIDFLOW_TEST_PG_URL`` (default ``postgresql+psycopg2://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.s3server import s3_server  # noqa: F401

PG_URL = os.environ.get("DRUIDFLOW_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _pg_admin_engine():
    import sqlalchemy as sa

    return sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The PostgreSQL URL, after checking that the server answers. Fails (never skips) when it does not."""
    import sqlalchemy as sa

    try:
        with _pg_admin_engine().connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL is required for this test and is not reachable at {PG_URL}: {exc}. "
            "Start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) "
            "or set DRUIDFLOW_TEST_PG_URL.",
            pytrace=False,
        )
    return PG_URL


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin_engine()
    with admin.connect() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    sep = "&" if "?" in pg_server else "?"
    yield f"{pg_server}{sep}options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'drop schema "{schema}" cascade'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A file-backed SQLite database (a real file, so several processes can share it)."""
    return f"sqlite:///{tmp_path / 'metadata.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request) -> str:
    """Each test that takes ``db_url`` runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")
