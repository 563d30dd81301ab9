"""Deep storage on the local (or a mounted shared) filesystem, laid out as Druid's local deep storage is."""

from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Optional

from druidflow.exceptions import SegmentFileExistsError, SegmentNotFoundError, StorageError
from druidflow.storage.base import DeepStorage, LoadSpec, check_key

INTERMEDIATE_DIR = "intermediate_pushes"


class LocalDeepStorage(DeepStorage):
    """Files under ``root``; loadSpec ``{"type": "local", "path": "<absolute path of the file>"}``.

    A push copies the file to ``<root>/intermediate_pushes/<uuid>`` and hard-links it into place, so the final
    path holds either nothing or the whole file, even if the process dies mid-way (a dead push leaves only a
    temporary file, which :meth:`clean_intermediate_pushes` removes). The link is create-only: a push never
    replaces a file that is already there (published files are write-once).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.uri = str(self.root)

    def __repr__(self) -> str:
        return f"LocalDeepStorage({self.uri!r})"

    # -- writing --------------------------------------------------------------------------------------------

    def push(self, local_file: Path, key: str) -> LoadSpec:
        key = self._check_key(key)
        local_file = Path(local_file)
        if not local_file.is_file():
            raise FileNotFoundError(f"cannot push {local_file}: no such file")
        dest = self.root / key
        tmp_dir = self.root / INTERMEDIATE_DIR
        tmp = tmp_dir / uuid.uuid4().hex
        try:
            tmp_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local_file, tmp)  # sendfile/copy_file_range where the OS has them
            with open(tmp, "rb+") as out:
                os.fsync(out.fileno())
            self._rename_into_place(tmp, dest)
            _fsync_dir(dest.parent)
        except SegmentFileExistsError:
            raise
        except OSError as exc:
            raise StorageError(f"could not push {local_file} to {dest}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return self.load_spec_for(key)

    @staticmethod
    def _rename_into_place(tmp: Path, dest: Path) -> None:
        # A concurrent kill may remove an empty version/interval directory between our mkdir and the link;
        # recreate it and try again rather than fail the push.
        for attempt in range(5):
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                _link_exclusive(tmp, dest)
                return
            except FileExistsError:
                raise SegmentFileExistsError(
                    f"refusing to push to {dest}: a file is already there, and deep-storage files are write-once"
                ) from None
            except FileNotFoundError:
                if not tmp.exists() or attempt == 4:
                    raise

    def clean_intermediate_pushes(self, older_than_seconds: float = 3600.0) -> int:
        """Remove temporary files of pushes that died more than ``older_than_seconds`` ago; returns how many."""
        tmp_dir = self.root / INTERMEDIATE_DIR
        if not tmp_dir.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        for entry in tmp_dir.iterdir():
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed

    # -- reading ----------------------------------------------------------------------------------------------

    def load_spec_for(self, key: str) -> LoadSpec:
        return {"type": "local", "path": str(self.root / self._check_key(key))}

    def open_local(self, load_spec: LoadSpec) -> AbstractContextManager[Path]:
        path = self._path(load_spec)
        if not path.is_file():
            raise SegmentNotFoundError(f"segment file {path} does not exist (loadSpec {load_spec})")
        return nullcontext(path)

    def exists(self, load_spec: LoadSpec) -> bool:
        return self._path(load_spec).is_file()

    def modified_ms(self, load_spec: LoadSpec) -> Optional[int]:
        try:
            return int(self._path(load_spec).stat().st_mtime * 1000)
        except (FileNotFoundError, SegmentNotFoundError):
            return None

    def load_path(self, load_spec: LoadSpec) -> str:
        return str(self._path(load_spec))

    def list_keys(self, prefix: str = "") -> Iterator[tuple[str, int, LoadSpec]]:
        # Start at the deepest directory the prefix names, so listing one dataSource does not walk the others.
        base_rel = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base_rel if base_rel else self.root
        if not start.is_dir():
            return
        for path in self._walk_sorted(start):
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                try:
                    size = path.stat().st_size
                except FileNotFoundError:  # deleted while we were listing
                    continue
                yield key, size, {"type": "local", "path": str(path)}

    def _walk_sorted(self, directory: Path) -> Iterator[Path]:
        """Files below ``directory`` in lexicographic order of their keys, skipping unfinished pushes."""
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return
        # Sorting directories as "name/" gives exactly the order of the full keys.
        keyed = sorted(((e.name + "/" if e.is_dir(follow_symlinks=False) else e.name), e) for e in entries)
        for name, entry in keyed:
            if name.endswith("/"):
                if directory == self.root and entry.name == INTERMEDIATE_DIR:
                    continue
                yield from self._walk_sorted(Path(entry.path))
            elif entry.is_file():
                yield Path(entry.path)

    # -- deleting ---------------------------------------------------------------------------------------------

    def delete(self, load_spec: LoadSpec) -> bool:
        path = self._path(load_spec)
        try:
            path.unlink()
        except FileNotFoundError:
            pass  # already gone: counts as deleted
        except IsADirectoryError as exc:
            raise StorageError(f"refusing to delete {path}: it is a directory, not a segment file") from exc
        except OSError as exc:
            raise StorageError(f"could not delete {path}: {exc}") from exc
        self._remove_empty_parents(path)
        return True

    def _remove_empty_parents(self, path: Path) -> None:
        """rmdir the now-empty partition, version and interval directories; stop at the dataSource directory."""
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return  # outside our root: only the file itself is ours to delete
        if len(rel.parts) < 2:
            return
        datasource_dir = self.root / rel.parts[0]
        parent = path.parent
        while parent != datasource_dir and datasource_dir in parent.parents:
            try:
                parent.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    return
                raise StorageError(f"could not remove empty directory {parent}: {exc}") from exc
            parent = parent.parent

    # -- helpers ----------------------------------------------------------------------------------------------

    def _check_key(self, key: str) -> str:
        key = check_key(key)
        if key.split("/", 1)[0] == INTERMEDIATE_DIR:
            raise ValueError(f"invalid deep-storage key {key!r}: {INTERMEDIATE_DIR}/ is reserved")
        return key

    def _path(self, load_spec: LoadSpec) -> Path:
        if not isinstance(load_spec, dict) or load_spec.get("type") != "local" or not load_spec.get("path"):
            raise SegmentNotFoundError(
                f"loadSpec {load_spec!r} is not a local-file loadSpec; this deep storage is {self.uri}"
            )
        return Path(os.path.abspath(load_spec["path"]))


def _link_exclusive(tmp: Path, dest: Path) -> None:
    """Put ``tmp`` at ``dest`` atomically, failing with FileExistsError if ``dest`` exists.

    A hard link is atomic and create-only; where the filesystem has none, an exclusive create claims the name
    and the rename then replaces only our own empty placeholder.
    """
    try:
        os.link(tmp, dest)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.close(fd)
    os.replace(tmp, dest)


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
