"""make_engine's one-line errors must not get in the way of what SQLAlchemy recovers from by itself."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from druidflow.metadata.engine import make_engine, parse_url


@pytest.mark.postgres
def test_a_dead_pooled_connection_is_replaced_not_reported(pg_server):
    engine = make_engine(pg_server)
    with engine.connect() as conn:
        pid = conn.execute(sa.text("select pg_backend_pid()")).scalar()
    admin = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("select pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()
    with engine.connect() as conn:  # pre-ping finds the pooled connection dead and opens a new one
        assert conn.execute(sa.text("select pg_backend_pid()")).scalar() != pid
    engine.dispose()


def test_a_plain_postgresql_url_gets_the_installed_driver():
    assert parse_url("postgresql://u@h/db").drivername == "postgresql+psycopg2"  # psycopg2 is what the tests install
    assert parse_url("postgresql+psycopg2://u@h/db").drivername == "postgresql+psycopg2"


def test_other_errors_pass_through_unchanged(sqlite_url):
    engine = make_engine(sqlite_url)
    with pytest.raises(sa.exc.OperationalError, match="no such table: not_ours"):
        with engine.connect() as conn:
            conn.execute(sa.text("select * from not_ours"))
