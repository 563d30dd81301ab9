"""A real S3-compatible server for tests: moto in server mode, spoken to over HTTP on 127.0.0.1.

Use the session-scoped ``s3_server`` fixture::

    def test_something(s3_server):
        bucket = s3_server.make_bucket()            # a fresh, uniquely named bucket
        client = s3_server.client()                 # a boto3 client pointed at the server
        storage = deep_storage_from_uri(f"s3://{bucket}/segments", **s3_server.options)

Every test gets its own bucket, so the one server is shared by the whole session without interference.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest


@dataclass
class S3Server:
    """Where the server listens, the credentials it accepts, and helpers to use it."""

    endpoint_url: str
    access_key_id: str = "testing"
    secret_access_key: str = "testing"
    region: str = "us-east-1"
    _buckets: list[str] = field(default_factory=list)
    _client: Any = None

    @property
    def options(self) -> dict[str, Any]:
        """Keyword options for ``deep_storage_from_uri`` / ``make_s3_client``."""
        return {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
        }

    @property
    def input_source_config(self) -> dict[str, Any]:
        """The ``properties``/``endpointConfig``/``clientConfig`` of an s3 input source that reach this server."""
        return {
            "properties": {"accessKeyId": self.access_key_id, "secretAccessKey": self.secret_access_key},
            "endpointConfig": {"url": self.endpoint_url, "signingRegion": self.region},
            "clientConfig": {"enablePathStyleAccess": True},
        }

    def client(self) -> Any:
        """A boto3 S3 client for this server (one, shared)."""
        import boto3

        if self._client is None:
            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=self.secret_access_key,
            )
        return self._client

    def make_bucket(self, name: Optional[str] = None) -> str:
        """Create a bucket (a unique name unless one is given) and return its name."""
        name = name or f"test-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        self._buckets.append(name)
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 and a free port, for the whole test session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(endpoint_url=f"http://{host}:{port}")
    finally:
        server.stop()
