"""Which files an ``index_hadoop`` task reads: its ``inputSpec`` resolved into an input source, as Hadoop would.

* ``static``: each comma-separated path is a file, a directory (its files, not recursively, without the hidden
  ``_``/``.`` ones, as Hadoop's ``FileInputFormat`` lists them) or a Hadoop glob (``*`` and ``?`` within one path
  level, ``[ab]``, ``{a,b}``); a path that matches nothing fails the task, as Hadoop fails the job.
* ``granularity``: for every ``dataGranularity`` bucket of the task's intervals, the directory
  ``inputPath/<bucket start printed with pathFormat>`` (skipped when absent), listed recursively, keeping the files
  whose full path matches ``filePattern`` (a whole-string regular expression, tried on the path as written and in
  Hadoop's ``file:`` form).

Local paths (plain or ``file:``) become a ``local`` input source with the files listed; ``s3://`` (``s3a``, ``s3n``)
paths an ``s3`` one: objects by URI, or one prefix (a path ending in ``/``) or glob.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from druidflow.exceptions import InputError, SpecError
from druidflow.inputs.sources import java_glob
from druidflow.specs.hadoop_task import GranularityPathSpec, HadoopIndexTask, StaticPathSpec
from druidflow.specs.io import LocalInputSource, S3InputSource
from druidflow.specs.timestamp import joda_tokens

_GLOB = re.compile(r"[*?\[{]")
_S3 = ("s3://", "s3a://", "s3n://")


def resolve_input(task: HadoopIndexTask) -> Any:
    """The input source of ``task``'s files, listed now; :class:`InputError` when a path matches nothing."""
    spec = task.spec.io_config.input_spec
    where = "spec.ioConfig.inputSpec"
    if isinstance(spec, StaticPathSpec):
        paths = spec.path_list
        if any(p.startswith(_S3) for p in paths):
            return _s3_source(paths, f"{where}.paths")
        files: list[str] = []
        for path in paths:
            files.extend(_local_files(path, f"{where}.paths"))
        return LocalInputSource(files=list(dict.fromkeys(files)))
    return _granularity_source(task, spec, where)


def _local(path: str) -> str:
    return path[len("file:"):] if path.startswith("file:") else path


def _local_files(path: str, where: str) -> list[str]:
    plain = _local(path)
    glob = _GLOB.search(plain)
    if glob is None:
        p = Path(plain)
        if p.is_file():
            return [str(p)]
        if p.is_dir():
            return sorted(str(c) for c in p.iterdir() if c.is_file() and not c.name.startswith(("_", ".")))
        raise InputError(f"{where}: input path does not exist: {path}")
    base = Path(plain[: glob.start()].rsplit("/", 1)[0] or "/")
    matcher = java_glob(plain)
    found = []
    for root, _dirs, names in os.walk(base):
        for name in names:
            full = os.path.join(root, name)
            if matcher.fullmatch(full):
                found.append(full)
    if not found:
        raise InputError(f"{where}: input pattern {path} matches 0 files")
    return sorted(found)


def _s3_source(paths: list[str], where: str) -> S3InputSource:
    if not all(p.startswith(_S3) for p in paths):
        raise SpecError(where, ",".join(paths), "mixes s3:// and local paths; one task reads from one file system")
    plain = [p for p in paths if not _GLOB.search(p) and not p.endswith("/")]
    if len(plain) == len(paths):
        return S3InputSource(uris=paths)
    if len(paths) > 1:
        raise SpecError(where, ",".join(paths), "on S3, give object paths, or a single prefix (ending in /) or glob")
    path = paths[0]
    if _GLOB.search(path) is None:
        return S3InputSource(prefixes=[path])
    scheme, rest = path.split("://", 1)
    bucket, key = rest.split("/", 1) if "/" in rest else (rest, "")
    glob = _GLOB.search(key)
    head = key[: glob.start()] if glob is not None else key
    prefix = head.rsplit("/", 1)[0] if "/" in head else ""
    return S3InputSource(prefixes=[f"{scheme}://{bucket}/{prefix + '/' if prefix else ''}"], object_glob=key)


def print_joda(ms: int, pattern: str) -> str:
    """``ms`` (UTC) printed with the Joda pattern (the subset :func:`~druidflow.specs.timestamp.joda_tokens` reads)."""
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return "".join(text if kind == "lit" else moment.strftime(text) for kind, text in joda_tokens(pattern))


def granularity_dirs(task: HadoopIndexTask, spec: GranularityPathSpec) -> list[str]:
    """The directories a granularity inputSpec reads, one per ``dataGranularity`` bucket of the intervals (each
    bucket trimmed to its interval, as Druid's ``GranularityPathSpec`` does, before its start is printed)."""
    intervals = task.spec.data_schema.granularity_spec.input_intervals() or []
    starts: list[int] = []
    for interval in intervals:
        for bucket in spec.data_granularity.iter_buckets(interval):
            starts.append(max(bucket.start, interval.start))
    base = spec.input_path.rstrip("/")
    return list(dict.fromkeys(f"{base}/{print_joda(s, spec.path_format)}" for s in sorted(set(starts))))


def _granularity_source(task: HadoopIndexTask, spec: GranularityPathSpec, where: str) -> Any:
    pattern = re.compile(spec.file_pattern)
    dirs = granularity_dirs(task, spec)
    if any(d.startswith(_S3) for d in dirs):
        raise SpecError(f"{where}.inputPath", spec.input_path, "a granularity inputSpec reads local directories; list S3 objects with a static inputSpec")
    files = []
    for directory in dirs:
        root = _local(directory)
        if not os.path.isdir(root):
            continue
        for parent, _dirs, names in os.walk(root):
            for name in sorted(names):
                full = os.path.join(parent, name)
                if pattern.fullmatch(full) or pattern.fullmatch(f"file:{full}"):
                    files.append(full)
    if not files:
        raise InputError(
            f"{where}: no file under {spec.input_path} for the intervals matches filePattern {spec.file_pattern!r} "
            f"(looked in {len(dirs)} directories)"
        )
    return LocalInputSource(files=sorted(files))
