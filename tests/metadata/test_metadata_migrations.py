"""Alembic migrations create exactly the tables of ``druidflow.metadata.tables``, in their own version table."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from druidflow.exceptions import MetadataError
from druidflow.metadata import migrate
from druidflow.metadata.store import MetadataStore
from druidflow.metadata.tables import metadata


def _diffs(url: str) -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn,
                opts={"include_name": migrate.include_name, "compare_type": True, "version_table": migrate.VERSION_TABLE},
            )
            return compare_metadata(ctx, metadata)
    finally:
        engine.dispose()


def test_upgrade_from_nothing_matches_the_tables_exactly(db_url):
    MetadataStore(db_url).migrate()
    assert _diffs(db_url) == []
    assert migrate.current_revision(db_url) == migrate.head_revision()


def test_version_table_is_druidflows_own(db_url):
    MetadataStore(db_url).migrate()
    names = sa.inspect(sa.create_engine(db_url)).get_table_names()
    assert migrate.VERSION_TABLE == "druidflow_alembic_version"
    assert "druidflow_alembic_version" in names
    assert "alembic_version" not in names
    assert set(metadata.tables) <= set(names)


def test_migrate_twice_is_a_noop_and_downgrade_removes_every_table(db_url):
    store = MetadataStore(db_url)
    store.migrate()
    store.migrate()
    assert _diffs(db_url) == []
    migrate.downgrade(db_url)
    names = set(sa.inspect(sa.create_engine(db_url)).get_table_names())
    assert not names & set(metadata.tables)
    store.migrate()
    assert _diffs(db_url) == []


def test_other_tables_in_the_same_database_are_left_alone(db_url):
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE dag_run (id INTEGER PRIMARY KEY)"))
    MetadataStore(db_url).migrate()
    assert _diffs(db_url) == []
    assert "dag_run" in sa.inspect(engine).get_table_names()


def test_concurrent_migrations_do_not_collide(db_url):
    errors: list[BaseException] = []

    def run() -> None:
        try:
            MetadataStore(db_url).migrate()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _diffs(db_url) == []


def test_using_the_store_before_migrating_says_what_to_do(db_url):
    with pytest.raises(MetadataError, match="migrate"):
        MetadataStore(db_url).used_segments("wiki")
    with pytest.raises(MetadataError, match="migrate"):
        MetadataStore(db_url).insert_task("t", "index", "wiki", "t", {})


def test_head_constant_is_alembics_head():
    assert migrate.HEAD_REVISION == migrate.head_revision()


def test_migrate_at_head_loads_no_alembic(db_url):
    """A database already at head is recognised with one query: the CLI's every start pays no Alembic import."""
    import subprocess
    import sys

    MetadataStore(db_url).migrate()
    assert migrate.is_at_head(db_url)
    code = (
        "import sys; from druidflow.metadata.store import MetadataStore; "
        f"MetadataStore({db_url!r}).migrate(); "
        "print(sorted(m for m in sys.modules if m == 'alembic' or m.startswith('alembic.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_migrate_below_head_still_upgrades(db_url):
    MetadataStore(db_url).migrate()
    migrate.downgrade(db_url)
    assert not migrate.is_at_head(db_url)
    MetadataStore(db_url).migrate()
    assert migrate.is_at_head(db_url) and _diffs(db_url) == []
