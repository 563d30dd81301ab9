"""Fixtures for the metadata store: a migrated store on each backend."""

from __future__ import annotations

import pytest

from druidflow.metadata.store import MetadataStore


@pytest.fixture
def store(db_url) -> MetadataStore:
    """A freshly migrated store, on SQLite and on PostgreSQL."""
    s = MetadataStore(db_url)
    s.migrate()
    yield s
    s.engine.dispose()
