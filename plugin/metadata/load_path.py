"""The ``load_path`` column: one string per physical file, derived from a segment's ``loadSpec``.

Two segments share a file exactly when their load paths are equal, which is how kill knows a file is still
needed by another (used) segment. The strings match :meth:`druidflow.storage.base.DeepStorage.load_path`.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

_S3_TYPES = ("s3", "s3_zip")


def load_path(load_spec: dict[str, Any]) -> str:
    """``/abs/path`` for local files, ``s3://bucket/key`` for S3, ``gs://``/``hdfs`` paths likewise; any other
    loadSpec is named by its canonical JSON (so that equal loadSpecs still compare equal)."""
    if not load_spec:
        return ""
    kind = load_spec.get("type")
    if kind == "local" and load_spec.get("path"):
        return os.path.abspath(str(load_spec["path"]))
    if kind in _S3_TYPES and load_spec.get("bucket") and load_spec.get("key"):
        return f"s3://{load_spec['bucket']}/{load_spec['key']}"
    if kind == "google" and load_spec.get("bucket") and load_spec.get("path"):
        return f"gs://{load_spec['bucket']}/{load_spec['path']}"
    if kind == "hdfs" and load_spec.get("path"):
        return str(load_spec["path"])
    text = json.dumps(load_spec, sort_keys=True, separators=(",", ":"))
    # The column holds 1024 characters; a longer loadSpec is named by its digest instead.
    return text if len(text) <= 1024 else "sha1:" + hashlib.sha1(text.encode()).hexdigest()
