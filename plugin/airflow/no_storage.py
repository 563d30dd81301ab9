"""Deep storage for API-server routes that read the metadata DB only: any use of it is a bug, said loudly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, NoReturn, Optional

from druidflow.storage.base import DeepStorage, LoadSpec


class NoDeepStorage(DeepStorage):
    """The ``storage`` of a :class:`~druidflow.tasks.runtime.Runtime` whose work never touches deep storage (a
    dry-run kill preview, supervisor state): every method, and any attribute such as ``uri``, raises
    ``RuntimeError`` naming ``who`` and what was asked for."""

    def __init__(self, who: str) -> None:
        self._who = who

    def _refuse(self, name: str) -> NoReturn:
        raise RuntimeError(f"{self._who} must not touch deep storage (asked for {name!r})")

    def __getattr__(self, name: str) -> Any:  # ``uri`` and anything else not on the interface
        if name.startswith("__") or name == "_who":  # copy/pickle probes, and before __init__ ran
            raise AttributeError(name)
        self._refuse(name)

    def push(self, local_file: Path, key: str) -> LoadSpec:
        self._refuse("push")

    def open_local(self, load_spec: LoadSpec) -> AbstractContextManager[Path]:
        self._refuse("open_local")

    def exists(self, load_spec: LoadSpec) -> bool:
        self._refuse("exists")

    def delete(self, load_spec: LoadSpec) -> bool:
        self._refuse("delete")

    def list_keys(self, prefix: str = "") -> Iterator[tuple[str, int, LoadSpec]]:
        self._refuse("list_keys")

    def modified_ms(self, load_spec: LoadSpec) -> Optional[int]:
        self._refuse("modified_ms")

    def load_path(self, load_spec: LoadSpec) -> str:
        self._refuse("load_path")

    def load_spec_for(self, key: str) -> LoadSpec:
        self._refuse("load_spec_for")
