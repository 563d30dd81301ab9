"""``timestampSpec``: which input column holds the row time, and how to read it.

``format`` is one of Druid's named formats (``auto``, ``iso``, ``posix`` = seconds, ``millis``, ``micro``,
``nano``, ``ruby`` = fractional seconds; case-insensitive) or a Joda-Time pattern such as
``yyyy-MM-dd HH:mm:ss``. A pattern is checked when the spec is parsed: its letters must be Joda's, and it must
translate to a ``strptime`` format (:meth:`TimestampSpec.strptime_format`), so that a bad pattern fails before any
work starts.
"""

from __future__ import annotations

import re
from typing import Any, Optional

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


def joda_tokens(pattern: str) -> list[tuple[str, str]]:
    """A Joda-Time pattern as ``("lit", text)`` and ``("dir", strptime directive)`` tokens; ValueError if invalid.

    Only patterns that ``strptime`` can express are accepted; at most one fraction-of-second field.
    """
    out: list[tuple[str, str]] = []
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
            out.append(("lit", "'" if j == i + 1 else "".join(literal)))
            i = j + 1
            continue
        if not (c.isascii() and c.isalpha()):
            out.append(("lit", c))
            i += 1
            continue
        j = i
        while j < n and pattern[j] == c:
            j += 1
        if c not in _JODA_LETTERS:
            raise ValueError(f"illegal pattern letter {c!r} at position {i}")
        if c in _UNTRANSLATABLE:
            raise ValueError(f"pattern letter {c!r} ({_UNTRANSLATABLE[c]}) is not supported")
        out.append(("dir", _directive(c, j - i)))
        i = j
    if sum(1 for t in out if t == ("dir", "%f")) > 1:
        raise ValueError("at most one fraction-of-second field (S) is supported")
    return out


def joda_to_strptime(pattern: str) -> str:
    """Translate a Joda-Time pattern into an equivalent ``strptime`` format; ValueError when impossible.

    Fractions of a second (``S``...) become ``%f``: Python's ``strptime`` reads them, Arrow's does not, so
    use :func:`parse_joda` for Arrow columns.
    """
    return "".join(text.replace("%", "%%") if kind == "lit" else text for kind, text in joda_tokens(pattern))


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


_DIRECTIVE_REGEX = {
    "%Y": r"\d{4}", "%y": r"\d{2}", "%m": r"\d{1,2}", "%d": r"\d{1,2}", "%j": r"\d{1,3}", "%H": r"\d{1,2}",
    "%I": r"\d{1,2}", "%M": r"\d{1,2}", "%S": r"\d{1,2}", "%b": r"[A-Za-z]+\.?", "%B": r"[A-Za-z]+",
    "%a": r"[A-Za-z]+\.?", "%A": r"[A-Za-z]+", "%p": r"[AaPp]\.?[Mm]\.?", "%z": r"(?:Z|[+-]\d{2}:?\d{2})",
}


def parse_joda(values: Any, pattern: str) -> Any:
    """Epoch milliseconds (int64) of an Arrow string array in a Joda-Time pattern; null where a value does not fit.

    Vectorised with Arrow's ``strptime``. Arrow cannot read fractions of a second, so for a pattern with ``S``
    the digits are cut out with one regular expression built from the pattern, the rest goes through
    ``strptime``, and the fraction (truncated to milliseconds, as Joda does) is added back.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    tokens = joda_tokens(pattern)
    fraction = [i for i, t in enumerate(tokens) if t == ("dir", "%f")]

    def fmt(toks: list[tuple[str, str]]) -> str:
        return "".join(text.replace("%", "%%") if kind == "lit" else text for kind, text in toks)

    def to_ms(parsed: Any) -> Any:
        return pc.cast(parsed, pa.int64()) if not parsed.type.tz else pc.cast(pc.cast(parsed, pa.timestamp("ms")), pa.int64())

    if not fraction:
        return to_ms(pc.strptime(values, format=fmt(tokens), unit="ms", error_is_null=True))
    head, tail = tokens[: fraction[0]], tokens[fraction[0] + 1 :]

    def regex(toks: list[tuple[str, str]]) -> str:
        return "".join(re.escape(text) if kind == "lit" else _DIRECTIVE_REGEX[text] for kind, text in toks)

    shape = f"^(?P<head>{regex(head)})(?P<frac>\\d{{1,9}})(?P<tail>{regex(tail)})$"
    whole = pc.strptime(
        pc.replace_substring_regex(values, pattern=shape, replacement=r"\1\3"), format=fmt(head + tail), unit="ms", error_is_null=True
    )
    digits = pc.struct_field(pc.extract_regex(values, pattern=shape), "frac")
    millis = pc.cast(pc.utf8_rpad(pc.utf8_slice_codeunits(digits, 0, 3), width=3, padding="0"), pa.int64())
    return pc.add(to_ms(whole), millis)


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
        fmt = self.strptime_format()
        return fmt is not None and "%f" in fmt

    def parse_pattern(self, values: Any) -> Any:
        """Epoch ms (int64, null where unparseable) of an Arrow string column in this spec's Joda pattern."""
        if not self.is_pattern:
            raise ValueError(f"timestampSpec format {self.format!r} is not a Joda-Time pattern")
        return parse_joda(values, self.format)

    def strptime_format(self) -> Optional[str]:
        """The ``strptime`` format of a Joda pattern (None for the named formats)."""
        return joda_to_strptime(self.format) if self.is_pattern else None
