"""The paths of ``flattenSpec`` fields: Druid's JSONPath (Jayway) and jq subsets, parsed into one shape.

A :class:`FieldPath` is a list of steps from the record's root — a field name (``str``), a list index (``int``,
negative from the end) or :data:`EACH` (every element of a list) — and an optional function applied to what the
steps reach. Both languages compile to it, so one vectorised evaluator (:mod:`druidflow.inputs.flatten`) serves
them.

JSONPath: ``$``, ``.name``, ``['name']``, ``["name"]``, ``[n]``, ``[-n]``, ``[*]``, and a final Jayway function:
``length()``, ``size()``, ``min()``, ``max()``, ``avg()``, ``stddev()``, ``sum()``, ``first()``, ``last()``,
``keys()``.

jq: ``.name``, ``."name"``, ``.["name"]``, ``.[n]``, ``[n]``, ``.[]``/``[]``, joined by ``|`` and ending, optionally,
in ``length``, ``min``, ``max``, ``add`` (the sum), ``first``, ``last``, ``keys``.

Anything else (deep scan ``..``, filters, slices, other functions) is refused when the spec is parsed, with the
expression and the position named, rather than evaluated wrongly.
"""

from __future__ import annotations

import re
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict


class _Each:
    """The ``[*]`` / ``[]`` step: every element of a list."""

    def __repr__(self) -> str:
        return "EACH"


EACH = _Each()

Step = Union[str, int, _Each]
Function = Literal["length", "min", "max", "avg", "stddev", "sum", "first", "last", "keys"]

#: Jayway function names (``size`` is Jayway's alias of ``length``) and jq builtins, to the one evaluated.
JSON_PATH_FUNCTIONS: dict[str, Function] = {
    "length": "length", "size": "length", "min": "min", "max": "max", "avg": "avg", "stddev": "stddev",
    "sum": "sum", "first": "first", "last": "last", "keys": "keys",
}
JQ_FUNCTIONS: dict[str, Function] = {
    "length": "length", "min": "min", "max": "max", "add": "sum", "first": "first", "last": "last", "keys": "keys",
}


class FieldPath(BaseModel):
    """Steps from the root, and the function applied at the end (None: the value itself)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    steps: tuple[Step, ...]
    function: Optional[Function] = None


_JSON_PATH_TOKEN = re.compile(
    r"""\.(?P<func>[A-Za-z]+)\(\s*\)\s*$     # .length() at the very end
      | \.(?P<name>[^.\[\]()]+)               # .name
      | \[\s*'(?P<sq>(?:[^'\\]|\\.)*)'\s*\]   # ['name']
      | \[\s*"(?P<dq>(?:[^"\\]|\\.)*)"\s*\]   # ["name"]
      | \[\s*(?P<idx>-?\d+)\s*\]              # [0], [-1]
      | \[\s*(?P<each>\*)\s*\]                # [*]
    """,
    re.VERBOSE,
)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_json_path(expr: str) -> FieldPath:
    """A JSONPath expression as a :class:`FieldPath`; ``ValueError`` naming the position for what is not supported."""
    text = expr.strip()
    if not text.startswith("$"):
        raise ValueError(f"JSONPath must start with '$': {expr!r}")
    steps: list[Step] = []
    function: Optional[Function] = None
    pos = 1
    while pos < len(text):
        m = _JSON_PATH_TOKEN.match(text, pos)
        if m is None:
            raise ValueError(
                f"unsupported JSONPath {expr!r} at position {pos}: supported are .name, ['name'], [index], [*] and a "
                f"final function ({', '.join(f'{f}()' for f in JSON_PATH_FUNCTIONS)})"
            )
        if m.group("func") is not None:
            name = m.group("func")
            if name not in JSON_PATH_FUNCTIONS:
                raise ValueError(f"unsupported JSONPath function {name}() in {expr!r}: supported are {', '.join(JSON_PATH_FUNCTIONS)}")
            function = JSON_PATH_FUNCTIONS[name]
        elif m.group("name") is not None:
            name = m.group("name")
            if name == "*":
                raise ValueError(f"unsupported JSONPath {expr!r}: '.*' over an object's fields is not supported")
            steps.append(name)
        elif m.group("idx") is not None:
            steps.append(int(m.group("idx")))
        elif m.group("each") is not None:
            steps.append(EACH)
        else:
            steps.append(_unescape(m.group("sq") if m.group("sq") is not None else m.group("dq")))
        pos = m.end()
    return FieldPath(steps=tuple(steps), function=function)


_JQ_TOKEN = re.compile(
    r"""\.?\[\s*"(?P<dq>(?:[^"\\]|\\.)*)"\s*\]  # .["name"]
      | \."(?P<qn>(?:[^"\\]|\\.)*)"             # ."name"
      | \.?\[\s*(?P<idx>-?\d+)\s*\]             # .[0], [0]
      | \.?\[\s*\]                              # .[], []
      | \.(?P<name>[A-Za-z_][A-Za-z0-9_]*)      # .name
      | (?P<root>\.)                            # . (the input itself)
    """,
    re.VERBOSE,
)


def parse_jq(expr: str) -> FieldPath:
    """A jq expression (the subset above) as a :class:`FieldPath`."""
    steps: list[Step] = []
    function: Optional[Function] = None
    stages = [s.strip() for s in expr.split("|")]
    for i, stage in enumerate(stages):
        if ".." in stage:
            raise ValueError(f"unsupported jq {expr!r}: recursive descent '..' is not supported")
        if not stage:
            raise ValueError(f"unsupported jq {expr!r}: empty stage {i + 1}")
        if function is not None:
            raise ValueError(f"unsupported jq {expr!r}: nothing may follow '{stage}' after a function")
        if stage in JQ_FUNCTIONS and i > 0:
            function = JQ_FUNCTIONS[stage]
            continue
        pos = 0
        while pos < len(stage):
            m = _JQ_TOKEN.match(stage, pos)
            if m is None or m.end() == pos:
                raise ValueError(
                    f"unsupported jq {expr!r} at {stage[pos:]!r}: supported are .name, .\"name\", .[\"name\"], .[n], "
                    f".[] joined by '|', ending in one of {', '.join(JQ_FUNCTIONS)}"
                )
            if m.group("root") is not None:
                pass
            elif m.group("name") is not None:
                steps.append(m.group("name"))
            elif m.group("idx") is not None:
                steps.append(int(m.group("idx")))
            elif m.group("dq") is not None:
                steps.append(_unescape(m.group("dq")))
            elif m.group("qn") is not None:
                steps.append(_unescape(m.group("qn")))
            else:
                steps.append(EACH)
            pos = m.end()
    return FieldPath(steps=tuple(steps), function=function)
