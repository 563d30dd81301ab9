"""String and matching functions: concat, upper, lower, strlen, substring, replace, trims, left, right, like, regexp_like, contains_string."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Optional

import pyarrow as pa
import pyarrow.compute as pc

from druidflow.exceptions import SpecError
from druidflow.expressions.registry import checks, function, literal_check
from druidflow.expressions.tree import Call, Ctx
from druidflow.expressions.values import (
    LONG,
    STRING,
    Data,
    Val,
    as_string,
    bool_to_long,
    null_of,
)

# -- strings ------------------------------------------------------------------------------------------------------


@function("concat", 0, None)
def _concat(call: Call, ctx: Ctx) -> Val:
    if not call.args:
        return null_of(STRING)
    parts = [as_string(a.evaluate(ctx)) for a in call.args]
    if len(parts) == 1:
        return Val(parts[0], STRING)
    return Val(pc.binary_join_element_wise(*parts, ""), STRING)


@function("upper", 1)
def _upper(call: Call, ctx: Ctx) -> Val:
    return Val(pc.utf8_upper(as_string(call.args[0].evaluate(ctx))), STRING)


@function("lower", 1)
def _lower(call: Call, ctx: Ctx) -> Val:
    return Val(pc.utf8_lower(as_string(call.args[0].evaluate(ctx))), STRING)


@function("strlen", 1)
def _strlen(call: Call, ctx: Ctx) -> Val:
    return Val(pc.cast(pc.utf8_length(as_string(call.args[0].evaluate(ctx))), pa.int64()), LONG)


def _check_substring(call: Call) -> None:
    literal_check(1, (LONG,), "a literal integer index", optional=False)(call)
    literal_check(2, (LONG,), "a literal integer length", optional=False)(call)
    if call.literal(1) < 0:
        raise SpecError("", call.literal(1), "the index must not be negative")


@function("substring", 3, literals=(1, 2), validate=_check_substring)
def _substring(call: Call, ctx: Ctx) -> Val:
    s = as_string(call.args[0].evaluate(ctx))
    index, length = call.literal(1), call.literal(2)
    stop = None if length < 0 else index + length
    out = pc.utf8_slice_codeunits(s, index, stop) if stop is not None else pc.utf8_slice_codeunits(s, index)
    past_end = pc.less_equal(pc.utf8_length(s), index)  # Druid: an index at or past the end gives null
    return Val(pc.if_else(past_end, pa.scalar(None, pa.string()), out), STRING)


@function("replace", 3, literals=(1, 2), validate=checks(literal_check(1, (STRING,), "a literal string"),
                                                          literal_check(2, (STRING,), "a literal string")))
def _replace(call: Call, ctx: Ctx) -> Val:
    s = as_string(call.args[0].evaluate(ctx))
    pattern, replacement = call.literal(1) or "", call.literal(2) or ""
    if not pattern:
        return Val(s, STRING)
    return Val(pc.replace_substring(s, pattern, replacement), STRING)


def _trim_function(name: str, kernel: Callable[[Data, str], Data]) -> None:
    @function(name, 1, 2, literals=(1,), validate=literal_check(1, (STRING,), "a literal string of characters"))
    def _trim(call: Call, ctx: Ctx) -> Val:
        chars = call.literal(1) if len(call.args) > 1 and call.literal(1) is not None else " "
        s = as_string(call.args[0].evaluate(ctx))
        return Val(kernel(s, chars) if chars else s, STRING)


_trim_function("trim", pc.utf8_trim)
_trim_function("ltrim", pc.utf8_ltrim)
_trim_function("rtrim", pc.utf8_rtrim)


def _check_count(call: Call) -> None:
    literal_check(1, (LONG,), "a literal integer", optional=False)(call)
    if call.literal(1) < 0:
        raise SpecError("", call.literal(1), "needs a non-negative integer as the second argument")


@function("left", 2, literals=(1,), validate=_check_count)
def _left(call: Call, ctx: Ctx) -> Val:
    return Val(pc.utf8_slice_codeunits(as_string(call.args[0].evaluate(ctx)), 0, call.literal(1)), STRING)


@function("right", 2, literals=(1,), validate=_check_count)
def _right(call: Call, ctx: Ctx) -> Val:
    s = as_string(call.args[0].evaluate(ctx))
    n = call.literal(1)
    if n == 0:
        return Val(pc.if_else(pc.is_null(s), pa.scalar(None, pa.string()), ""), STRING)
    return Val(pc.utf8_slice_codeunits(s, -n), STRING)


# -- matching -----------------------------------------------------------------------------------------------------


def like_regex(pattern: str, escape: Optional[str] = None) -> str:
    """An RE2 regular expression matching exactly what SQL ``LIKE pattern [ESCAPE escape]`` matches."""
    out = ["(?s)^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if escape and c == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    out.append("$")
    return "".join(out)


def _matches(s: Data, regex: str) -> Data:
    return pc.fill_null(pc.match_substring_regex(s, regex), False)


def _check_like(call: Call) -> None:
    literal_check(1, (STRING,), "a literal pattern", optional=False)(call)
    literal_check(2, (STRING,), "a literal escape character")(call)
    if len(call.args) > 2 and call.literal(2) is not None and len(call.literal(2)) != 1:
        raise SpecError("", call.literal(2), "the escape must be a single character")


@function("like", 2, 3, literals=(1, 2), validate=_check_like)
def _like(call: Call, ctx: Ctx) -> Val:
    escape = call.literal(2) if len(call.args) > 2 else None
    regex = like_regex(call.literal(1), escape)
    return bool_to_long(_matches(as_string(call.args[0].evaluate(ctx)), regex))


def check_regex(pattern: str) -> None:
    """Raise SpecError unless ``pattern`` compiles as an RE2 regular expression (Arrow's regex engine)."""
    try:
        pc.match_substring_regex(pa.array([""]), pattern)
    except pa.ArrowInvalid as exc:
        raise SpecError("", pattern, f"not a valid regular expression: {str(exc).split(': ', 1)[-1]}") from None


def _check_regexp(call: Call) -> None:
    literal_check(1, (STRING,), "a literal pattern", optional=False)(call)
    check_regex(call.literal(1))


@function("regexp_like", 2, literals=(1,), validate=_check_regexp)
def _regexp_like(call: Call, ctx: Ctx) -> Val:
    return bool_to_long(_matches(as_string(call.args[0].evaluate(ctx)), call.literal(1)))


@function("contains_string", 2, literals=(1,), validate=literal_check(1, (STRING,), "a literal string", optional=False))
def _contains_string(call: Call, ctx: Ctx) -> Val:
    s = as_string(call.args[0].evaluate(ctx))
    return bool_to_long(pc.fill_null(pc.match_substring(s, call.literal(1)), False))


