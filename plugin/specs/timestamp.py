"""``timestampSpec``: which input column holds the row time, and how to read it.

``format`` is one of Druid's named formats (``auto``, ``iso``, ``posix`` = seconds, ``millis``, ``micro``,
``nano``, ``ruby`` = fractional seconds; case-insensitive) or a Joda-Time pattern such as
``yyyy-MM-dd HH:mm:ss``. A pattern is checked when the spec is parsed: its letters must be Joda's, and it must
translate to a ``strptime`` format (:meth:`TimestampSpec.strptime_format`), so that a bad pattern fails before any
work starts.
"""

from __future__ import annotations

from typing import Optional

from pydantic import field_validator

from druidflow.exceptions import SpecError
from druidflow.intervals import parse_instant
from druidflow.specs.validation import SpecModel

NAMED_FORMATS = ("auto", "iso", "posix", "millis", "micro", "nano", "ruby")

# Joda-Time DateTimeFormat pattern letters; any other ASCII letter is an illegal pattern component.
_JODA_LETTERS = frozenset("GCYxwweEyDMdaKhHkmsSzZ")

_UNTRANSLATABLE = {
    "G": "era",
    "C": "century of era",
    "x": "week year",
    "w": "week of week year",
    "e": "numeric day of week",
    "K": "hour of half-day (0-11)",
    "k": "clock hour of day (1-24)",
    "z": "time zone name",
}


def joda_to_strptime(pattern: str) -> str:
    """Translate a Joda-Time pattern into an equivalent ``strptime`` format; ValueError when impossible.

    Fractions of a second (``S``...) become ``%f``: Python's ``strptime`` reads them, Arrow's does not (see
    :attr:`TimestampSpec.has_fractional_seconds`).
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "'":
            j = i + 1
            literal = []
            while True:
                if j >= n:
                    raise ValueError(f"unterminated quote at position {i}")
                if pattern[j] == "'":
                    if j + 1 < n and pattern[j + 1] == "'":
                        literal.append("'")
                        j += 2
                        continue
                    break
                literal.append(pattern[j])
                j += 1
            out.append("'" if j == i + 1 else "".join(literal).replace("%", "%%"))
            i = j + 1
            continue
        if not (c.isascii() and c.isalpha()):
            out.append("%%" if c == "%" else c)
            i += 1
            continue
        j = i
        while j < n and pattern[j] == c:
            j += 1
        count = j - i
        if c not in _JODA_LETTERS:
            raise ValueError(f"illegal pattern letter {c!r} at position {i}")
        if c in _UNTRANSLATABLE:
            raise ValueError(f"pattern letter {c!r} ({_UNTRANSLATABLE[c]}) is not supported")
        out.append(_directive(c, count))
        i = j
    return "".join(out)


def _directive(c: str, count: int) -> str:
    if c in "yY":
        return "%y" if count == 2 else "%Y"
    if c == "M":
        return "%m" if count <= 2 else ("%b" if count == 3 else "%B")
    if c == "E":
        return "%a" if count <= 3 else "%A"
    if c == "Z":
        if count > 2:
            raise ValueError("pattern 'ZZZ' (time zone id) is not supported; use Z or ZZ (offset)")
        return "%z"
    return {"d": "%d", "D": "%j", "H": "%H", "h": "%I", "m": "%M", "s": "%S", "S": "%f", "a": "%p"}[c]


class TimestampSpec(SpecModel):
    """``{"column": "timestamp", "format": "auto", "missingValue": null}``.

    ``missingValue`` (an ISO-8601 instant) is used for rows whose timestamp column is null or absent.
    """

    column: str = "timestamp"
    format: str = "auto"
    missing_value: Optional[str] = None

    @field_validator("column")
    @classmethod
    def _column(cls, v: str) -> str:
        if not v:
            raise SpecError("", v, "the timestamp column name must not be empty")
        return v

    @field_validator("format")
    @classmethod
    def _format(cls, v: str) -> str:
        if v.lower() in NAMED_FORMATS:
            return v.lower()
        if not v:
            raise SpecError("", v, f"give one of {', '.join(NAMED_FORMATS)} or a Joda-Time pattern")
        try:
            joda_to_strptime(v)
        except ValueError as exc:
            raise SpecError(
                "", v, f"not a usable timestamp format: {exc} (formats: {', '.join(NAMED_FORMATS)}, or a Joda-Time pattern)"
            ) from None
        return v

    @field_validator("missing_value")
    @classmethod
    def _missing(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            parse_instant(v)
        return v

    @property
    def is_pattern(self) -> bool:
        """Whether ``format`` is a Joda-Time pattern rather than a named format."""
        return self.format not in NAMED_FORMATS

    @property
    def missing_value_ms(self) -> Optional[int]:
        """``missingValue`` in epoch milliseconds."""
        return None if self.missing_value is None else parse_instant(self.missing_value)

    @property
    def has_fractional_seconds(self) -> bool:
        """Whether the pattern reads fractions of a second (``%f``, which Arrow's strptime lacks)."""
        return self.is_pattern and "%f" in self.strptime_format()  # type: ignore[operator]

    def strptime_format(self) -> Optional[str]:
        """The ``strptime`` format of a Joda pattern (None for the named formats)."""
        return joda_to_strptime(self.format) if self.is_pattern else None
