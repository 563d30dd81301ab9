"""Input sources as lists of input objects (files, URIs, S3 objects), each openable as a byte stream.

Listing is separate from reading so that callers can see (and split) the work before reading any of it.
Compression is recognised by the file name, as Druid does: ``.gz``, ``.bz2``, ``.xz``, ``.zst``, ``.lz4``.
"""

from __future__ import annotations

import base64
import lzma
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import closing, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, Optional, TypeVar

import pyarrow as pa

from druidflow.exceptions import InputError
from druidflow.specs.io import (
    DruidInputSource,
    HttpInputSource,
    InlineInputSource,
    LocalInputSource,
    S3InputSource,
    resolve_password,
)

_ARROW_CODECS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd", ".lz4": "lz4"}
_UNSUPPORTED_CODECS = {".zip": "zip", ".sz": "snappy"}


_Stream = TypeVar("_Stream", bound="ReadOnlyStream")


class ReadOnlyStream:
    """A forward-only byte stream (``read`` only, never ``seek``) over an underlying one, which ``close`` closes:
    what the readers get from a counter, a decompressor or a byte range."""

    closed = False

    def read(self, n: int = -1) -> bytes:
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._close_underlying()

    def _close_underlying(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Stream) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CountingStream(ReadOnlyStream):
    """A read-only byte stream that counts what passes through it (the bytes read from the source)."""

    def __init__(self, raw: Any, underlying: Any = None) -> None:
        self.raw = raw
        self.underlying = underlying  # closed too: a decompressor may leave the stream it reads open
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.raw.read(n) if n is not None and n >= 0 else self.raw.read()
        self.count += len(data)
        return data

    def _close_underlying(self) -> None:
        for stream in (self.raw, self.underlying):
            close = getattr(stream, "close", None)
            if close is not None:
                close()


class InputObject(ABC):
    """One file-like piece of input: a local file, the inline data, a URI or an S3 object."""

    uri: str
    size: Optional[int] = None

    @abstractmethod
    def open_raw(self) -> BinaryIO:
        """A fresh stream of the stored bytes (still compressed, if the object is). Raises InputError."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    @property
    def compression(self) -> Optional[str]:
        """The codec the name implies, or None."""
        name = self.uri.rsplit("?", 1)[0].lower()
        for suffix, codec in _ARROW_CODECS.items():
            if name.endswith(suffix):
                return codec
        if name.endswith(".xz"):
            return "xz"
        for suffix, codec in _UNSUPPORTED_CODECS.items():
            if name.endswith(suffix):
                raise InputError(f"{self.uri}: {codec} compression is not supported (use gz, bz2, xz, zst or lz4)")
        return None

    def open_text_stream(self) -> tuple[Any, CountingStream]:
        """A decompressed byte stream (for CSV/TSV/JSON) and its counter of *decompressed* bytes: Druid's
        ``processedBytes`` counts what its entity's ``open()`` yields, which decompresses gz, bz2, xz, zst, lz4."""
        raw = self.open_raw()
        codec = self.compression
        if codec is None:
            counter = CountingStream(raw)
            return counter, counter
        if codec == "xz":
            decompressed: Any = lzma.open(raw, "rb")
        elif codec == "lz4":
            decompressed = _Lz4Stream(raw, self.uri)
        else:
            decompressed = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), codec)
        counter = CountingStream(decompressed, underlying=raw)
        return counter, counter

    @contextmanager
    def seekable_file(self) -> Iterator[Any]:
        """A seekable path of the (decompressed) bytes, for Parquet: downloaded and decompressed to a temporary file."""
        with tempfile.TemporaryDirectory(prefix="druidflow-input-") as tmp:
            path = Path(tmp) / "object"
            compressed = self.compression is not None
            stream, counter = self.open_text_stream() if compressed else (self.open_raw(), None)
            with closing(counter or stream), closing(stream), open(path, "wb") as out:
                try:
                    shutil.copyfileobj(stream, out, 8 << 20)
                except InputError:
                    raise
                except Exception as exc:
                    raise InputError(f"could not {'decompress' if compressed else 'download'} {self.uri}: {exc}") from exc
            # The decompressed size: what processedBytes counts.
            self.size = path.stat().st_size
            yield str(path)


class _Lz4Stream(ReadOnlyStream):
    """An LZ4-frame (``.lz4``, as Druid and the ``lz4`` tool write it) decompressing reader over a byte stream."""

    def __init__(self, raw: Any, uri: str) -> None:
        import lz4.frame

        self._file = lz4.frame.LZ4FrameFile(raw, "rb")
        self._uri = uri

    def read(self, n: int = -1) -> bytes:
        try:
            data: bytes = self._file.read(n)
        except RuntimeError as exc:  # lz4 reports corrupt or non-frame data as RuntimeError
            raise InputError(f"{self._uri} is not a valid LZ4 frame file: {exc}") from None
        return data

    def _close_underlying(self) -> None:
        self._file.close()


# ---------------------------------------------------------------------------------------------------------------
# local


class LocalFile(InputObject):
    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.uri = str(path)
        self.size = size

    def open_raw(self) -> BinaryIO:
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise InputError(f"cannot open input file {self.path}: {exc.strerror or exc}") from exc

    @contextmanager
    def seekable_file(self) -> Iterator[Any]:
        if self.compression is not None:
            with super().seekable_file() as path:
                yield path
        else:
            yield str(self.path)


def commons_io_wildcard(pattern: str) -> re.Pattern[str]:
    """A commons-io ``WildcardFileFilter`` pattern (``*`` any run, ``?`` one character, case-sensitive) as a regex."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


def list_local(source: LocalInputSource) -> list[InputObject]:
    """Files under baseDir whose name matches the filter (sorted by path), then ``files``; empty files skipped."""
    paths: list[Path] = []
    if source.base_dir is not None:
        base = Path(source.base_dir).expanduser().absolute()
        if not base.is_dir():
            raise InputError(f"local input baseDir {base} does not exist or is not a directory")
        wildcard = commons_io_wildcard(source.filter or "*")
        found = []
        for dirpath, _dirnames, filenames in os.walk(base, onerror=None):
            for name in filenames:
                if wildcard.fullmatch(name):
                    found.append(Path(dirpath) / name)
        if not found and not source.files:
            raise InputError(
                f"local input: no file under baseDir {base} matches filter {source.filter or '*'!r} "
                "(the filter is a wildcard on file names, searched recursively)"
            )
        paths.extend(sorted(found))
    for f in source.files or ():
        path = Path(f).expanduser().absolute()
        if not path.exists():
            raise InputError(f"local input file {path} does not exist")
        if not path.is_file():
            raise InputError(f"local input {path} is not a file")
        paths.append(path)
    objects: list[InputObject] = []
    seen: set[Path] = set()
    for path in paths:
        if path in seen:
            continue
        seen.add(path)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise InputError(f"cannot read local input file {path}: {exc.strerror or exc}") from exc
        if size > 0:
            objects.append(LocalFile(path, size))
    return objects


# ---------------------------------------------------------------------------------------------------------------
# inline


class InlineData(InputObject):
    def __init__(self, data: str) -> None:
        self.data = data.encode("utf-8")
        self.uri = "inline"
        self.size = len(self.data)

    def open_raw(self) -> BinaryIO:
        import io

        return io.BytesIO(self.data)

    @contextmanager
    def seekable_file(self) -> Iterator[Any]:
        yield pa.BufferReader(self.data)


# ---------------------------------------------------------------------------------------------------------------
# http


class HttpObject(InputObject):
    RETRIES = 3

    def __init__(self, uri: str, headers: dict[str, str]) -> None:
        self.uri = uri
        self.headers = headers

    def open_raw(self) -> BinaryIO:
        request = urllib.request.Request(self.uri, headers=self.headers)
        for attempt in range(self.RETRIES + 1):
            try:
                response = urllib.request.urlopen(request, timeout=60)
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code >= 500 and attempt < self.RETRIES:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise InputError(f"HTTP {exc.code} {exc.reason} for {self.uri}") from None
            except (urllib.error.URLError, OSError) as exc:
                if attempt < self.RETRIES:
                    time.sleep(0.5 * 2**attempt)
                    continue
                reason = getattr(exc, "reason", exc)
                raise InputError(f"cannot fetch {self.uri}: {reason}") from exc
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit():
                self.size = int(length)
            return response
        raise AssertionError("unreachable")  # pragma: no cover


def list_http(source: HttpInputSource) -> list[InputObject]:
    headers = dict(source.request_headers or {})
    if source.http_authentication_username is not None:
        password = resolve_password(source.http_authentication_password) or ""
        token = base64.b64encode(f"{source.http_authentication_username}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    return [HttpObject(uri, headers) for uri in source.uris]


# ---------------------------------------------------------------------------------------------------------------
# s3


@lru_cache(maxsize=256)
def java_glob(pattern: str) -> re.Pattern[str]:
    """A Java ``PathMatcher`` glob as a regex: ``*`` and ``?`` stay within one ``/`` level, ``**`` crosses levels,
    ``{a,b}`` alternates, ``[...]`` / ``[!...]`` are character classes, ``\\`` escapes."""
    out: list[str] = []
    i, n, in_group = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "{" and not in_group:
            out.append("(?:")
            in_group = True
        elif c == "}" and in_group:
            out.append(")")
            in_group = False
        elif c == "," and in_group:
            out.append("|")
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                raise InputError(f"objectGlob {pattern!r}: unclosed '['")
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    if in_group:
        raise InputError(f"objectGlob {pattern!r}: unclosed '{{'")
    return re.compile("".join(out), re.DOTALL)


class S3InputObject(InputObject):
    def __init__(self, client: Any, bucket: str, key: str, size: Optional[int] = None) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.uri = f"s3://{bucket}/{key}"
        self.size = size

    def open_raw(self) -> BinaryIO:
        from druidflow.storage.s3_client import error_code

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            code = error_code(exc)
            if code in ("NoSuchKey", "404", "NotFound"):
                raise InputError(f"S3 object {self.uri} does not exist") from None
            if code == "NoSuchBucket":
                raise InputError(f"S3 bucket {self.bucket!r} of {self.uri} does not exist") from None
            raise InputError(f"cannot read {self.uri}: {exc}") from exc
        self.size = int(response.get("ContentLength") or 0) or self.size
        return response["Body"]


def s3_client_for(source: S3InputSource) -> Any:
    """A boto3 client configured from the source's properties, endpoint, client and proxy configs."""
    from druidflow.storage.s3_client import make_s3_client

    props = source.properties
    endpoint = source.endpoint_config
    client_cfg = source.client_config
    endpoint_url = endpoint.url if endpoint else None
    if endpoint_url and "://" not in endpoint_url:
        protocol = (client_cfg.protocol if client_cfg and client_cfg.protocol else "https")
        endpoint_url = f"{protocol}://{endpoint_url}"
    proxies = None
    if source.proxy_config and source.proxy_config.host:
        proxy = source.proxy_config
        auth = ""
        if proxy.username:
            auth = f"{proxy.username}:{resolve_password(proxy.password) or ''}@"
        address = f"http://{auth}{proxy.host}" + (f":{proxy.port}" if proxy.port else "")
        proxies = {"http": address, "https": address}
    addressing = None
    if client_cfg and client_cfg.enable_path_style_access is not None:
        addressing = "path" if client_cfg.enable_path_style_access else "virtual"
    return make_s3_client(
        endpoint_url=endpoint_url,
        region_name=endpoint.signing_region if endpoint else None,
        aws_access_key_id=resolve_password(props.access_key_id) if props else None,
        aws_secret_access_key=resolve_password(props.secret_access_key) if props else None,
        aws_session_token=resolve_password(props.session_token) if props else None,
        addressing_style=addressing,
        proxies=proxies,
        assume_role_arn=props.assume_role_arn if props else None,
        assume_role_external_id=props.assume_role_external_id if props else None,
    )


def list_s3(source: S3InputSource) -> list[InputObject]:
    """The source's objects: the listed uris/objects, or every non-empty object under the prefixes."""
    from druidflow.storage.s3_client import error_code, split_s3_uri

    client = s3_client_for(source)
    glob = java_glob(source.object_glob) if source.object_glob else None
    objects: list[S3InputObject] = []
    if source.uris:
        for uri in source.uris:
            bucket, key = split_s3_uri(uri)
            objects.append(S3InputObject(client, bucket, key))
    elif source.objects:
        objects.extend(S3InputObject(client, o.bucket, o.path) for o in source.objects)
    else:
        for prefix_uri in source.prefixes or ():
            bucket, prefix = split_s3_uri(prefix_uri)
            try:
                pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for page in pages:
                    for obj in page.get("Contents", ()):
                        if obj["Key"].endswith("/") or int(obj["Size"]) == 0:
                            continue  # directory markers and empty objects are skipped when listing by prefix
                        objects.append(S3InputObject(client, bucket, obj["Key"], int(obj["Size"])))
            except Exception as exc:
                if error_code(exc) == "NoSuchBucket":
                    raise InputError(f"S3 bucket {bucket!r} of prefix {prefix_uri} does not exist") from None
                raise InputError(f"cannot list {prefix_uri}: {exc}") from exc
    listed: list[InputObject] = [o for o in objects if glob is None or glob.fullmatch(o.key)]
    return listed


# ---------------------------------------------------------------------------------------------------------------


def list_objects(source: Any) -> list[InputObject]:
    """The input objects of an input source, in reading order."""
    if isinstance(source, LocalInputSource):
        return list_local(source)
    if isinstance(source, InlineInputSource):
        return [InlineData(source.data)]
    if isinstance(source, HttpInputSource):
        return list_http(source)
    if isinstance(source, S3InputSource):
        return list_s3(source)
    if isinstance(source, DruidInputSource):
        raise InputError("the 'druid' input source re-reads segments; it is read by the engine, not as files")
    raise InputError(f"unsupported input source {type(source).__name__}")
