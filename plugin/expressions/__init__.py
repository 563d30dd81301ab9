"""Druid's native expression language, parsed once and evaluated column-at-a-time on Arrow data.

Used by ``transformSpec`` expression transforms, the ``expression`` filter and aggregators' ``expression``.
:func:`compile_expression` parses the text (raising :class:`~druidflow.exceptions.SpecError` naming the expression
and the position of a syntax error); :meth:`Expression.evaluate` computes it over a ``pyarrow.RecordBatch`` or
``Table`` with ``pyarrow.compute`` and numpy, never row by row.

Syntax
------
* Literals: longs ``42``, doubles ``1.5`` / ``2.`` / ``1e3`` / ``NaN`` / ``Infinity``, strings ``'it\\'s'`` (escapes
  ``\\' \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX``), and ``null``.
* Identifiers name columns: bare (``[_$a-zA-Z][_$a-zA-Z0-9]*``) or double-quoted (``"page views"``). ``__time`` is
  the row timestamp in epoch milliseconds. A column the batch lacks reads as null.
* Operators, tightest first (the precedence of Druid's grammar): unary ``-`` and ``!``; ``^`` (right-associative,
  so ``-2^2`` is 4 and ``2^3^2`` is 512); ``* / %``; ``+ -``; ``< <= > >= == !=``; ``&& ||`` (one level,
  left-associative, so ``a || b && c`` is ``(a || b) && c``). Parentheses group. ``name(args)`` calls a function.
* Array literals: ``[1, 2, 3]`` (LONG), ``[1.0, 2]`` (DOUBLE), ``['a', null]`` (STRING), ``[]`` (an empty STRING
  array); typed: ``<LONG>[]``, ``<DOUBLE>[1]``, ``ARRAY<STRING>[]``. Elements are literals (``array(...)`` takes
  expressions).
* Lambdas, only as the first argument of an apply function: ``(x, y) -> x + y``, ``x -> x + 1``, ``() -> 1``.

Types and nulls (Druid's SQL-compatible mode)
---------------------------------------------
Values are LONG (int64), DOUBLE (float64) or STRING; integer, boolean and timestamp columns read as LONG,
floating columns as DOUBLE, string and dictionary columns as STRING. Arrays are ARRAY<LONG>, ARRAY<DOUBLE> or
ARRAY<STRING>; a list column (a multi-value string dimension, a Parquet list) reads as an array of its element type,
as Druid's row transforms read a list value. An array given to an operator or to a function that takes scalars
is an error naming the function (``map((x) -> upper(x), tags)`` applies one to each element; Druid's query-time
implicit mapping of multi-value columns is not done). An expression giving an array makes a list column: as an
ingested dimension, a multi-value string dimension (Druid's transform coerces an array to a list of values).

* Arithmetic on two LONGs is LONG (wrapping on overflow, as Java's ``long``); otherwise DOUBLE, with strings
  parsed as numbers (a string that is not a number is null). ``/`` on LONGs divides towards zero. ``%`` is Java's
  remainder (the sign of the dividend). ``^`` is a power (LONG when both are LONG).
* Division or remainder of LONGs by zero gives **null** (Druid's row evaluator throws and the row fails; a
  vectorised engine cannot fail one row, and null is what Druid's ``safe_divide`` gives). DOUBLE division by
  zero is IEEE: ``Infinity`` or ``NaN``. A negative LONG exponent gives null.
* ``+`` on two STRINGs concatenates; ``- * / % ^`` on two STRINGs is an error, as in Druid.
* Any operator with a null operand gives null, except ``&&`` / ``||``, which use three-valued logic
  (``null && false`` is false, ``null || true`` is true).
* Comparisons compare two STRINGs as strings and anything else as numbers; they and ``&& || !`` give LONG 1 or 0.
* Truth: a number is true when it is greater than zero; a string when it equals ``true`` ignoring case.
* A DOUBLE becomes a string the way Java prints it: ``1.0``, ``0.001``, ``1.0E7``, ``1.234E-5``, ``NaN``.
* A unary minus on a string negates it as a number (Druid raises instead).
* Functions whose result may come from several arguments (``if``, ``nvl``, ``case_*``, ``greatest``, ``least``)
  give STRING if any candidate is a STRING, else DOUBLE if any is a DOUBLE, else LONG.
* String positions and lengths count Unicode code points (Druid counts UTF-16 units; they differ only for
  characters outside the Basic Multilingual Plane, such as emoji).

Functions
---------
Arguments marked *literal* must be written as literals (they are compiled once). Unless stated otherwise a null
argument gives a null result.

Strings
  * ``concat(x, ...)``: the arguments as strings, joined; null if any is null.
  * ``upper(s)``, ``lower(s)``: case conversion.
  * ``strlen(s)``: length (LONG).
  * ``substring(s, index, length)``: from the 0-based *literal* ``index``, at most *literal* ``length``
    characters (a negative length: to the end); null when ``index`` is at or past the end.
  * ``replace(s, pattern, replacement)``: every occurrence of the *literal* text ``pattern`` replaced.
  * ``trim(s[, chars])``, ``ltrim(s[, chars])``, ``rtrim(s[, chars])``: strip the *literal* ``chars``
    (default: a space) from both ends, the start, the end.
  * ``left(s, n)``, ``right(s, n)``: the first / last *literal* ``n`` characters.
Numbers
  * ``abs(x)``: absolute value, same type. Math functions give null for a string argument, as Druid's do.
  * ``floor(x)``, ``ceil(x)``: DOUBLE floor / ceiling.
  * ``round(x[, scale])``: half away from zero at the *literal* ``scale`` (default 0; negative rounds to tens,
    hundreds...), on the decimal digits (``round(2.675, 2)`` is 2.68), same type; NaN gives 0.0 and the
    infinities the largest finite doubles, as in Druid.
  * ``sqrt(x)``, ``log(x)`` (natural), ``exp(x)``, ``pow(x, y)``: DOUBLE.
  * ``greatest(x, ...)``, ``least(x, ...)``: the largest / smallest, skipping nulls (null if all are null).
Conditionals
  * ``if(cond, a, b)``: ``a`` where ``cond`` is true, else ``b`` (a null ``cond`` is false).
  * ``nvl(x, y)``: ``x``, or ``y`` where ``x`` is null.
  * ``isnull(x)``, ``notnull(x)``: LONG 1 or 0.
  * ``case_searched(c1, v1, ..., [else])``: the ``v`` of the first true ``c``, else ``else`` (or null).
  * ``case_simple(x, k1, v1, ..., [else])``: the ``v`` of the first ``k`` equal to ``x`` (compared as ``==``).
  * ``cast(x, type)``: to the *literal* ``'LONG'``, ``'DOUBLE'`` or ``'STRING'``; a string that is not a number
    gives null; a DOUBLE becomes a LONG by truncation towards zero.
Time (``t`` is epoch milliseconds, such as ``__time``; time zones are IANA ids or offsets like ``'+05:30'``)
  * ``timestamp_floor(t, period[, origin[, tz]])``: start of the bucket of the *literal* ISO period (``'PT1H'``,
    ``'P1D'``) with the *literal* origin and time zone, as a period granularity (LONG).
  * ``timestamp_extract(t, unit[, tz])``: the *literal* unit EPOCH (seconds), MILLISECOND, SECOND, MINUTE, HOUR,
    DAY (of month), DOW / ISODOW (1 = Monday), DOY, WEEK (ISO), MONTH, QUARTER, YEAR, ISOYEAR, DECADE (LONG), or
    CENTURY, MILLENNIUM (DOUBLE), in the *literal* time zone.
  * ``timestamp_parse(s[, pattern[, tz]])``: epoch ms of ``s`` read with the *literal* Joda pattern, or as ISO-8601
    (``T`` or a space between date and time) when none; wall-clock times are in ``tz`` (default UTC) unless the
    text carries an offset. Unparseable text, impossible dates and times skipped by a DST change give null.
  * ``timestamp_format(t[, pattern[, tz]])``: ``t`` printed with the *literal* Joda pattern in ``tz``, or as
    ``2024-01-01T00:00:00.000Z`` when no pattern is given.
Arrays (where an array is taken a scalar is a one-element array and null stays null; a null array gives null)
  * ``array(x, ...)``: an array of the arguments, of the type of the first (the others cast to it).
  * ``array_length(arr)``: the number of elements (LONG).
  * ``array_offset(arr, i)``, ``array_ordinal(arr, i)``: the element at the 0-based / 1-based index ``i``, or null
    out of range.
  * ``array_contains(arr, x)``: 1 if ``arr`` contains ``x``, or every element of ``x`` if ``x`` is an array (a null
    ``x`` matches a null element), else 0.
  * ``array_overlap(a, b)``: 1 if ``a`` and ``b`` share an element, else 0 (0 when only ``b`` is null).
  * ``scalar_in_array(x, arr)``: 1 if ``x`` is an element of ``arr``, else 0; null when ``x`` is null.
  * ``array_offset_of(arr, x)``, ``array_ordinal_of(arr, x)``: the 0-based / 1-based index of the first ``x``, or null.
  * ``array_prepend(x, arr)``, ``array_append(arr, x)``: ``x`` (cast to the element type) added at the start / end.
  * ``array_concat(a, b)``: ``a`` then ``b`` (of ``a``'s type); null if either is null.
  * ``array_set_add(arr, x)``, ``array_set_add_all(a, b)``: the distinct elements of both, in ascending order, null
    first (Druid's sorted set).
  * ``array_slice(arr, start[, end])``: the elements from the 0-based ``start`` up to ``end`` (exclusive; default
    the length), null elements past the end; null if ``start`` is negative or past the length, or ``end < start``.
  * ``array_to_string(arr, delimiter)``: the elements as strings joined by ``delimiter`` (a null element is
    ``null``, as Java's ``String.valueOf``).
  * ``string_to_array(s, regex)``: ``s`` split on the *literal* regular expression, trailing empty strings
    dropped (Java's ``String.split``).
  * ``cast(x, 'ARRAY<LONG>')`` (and ``ARRAY<DOUBLE>``, ``ARRAY<STRING>``, legacy ``LONG_ARRAY``...): elements cast.
Apply functions (the lambda's body is evaluated once over the elements of all rows; inside it the parameters hide
columns of the same name and other columns read the row's value)
  * ``map((x) -> body, arr)``: ``body`` for each element.
  * ``cartesian_map((x, y, ...) -> body, a, b, ...)``: ``body`` for each combination of the arrays' elements, the
    first array varying slowest; one parameter per array.
  * ``filter((x) -> cond, arr)``: the elements where ``cond`` is true, or null if none is.
  * ``fold((x, acc) -> body, arr, init)``: ``acc`` starts as ``init`` and becomes ``body`` for each element in turn.
  * ``cartesian_fold((x, y, ..., acc) -> body, a, b, ..., init)``: ``fold`` over the combinations.
  * ``any((x) -> cond, arr)``, ``all((x) -> cond, arr)``: 1 if ``cond`` is true for some / every element, else 0.
Matching (LONG 1 or 0; a null string gives 0)
  * ``like(s, pattern[, escape])``: SQL LIKE with the *literal* pattern (``%`` any run, ``_`` one character)
    and optional *literal* one-character escape.
  * ``regexp_like(s, pattern)``: the *literal* regular expression (RE2 syntax) matches somewhere in ``s``.
  * ``contains_string(s, text)``: ``s`` contains the *literal* ``text`` (case-sensitive).

Joda patterns supported by ``timestamp_parse`` / ``timestamp_format``: ``y``/``Y`` (year; ``yy`` two-digit),
``M`` (``MM``, ``MMM`` Jan, ``MMMM`` January), ``d``, ``H``, ``h``/``K``/``k`` with ``a`` (AM/PM), ``m``, ``s``,
``S`` (fraction), ``E`` (day name), ``Z``/``ZZ`` (offset) and ``ZZZ`` (zone id), literals in single quotes; for
formatting also ``D`` (day of year), ``e`` (day of week), ``w`` (week of week-year) and ``x`` (week-year).
"""

from __future__ import annotations

# The function modules register themselves in the function table when imported; the parser looks names up there.
from druidflow.expressions import (  # noqa: F401
    apply,
    arrays,
    conditionals,
    numbers,
    strings,
    timefuncs,
)
from druidflow.expressions.columns import (
    Batch,
    epoch_millis,
    java_strings,
    parse_doubles,
    parse_longs,
    read_column,
)
from druidflow.expressions.compiled import Expression, compile_expression
from druidflow.expressions.parser import MAX_EXPRESSION_DEPTH
from druidflow.expressions.strings import check_regex, like_regex
from druidflow.expressions.timeformat import format_timestamps, parse_timestamps
from druidflow.expressions.tree import FUNCTIONS

FUNCTION_NAMES: tuple[str, ...] = tuple(sorted(FUNCTIONS))

__all__ = [
    "FUNCTION_NAMES",
    "MAX_EXPRESSION_DEPTH",
    "Batch",
    "Expression",
    "check_regex",
    "compile_expression",
    "epoch_millis",
    "format_timestamps",
    "java_strings",
    "like_regex",
    "parse_doubles",
    "parse_longs",
    "parse_timestamps",
    "read_column",
]
