"""The connection handling every part of :class:`~druidflow.metadata.store.MetadataStore` shares.

Every write is one transaction; a method given ``conn`` (the lockbox's critical-section connection) runs inside
it and leaves the commit to the caller.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Optional, Union

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from druidflow.exceptions import MetadataError
from druidflow.metadata import migrate
from druidflow.metadata.engine import DEFAULT_URL, make_engine


class StoreBase:
    """An engine, and the transaction and error plumbing of the store's methods."""

    def __init__(self, url_or_engine: Union[str, Engine] = DEFAULT_URL) -> None:
        self.engine: Engine = make_engine(url_or_engine)

    def __repr__(self) -> str:
        return f"MetadataStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def migrate(self) -> None:
        """Create or upgrade Druidflow's tables (Alembic ``upgrade head``; version table ``druidflow_alembic_version``)."""
        migrate.upgrade(self.engine)

    @contextmanager
    def _write(self, conn: Optional[Connection]) -> Iterator[Connection]:
        with self._schema_errors():
            if conn is not None:
                yield conn
            else:
                with self.engine.begin() as c:
                    yield c

    @contextmanager
    def _read(self, conn: Optional[Connection]) -> Iterator[Connection]:
        with self._schema_errors():
            if conn is not None:
                yield conn
            else:
                with self.engine.connect() as c:
                    yield c

    @contextmanager
    def _schema_errors(self) -> Iterator[None]:
        """Turn "no such table" into an error that says what to do."""
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
            text = str(exc.orig)
            if "druidflow_" in text and ("no such table" in text or "does not exist" in text):
                raise MetadataError(
                    f"Druidflow's tables are missing in {self!r} ({text.splitlines()[0]}): create them with "
                    "MetadataStore(url).migrate(), or `airflow db migrate` with the druidflow provider installed"
                ) from exc
            raise
