"""Deleting a kill batch's segment files from deep storage: S3 objects in DeleteObjects requests, other storages
file by file, a few requests at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Optional

from druidflow.exceptions import StorageError
from druidflow.storage import DeepStorage

#: Keys per S3 DeleteObjects request (the API's maximum).
S3_DELETE_KEYS_PER_REQUEST = 1000
#: File deletes (or S3 delete requests) of one batch running at once.
DELETE_WORKERS = 8


def has_file(load_path: str, load_spec: dict[str, Any]) -> bool:
    """Whether the row points at a physical file (tombstones and rows without a loadSpec do not)."""
    return bool(load_path) and bool(load_spec) and load_spec.get("type") != "tombstone"


def delete_files(
    storage: DeepStorage,
    files: dict[str, dict[str, Any]],
    on_deleted: Optional[Callable[[str], None]] = None,
    *,
    workers: int = DELETE_WORKERS,
) -> int:
    """Delete ``files`` (load path -> loadSpec); a missing file counts as deleted. Returns how many.

    S3 objects go in DeleteObjects requests of up to :data:`S3_DELETE_KEYS_PER_REQUEST` keys; other storages
    delete one file at a time (removing the directories left empty), in up to ``workers`` runs of neighbouring
    files. Up to ``workers`` requests or runs go at once (they wait on the filesystem or the network, not on
    Python). ``on_deleted(path)`` is called, in the calling thread, once a file is known to be gone; if it (or a
    delete) raises, what has not started yet is cancelled.
    """
    from druidflow.storage.s3 import S3DeepStorage

    jobs: list[tuple[list[str], Callable[[], Any]]] = []
    s3_keys: dict[str, list[tuple[str, str]]] = {}
    singles: list[str] = []
    for path in sorted(files):
        spec = files[path]
        s3 = isinstance(storage, S3DeepStorage) and spec.get("type") in ("s3", "s3_zip")
        if s3 and spec.get("bucket") and spec.get("key"):
            s3_keys.setdefault(str(spec["bucket"]), []).append((path, str(spec["key"])))
        else:
            singles.append(path)
    # One job per run of neighbouring files (siblings share directories), at most `workers` jobs.
    per_job = max(1, -(-len(singles) // max(1, workers)))
    for i in range(0, len(singles), per_job):
        run_paths = singles[i : i + per_job]
        jobs.append((run_paths, partial(_delete_each, storage, files, run_paths)))
    for bucket, items in s3_keys.items():
        for i in range(0, len(items), S3_DELETE_KEYS_PER_REQUEST):
            chunk = items[i : i + S3_DELETE_KEYS_PER_REQUEST]
            keys = [key for _, key in chunk]
            paths = [path for path, _ in chunk]
            jobs.append((paths, partial(_delete_s3_objects, storage, bucket, keys)))

    done = 0

    def finished(paths: list[str]) -> None:
        nonlocal done
        for path in paths:
            done += 1
            if on_deleted is not None:
                on_deleted(path)

    if workers <= 1 or len(jobs) <= 1:
        for paths, job in jobs:
            job()
            finished(paths)
        return done
    from concurrent.futures import ThreadPoolExecutor, as_completed

    pool = ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="druidflow-kill-delete")
    try:
        futures = {pool.submit(job): paths for paths, job in jobs}
        for future in as_completed(futures):
            future.result()
            finished(futures[future])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return done


def _delete_each(storage: DeepStorage, files: dict[str, dict[str, Any]], paths: Sequence[str]) -> None:
    for path in paths:
        storage.delete(files[path])


def _delete_s3_objects(storage: Any, bucket: str, keys: list[str]) -> None:
    try:
        response = storage.client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
        )
    except Exception as exc:
        raise StorageError(f"could not delete {len(keys)} object(s) from s3://{bucket}: {exc}") from exc
    errors = [e for e in response.get("Errors", ()) if e.get("Code") != "NoSuchKey"]
    if errors:
        first = errors[0]
        raise StorageError(
            f"could not delete {len(errors)} of {len(keys)} object(s) from s3://{bucket}, e.g. "
            f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
        )
