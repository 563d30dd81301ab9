"""Deep storage: where segment files live. One interface, chosen by URI scheme: a path or ``file://`` for the
local filesystem, ``s3://bucket/prefix`` for S3 and S3-compatible servers."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from druidflow.exceptions import SpecError
from druidflow.storage.base import DeepStorage, LoadSpec, check_key
from druidflow.storage.local import LocalDeepStorage
from druidflow.storage.s3 import S3DeepStorage
from druidflow.storage.s3_client import split_s3_uri

__all__ = ["DeepStorage", "LoadSpec", "LocalDeepStorage", "S3DeepStorage", "check_key", "deep_storage_from_uri"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def _local(uri: str, **_: Any) -> DeepStorage:
    if uri.lower().startswith("file://"):
        parsed = urlparse(uri)
        if parsed.netloc not in ("", "localhost"):
            raise SpecError("deepStorage", uri, "file:// URIs must name a local path (file:///abs/path)")
        uri = unquote(parsed.path)
    return LocalDeepStorage(uri)


def _s3(uri: str, **options: Any) -> DeepStorage:
    try:
        bucket, prefix = split_s3_uri(uri)
    except ValueError as exc:
        raise SpecError("deepStorage", uri, str(exc)) from None
    return S3DeepStorage(bucket, prefix, **{k: v for k, v in options.items() if v is not None})


_BY_SCHEME: dict[str, Callable[..., DeepStorage]] = {"file": _local, "s3": _s3, "s3a": _s3, "s3n": _s3}


def deep_storage_from_uri(uri_or_path: str | os.PathLike[str], **s3_options: Any) -> DeepStorage:
    """The deep storage a path or URI names.

    A plain path or ``file:///abs/path`` gives :class:`LocalDeepStorage`; ``s3://bucket/prefix`` gives
    :class:`S3DeepStorage`, built with ``s3_options`` (``endpoint_url``, ``region_name``, ``aws_access_key_id``,
    ``aws_secret_access_key``, ``aws_session_token``, ``addressing_style``); unset options come from
    ``DRUIDFLOW_S3_ENDPOINT_URL`` and boto3's usual ``AWS_*`` environment. ``s3_options`` are ignored for
    local storage.
    """
    if isinstance(uri_or_path, Path):
        return LocalDeepStorage(uri_or_path)
    text = os.fspath(uri_or_path).strip()
    if not text:
        raise SpecError("deepStorage", uri_or_path, "deep storage needs a path or an s3:// URI")
    match = _SCHEME.match(text)
    if match is None:
        return LocalDeepStorage(text)
    scheme = match.group(1).lower()
    factory = _BY_SCHEME.get(scheme)
    if factory is None:
        raise SpecError("deepStorage", text, f"unsupported scheme {scheme!r}: use a path, file:// or s3://")
    return factory(text, **s3_options)

