"""Building a boto3 S3 client that works against AWS and against S3-compatible servers alike.

Shared by S3 deep storage and the ``s3`` input source. boto3 is imported here, lazily, so that nothing else
pays for it unless S3 is actually used.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Optional

from druidflow.exceptions import MissingExtraError

ENDPOINT_ENV = "DRUIDFLOW_S3_ENDPOINT_URL"


def require_boto3() -> None:
    """Raise :class:`MissingExtraError` naming the ``s3`` extra when boto3 is not installed."""
    try:
        import boto3  # noqa: F401
        import botocore  # noqa: F401
    except ImportError:
        raise MissingExtraError("s3:// URIs need boto3, which is not installed: pip install 'druidflow[s3]'") from None

# Building a client loads botocore's service models (a few hundred ms); clients are thread-safe, so the same
# settings share one. Assumed-role clients are not cached: their credentials expire.
_CLIENTS: dict[tuple[Any, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def make_s3_client(
    *,
    endpoint_url: Optional[str] = None,
    region_name: Optional[str] = None,
    aws_access_key_id: Optional[str] = None,
    aws_secret_access_key: Optional[str] = None,
    aws_session_token: Optional[str] = None,
    addressing_style: Optional[str] = None,
    proxies: Optional[dict[str, str]] = None,
    assume_role_arn: Optional[str] = None,
    assume_role_external_id: Optional[str] = None,
) -> Any:
    """A boto3 S3 client.

    Unset options fall back to the environment: ``DRUIDFLOW_S3_ENDPOINT_URL`` for the endpoint, then boto3's
    own chain (``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ``AWS_REGION``/``AWS_DEFAULT_REGION``, profiles,
    instance roles). With a custom endpoint and no region, ``us-east-1`` is used, which S3-compatible servers
    accept. Path-style addressing is the default with a custom endpoint (most compatible servers need it).
    """
    require_boto3()
    import boto3
    from botocore.config import Config

    endpoint_url = endpoint_url or os.environ.get(ENDPOINT_ENV) or None
    region_name = region_name or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region_name is None and endpoint_url:
        region_name = "us-east-1"
    if addressing_style is None and endpoint_url:
        addressing_style = "path"
    cache_key = (
        endpoint_url, region_name, aws_access_key_id, aws_secret_access_key, aws_session_token, addressing_style,
        tuple(sorted((proxies or {}).items())), os.getpid(),
    )
    if not assume_role_arn:
        with _CLIENTS_LOCK:
            cached = _CLIENTS.get(cache_key)
        if cached is not None:
            return cached
    config = Config(
        s3={"addressing_style": addressing_style} if addressing_style else None,
        proxies=proxies,
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
    )
    session = boto3.session.Session(
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
        aws_session_token=aws_session_token,
        region_name=region_name,
    )
    if assume_role_arn:
        sts = session.client("sts", region_name=region_name, endpoint_url=os.environ.get("DRUIDFLOW_STS_ENDPOINT_URL"))
        kwargs: dict[str, Any] = {"RoleArn": assume_role_arn, "RoleSessionName": "druidflow"}
        if assume_role_external_id:
            kwargs["ExternalId"] = assume_role_external_id
        creds = sts.assume_role(**kwargs)["Credentials"]
        session = boto3.session.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=region_name,
        )
    client = session.client("s3", endpoint_url=endpoint_url, config=config)
    if not assume_role_arn:
        with _CLIENTS_LOCK:
            client = _CLIENTS.setdefault(cache_key, client)
    return client


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ``ClientError`` (``NoSuchKey``, ``404``, ...), or ``""``."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def is_not_found(exc: BaseException) -> bool:
    """Whether a botocore error means the object (or bucket) does not exist."""
    return error_code(exc) in {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")`` (also ``s3a://`` and ``s3n://``)."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() not in ("s3", "s3a", "s3n"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"s3 URI has no bucket: {uri!r}")
    return bucket, key
