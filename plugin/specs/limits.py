"""Bounds a task spec must stay within, checked when it is parsed, before any lock is taken.

Each bound exists so that hostile or mistaken input fails with a field-named :class:`SpecError` instead of a
traceback, a hang or an overflow in the metadata DB:

* ``MAX_SPEC_DEPTH``: how deeply the spec's JSON may nest (objects and lists). Deeper input (a filter nested
  3,000 levels, a context nested 300 levels) is refused: it would exhaust Python's recursion while validating or
  serialising. Real specs nest a dozen levels.
* Integers: every JSON integer must fit a signed 64-bit long (what Druid's Jackson and the metadata DB's
  BIGINT hold); fields Druid declares as Java ``int`` (priority, row counts, shard counts, parse-exception
  budgets) must fit a signed 32-bit int.
* ``MAX_NUM_SHARDS``: a hashed ``numShards`` above this is refused; each shard is one segment and one build unit
  per time chunk.
* ``MAX_DATA_SOURCE_LENGTH`` and the reserved dataSource names (see :func:`check_data_source_name`).
* Column names starting with ``__`` that the engine uses internally (``__time``, ``__chunk``, ``__bucket``, the
  companion ``__time_<metric>`` columns) cannot be dimension, metric or transform names.
"""

from __future__ import annotations

import re
from typing import Any

from druidflow.exceptions import SpecError

MAX_SPEC_DEPTH = 100
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
MAX_NUM_SHARDS = 10_000
# In UTF-8 bytes: the name is one deep-storage path component (a file name: 255 bytes at most) and part of task
# ids and segment ids (metadata columns of 255 and 512 characters), which add up to about 55 characters to it.
MAX_DATA_SOURCE_LENGTH = 200
MAX_TASK_ID_LENGTH = 255
# Names deep storage uses for its own directories next to the dataSources (Druid's intermediate pushes, and the
# local store's temporary files).
RESERVED_DATA_SOURCES = frozenset({"intermediate_pushes"})
RESERVED_COLUMNS = frozenset({"__time", "__chunk", "__bucket"})
RESERVED_COLUMN_PREFIXES = ("__time_",)


def check_spec_shape(data: Any, path: str = "") -> None:
    """Refuse JSON nested deeper than :data:`MAX_SPEC_DEPTH` or holding an integer outside the long range.

    Iterative, so that input of any depth is checked without recursion.
    """
    stack: list[tuple[Any, tuple[str, ...], int]] = [(data, (path,) if path else (), 0)]
    while stack:
        value, parts, depth = stack.pop()
        if isinstance(value, dict):
            if depth >= MAX_SPEC_DEPTH:
                raise SpecError(_path(parts), "{...}", f"the spec nests deeper than {MAX_SPEC_DEPTH} levels")
            for k in value:
                if isinstance(k, str) and _has_surrogate(k):
                    raise SpecError(_path(parts + (_shown(k),)), _shown(k), "a key holds a lone UTF-16 surrogate, which is not text")
            stack.extend((v, parts + (str(k),), depth + 1) for k, v in value.items())
        elif isinstance(value, str):
            if _has_surrogate(value):
                raise SpecError(_path(parts), _shown(value), "holds a lone UTF-16 surrogate, which is not text")
        elif isinstance(value, list):
            if depth >= MAX_SPEC_DEPTH:
                raise SpecError(_path(parts), "[...]", f"the spec nests deeper than {MAX_SPEC_DEPTH} levels")
            stack.extend((v, parts[:-1] + (f"{parts[-1]}[{i}]" if parts else f"[{i}]",), depth + 1) for i, v in enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool) and not LONG_MIN <= value <= LONG_MAX:
            raise SpecError(_path(parts), value, "an integer outside the 64-bit range Druid and the metadata DB accept")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def _shown(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _path(parts: tuple[str, ...]) -> str:
    """A dotted path, with long runs of one repeated key (``field.field.field...``) shortened."""
    out: list[str] = []
    i = 0
    while i < len(parts):
        j = i
        while j < len(parts) and parts[j] == parts[i]:
            j += 1
        out.append(parts[i] if j - i <= 3 else f"{parts[i]}(.{parts[i]} x{j - i - 1})")
        i = j
    return ".".join(out)


def check_java_int(value: int, path: str, low: int = INT_MIN) -> int:
    if not low <= value <= INT_MAX:
        raise SpecError(path, value, f"must be between {low} and {INT_MAX} (a Java int, as in Druid)")
    return value


def check_data_source_name(value: str, what: str = "dataSource") -> str:
    """Druid's rules beyond ``IdUtils.validateId`` that deep storage needs: a length bound, no backslash (a path
    separator on some stores), and none of the names deep storage keeps for itself."""
    if len(value.encode("utf-8", "surrogatepass")) > MAX_DATA_SOURCE_LENGTH:
        raise SpecError("", value[:40] + "...", f"{what} is longer than {MAX_DATA_SOURCE_LENGTH} bytes (UTF-8)")
    if "\\" in value:
        raise SpecError("", value, f"{what} cannot contain a backslash")
    if value.lower() in RESERVED_DATA_SOURCES:
        raise SpecError("", value, f"{what} {value!r} is reserved: deep storage uses that name for its own files")
    if value in (".", ".."):
        raise SpecError("", value, f"{what} cannot be {value!r}")
    return value


def is_reserved_column(name: str) -> bool:
    return name in RESERVED_COLUMNS or name.startswith(RESERVED_COLUMN_PREFIXES)


def check_column_name(name: str, path: str, what: str) -> str:
    """Refuse the engine's internal column names as a user column."""
    if is_reserved_column(name):
        raise SpecError(path, name, f"{name!r} is a reserved internal column name and cannot be a {what}")
    return name
