"""Deep storage in an S3 bucket (AWS or any S3-compatible server), through boto3."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional, TypedDict

from druidflow.exceptions import SegmentFileExistsError, SegmentNotFoundError, StorageError
from druidflow.storage.base import DeepStorage, LoadSpec, check_key
from druidflow.storage.s3_client import is_not_found, make_s3_client


class _ClientOptions(TypedDict):
    """The :func:`make_s3_client` options a storage keeps to rebuild its client after unpickling."""

    endpoint_url: Optional[str]
    region_name: Optional[str]
    aws_access_key_id: Optional[str]
    aws_secret_access_key: Optional[str]
    aws_session_token: Optional[str]
    addressing_style: Optional[str]


_LOAD_SPEC_TYPES = ("s3", "s3_zip")

# Files up to this size go up in one conditional PUT; larger ones in a multipart upload (boto3's threshold).
SINGLE_PUT_MAX_BYTES = 8 * 1024 * 1024


class S3DeepStorage(DeepStorage):
    """Objects under ``s3://<bucket>/<prefix>/``; loadSpec ``{"type": "s3", "bucket": B, "key": K}``.

    A push is one PUT, or a multipart upload for large files; either becomes visible only when complete, so
    a reader never sees a partial object. Pushes are create-only: a PUT carries ``If-None-Match: *`` (the server
    refuses to replace an object), a multipart upload first checks the key is free (writers give every push
    attempt its own key, so the check cannot race with another writer). Druid's own ``s3_zip`` loadSpecs are understood by
    :meth:`exists`, :meth:`delete` and :meth:`load_path` (a kill can remove them).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: Optional[str] = None,
        region_name: Optional[str] = None,
        aws_access_key_id: Optional[str] = None,
        aws_secret_access_key: Optional[str] = None,
        aws_session_token: Optional[str] = None,
        addressing_style: Optional[str] = None,
        client: Any = None,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 deep storage needs a bucket")
        if client is None:
            from druidflow.storage.s3_client import require_boto3

            require_boto3()  # fail when configured, not at the first segment push
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._options: _ClientOptions = {
            "endpoint_url": endpoint_url,
            "region_name": region_name,
            "aws_access_key_id": aws_access_key_id,
            "aws_secret_access_key": aws_secret_access_key,
            "aws_session_token": aws_session_token,
            "addressing_style": addressing_style,
        }
        self._client = client

    def __repr__(self) -> str:
        return f"S3DeepStorage({self.uri!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_client"] = None  # boto3 clients do not pickle; rebuild in the other process
        return state

    @property
    def client(self) -> Any:
        """The boto3 S3 client (built on first use)."""
        if self._client is None:
            self._client = make_s3_client(**self._options)
        return self._client

    # -- writing --------------------------------------------------------------------------------------------

    def push(self, local_file: Path, key: str) -> LoadSpec:
        local_file = Path(local_file)
        if not local_file.is_file():
            raise FileNotFoundError(f"cannot push {local_file}: no such file")
        full_key = self._full_key(key)
        load_spec = {"type": "s3", "bucket": self.bucket, "key": full_key}
        exists = SegmentFileExistsError(
            f"refusing to push to s3://{self.bucket}/{full_key}: an object is already there, and deep-storage files "
            "are write-once"
        )
        try:
            if local_file.stat().st_size <= SINGLE_PUT_MAX_BYTES:
                with open(local_file, "rb") as body:
                    self.client.put_object(Bucket=self.bucket, Key=full_key, Body=body, IfNoneMatch="*")
            else:
                if self.exists(load_spec):
                    raise exists
                self.client.upload_file(str(local_file), self.bucket, full_key)
        except SegmentFileExistsError:
            raise
        except Exception as exc:
            if _status(exc) == 412 or _error_code(exc) == "PreconditionFailed":
                raise exists from None
            raise StorageError(f"could not push {local_file} to s3://{self.bucket}/{full_key}: {exc}") from exc
        return load_spec

    # -- reading ----------------------------------------------------------------------------------------------

    def load_spec_for(self, key: str) -> LoadSpec:
        return {"type": "s3", "bucket": self.bucket, "key": self._full_key(key)}

    @contextmanager
    def open_local(self, load_spec: LoadSpec) -> Iterator[Path]:
        bucket, key = self._location(load_spec)
        tmp_dir = Path(tempfile.mkdtemp(prefix="druidflow-s3-"))
        try:
            path = tmp_dir / (key.rsplit("/", 1)[-1] or "object")
            try:
                self.client.download_file(bucket, key, str(path))
            except Exception as exc:
                if is_not_found(exc) or _is_404(exc):
                    raise SegmentNotFoundError(f"segment file s3://{bucket}/{key} does not exist") from exc
                raise StorageError(f"could not download s3://{bucket}/{key}: {exc}") from exc
            yield path
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)

    def exists(self, load_spec: LoadSpec) -> bool:
        bucket, key = self._location(load_spec)
        try:
            self.client.head_object(Bucket=bucket, Key=key)
            return True
        except Exception as exc:
            if is_not_found(exc) or _is_404(exc):
                return False
            raise StorageError(f"could not check s3://{bucket}/{key}: {exc}") from exc

    def modified_ms(self, load_spec: LoadSpec) -> Optional[int]:
        bucket, key = self._location(load_spec)
        try:
            head = self.client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if is_not_found(exc) or _is_404(exc):
                return None
            raise StorageError(f"could not check s3://{bucket}/{key}: {exc}") from exc
        modified = head.get("LastModified")
        return int(modified.timestamp() * 1000) if modified is not None else None

    def load_path(self, load_spec: LoadSpec) -> str:
        bucket, key = self._location(load_spec)
        return f"s3://{bucket}/{key}"

    def list_keys(self, prefix: str = "") -> Iterator[tuple[str, int, LoadSpec]]:
        base = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base + prefix)
            for page in pages:
                for obj in page.get("Contents", ()):
                    full_key = obj["Key"]
                    if full_key.endswith("/"):
                        continue  # a "directory" marker, not a file
                    yield full_key[len(base) :], int(obj["Size"]), {"type": "s3", "bucket": self.bucket, "key": full_key}
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"could not list s3://{self.bucket}/{base}{prefix}: {exc}") from exc

    # -- deleting ---------------------------------------------------------------------------------------------

    def delete(self, load_spec: LoadSpec) -> bool:
        # S3 has no directories, so there are no empty parents to remove; deleting a missing key succeeds.
        bucket, key = self._location(load_spec)
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except Exception as exc:
            raise StorageError(f"could not delete s3://{bucket}/{key}: {exc}") from exc
        return True

    # -- helpers ----------------------------------------------------------------------------------------------

    def _full_key(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _location(self, load_spec: LoadSpec) -> tuple[str, str]:
        if (
            not isinstance(load_spec, dict)
            or load_spec.get("type") not in _LOAD_SPEC_TYPES
            or not load_spec.get("bucket")
            or not load_spec.get("key")
        ):
            raise SegmentNotFoundError(f"loadSpec {load_spec!r} is not an S3 loadSpec; this deep storage is {self.uri}")
        return str(load_spec["bucket"]), str(load_spec["key"])


def _status(exc: BaseException) -> object:
    response = getattr(exc, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _error_code(exc: BaseException) -> object:
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code")


def _is_404(exc: BaseException) -> bool:
    return _status(exc) == 404
