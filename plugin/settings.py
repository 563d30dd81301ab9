"""Where Druidflow keeps things when nobody says otherwise: one place, read from the environment.

``DRUIDFLOW_METADATA_URL`` (an SQLAlchemy URL), ``DRUIDFLOW_DEEP_STORAGE`` (a path or an ``s3://`` URI) and
``DRUIDFLOW_WORK_DIR`` (local scratch space for intermediate persists). The defaults put everything under
``./var/druidflow`` so that a fresh clone works with no configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = Path("var") / "druidflow"


def metadata_url() -> str:
    url = os.environ.get("DRUIDFLOW_METADATA_URL")
    if url:
        return url
    DEFAULT_HOME.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(DEFAULT_HOME / 'metadata.db').resolve()}"


def deep_storage() -> str:
    return os.environ.get("DRUIDFLOW_DEEP_STORAGE") or str((DEFAULT_HOME / "deep-storage").resolve())


def work_dir() -> Path:
    return Path(os.environ.get("DRUIDFLOW_WORK_DIR") or (DEFAULT_HOME / "work")).resolve()
