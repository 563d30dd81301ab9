"""The deep-storage interface: where segment files live, addressed by Druid's ``loadSpec``."""

from __future__ import annotations

import posixpath
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Optional

LoadSpec = dict[str, Any]


class DeepStorage(ABC):
    """A place to push segment files to, read them back from, and delete them from.

    Files are addressed two ways: by *key* (a relative ``/``-separated path such as
    ``wiki/2024-01-01T00:00:00.000Z_2024-01-02T00:00:00.000Z/v1/0/segment.parquet``, normally
    ``druidflow.segments.ids.storage_dir(...) + "/<filename>"``), chosen by the writer; and by *loadSpec*, the
    JSON object stored in the segment's metadata that says where the file is. :meth:`push` turns the first into the
    second. Every write is atomic: a reader never sees a partial file at a key.
    """

    #: The URI or path this storage was created from; ``deep_storage_from_uri(storage.uri)`` recreates it.
    uri: str

    @abstractmethod
    def push(self, local_file: Path, key: str) -> LoadSpec:
        """Copy ``local_file`` to ``key`` atomically and return its loadSpec.

        Create-only: raises :class:`~druidflow.exceptions.SegmentFileExistsError` when a file is already at
        ``key`` (files are write-once; writers give every push attempt its own key)."""

    @abstractmethod
    def open_local(self, load_spec: LoadSpec) -> AbstractContextManager[Path]:
        """A context manager yielding a local path of the file (the file itself, or a temporary download removed
        on exit). Raises ``SegmentNotFoundError`` when the file does not exist."""

    @abstractmethod
    def exists(self, load_spec: LoadSpec) -> bool:
        """Whether the file the loadSpec names exists."""

    @abstractmethod
    def delete(self, load_spec: LoadSpec) -> bool:
        """Delete the file; then remove parent directories left empty, up to (not including) the dataSource's.

        Returns True once the file is gone, including when it was already missing (a retried kill must not fail
        on what it removed before). Failures raise ``StorageError``.
        """

    @abstractmethod
    def list_keys(self, prefix: str = "") -> Iterator[tuple[str, int, LoadSpec]]:
        """``(key, size, loadSpec)`` of every stored file whose key starts with ``prefix``, in key order.

        Temporary files of unfinished pushes are not listed."""

    def modified_ms(self, load_spec: LoadSpec) -> Optional[int]:
        """When the file was written (epoch ms, by the storage's own clock), or None if unknown or missing."""
        return None

    @abstractmethod
    def load_path(self, load_spec: LoadSpec) -> str:
        """A stable string naming the physical file: an absolute path, or ``s3://bucket/key``. Two segments share
        a file exactly when their load paths are equal."""

    @abstractmethod
    def load_spec_for(self, key: str) -> LoadSpec:
        """The loadSpec a push to ``key`` returns (without pushing anything)."""


def check_key(key: str) -> str:
    """A normalised, safe relative key; rejects absolute keys, ``..`` and empty components."""
    if not isinstance(key, str) or not key or key.startswith("/") or "\\" in key:
        raise ValueError(f"invalid deep-storage key {key!r}: expected a relative '/'-separated path")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid deep-storage key {key!r}: empty, '.' or '..' component")
    return posixpath.join(*parts)
