"""A metadata DB of a bench run's own, so runs never see each other's rows; and the command line of the benches
that take one URL."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def isolated(url: str, prefix: str = "druidflow_bench") -> Iterator[str]:
    """The URL itself for SQLite; on PostgreSQL a URL whose search_path is a fresh schema, dropped afterwards."""
    if not url.startswith("postgresql"):
        yield url
        return
    import sqlalchemy as sa

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main_over_url(run: Callable[[str], dict[str, Any]], argv: list[str]) -> int:
    """``python -m bench.<name> [URL]``: the figures of ``run`` on URL (default: a fresh SQLite file), one a line."""
    if argv:
        figures = run(argv[0])
    else:
        with tempfile.TemporaryDirectory(prefix="druidflow-bench-") as tmp:
            figures = run(f"sqlite:///{tmp}/metadata.db")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value:,}" if isinstance(value, (int, float)) else f"{key:<{width}}  {value}")
    return 0
