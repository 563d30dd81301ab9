"""The engine's handles on the outside world, bundled so every task step takes one argument for them."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from druidflow import settings
from druidflow.locks import TaskLockbox
from druidflow.metadata.engine import make_engine
from druidflow.metadata.store import MetadataStore
from druidflow.storage import DeepStorage, deep_storage_from_uri


@dataclass
class Runtime:
    """The metadata store, the lockbox (same database), deep storage, and local scratch space."""

    store: MetadataStore
    lockbox: TaskLockbox
    storage: DeepStorage
    work_dir: Path

    @classmethod
    def from_urls(
        cls,
        metadata_url: Optional[str] = None,
        deep_storage: Optional[str] = None,
        work_dir: Optional[Path | str] = None,
        *,
        migrate: bool = True,
        **s3_options: Any,
    ) -> Runtime:
        """Build a runtime; ``None`` means the default from :mod:`druidflow.settings` (env or ./var/druidflow)."""
        engine = make_engine(metadata_url or settings.metadata_url())
        store = MetadataStore(engine)
        if migrate:
            store.migrate()
        storage = deep_storage_from_uri(deep_storage or settings.deep_storage(), **s3_options)
        wd = Path(work_dir) if work_dir else settings.work_dir()
        wd.mkdir(parents=True, exist_ok=True)
        return cls(store=store, lockbox=TaskLockbox(engine), storage=storage, work_dir=wd)

    def scratch(self, prefix: str) -> Path:
        """A fresh private directory under the work dir (removed by the caller)."""
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.work_dir))
