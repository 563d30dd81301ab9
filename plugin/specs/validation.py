"""Turning pydantic validation failures into :class:`SpecError`\\ s that name the user's own field path.

Two things make pydantic's raw locations unhelpful for Druid JSON: a discriminated union puts its tag into the
location (``metricsSpec.0.longSum.fieldName``), and a validator that raises :class:`SpecError` about a nested
field (say ``tuningConfig.partitionsSpec``) is located at the model that owns the validator. The conversion
here drops the tags (by walking the input alongside the location) and appends the nested error's own path,
so the message reads ``spec.tuningConfig.partitionsSpec.type: ...``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from druidflow.exceptions import SpecError
from druidflow.specs.base import DruidModel

_PSEUDO_LOCS = ("function-", "tagged-union", "union[", "model-fields", "json-or-python", "lax-or-strict")


def join_path(*parts: str) -> str:
    """Join dotted path parts, gluing ``[i]`` indexes onto their list's name."""
    out = ""
    for part in parts:
        if not part:
            continue
        if not out or part.startswith("["):
            out += part
        else:
            out += "." + part
    return out


def _walk_loc(loc: tuple[Any, ...], data: Any) -> list[str]:
    """The user-facing path parts of a pydantic location, skipping union tags and pseudo locations."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            node = node[item] if isinstance(node, (list, tuple)) and -len(node) <= item < len(node) else None
            continue
        key = str(item)
        if key.startswith(_PSEUDO_LOCS):
            continue
        if isinstance(node, dict):
            if key in node:
                parts.append(key)
                node = node[key]
                continue
            if node.get("type") == key:
                # a discriminated union's tag: not a field of the user's JSON
                continue
        parts.append(key)
        node = node.get(key) if isinstance(node, dict) else None
    return parts


def spec_error_from_validation(exc: ValidationError, data: Any = None, prefix: str = "") -> SpecError:
    """The first problem of ``exc`` as a SpecError naming the dotted field path and the offending value."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    parts = _walk_loc(tuple(err.get("loc", ())), data)
    inner = (err.get("ctx") or {}).get("error")
    more = len(errors) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
    if isinstance(inner, SpecError):
        return SpecError(join_path(prefix, *parts, inner.path), inner.value, inner.reason + suffix)
    msg = err.get("msg", "invalid value")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err.get("type") == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        msg = f"unsupported type {ctx.get('tag')!r}; supported types: {ctx.get('expected_tags')}"
        parts.append("type")
        value: Any = ctx.get("tag")
    elif err.get("type") == "union_tag_not_found":
        parts.append("type")
        msg = "missing 'type'"
        value = None
    elif err.get("type") == "missing":
        msg = "field required"
        value = None
    else:
        value = err.get("input")
    return SpecError(join_path(prefix, *parts), value, msg + suffix)


def load_json(data: Any, path: str = "") -> Any:
    """``data`` itself, or the object decoded from JSON text."""
    if isinstance(data, (str, bytes, bytearray)):
        try:
            return json.loads(data)
        except json.JSONDecodeError as exc:
            text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
            raise SpecError(path, text[:80], f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    return data


def validate_as(tp: Any, data: Any, path: str = "") -> Any:
    """Validate ``data`` as type ``tp`` (a model, union or any annotation), raising SpecError located at ``path``."""
    try:
        if isinstance(tp, type) and issubclass(tp, DruidModel):
            return tp.model_validate(data)
        return _adapter(tp).validate_python(data)
    except ValidationError as exc:
        raise spec_error_from_validation(exc, data, path) from None


_ADAPTERS: dict[int, TypeAdapter] = {}


def _adapter(tp: Any) -> TypeAdapter:
    key = id(tp)
    if key not in _ADAPTERS:
        _ADAPTERS[key] = TypeAdapter(tp)
    return _ADAPTERS[key]


class SpecModel(DruidModel):
    """DruidModel whose :meth:`parse` reports nested SpecErrors and union members by the user's own path."""

    @classmethod
    def parse(cls, data: Any, path: str = ""):
        """Validate ``data`` (a dict or JSON text), raising :class:`SpecError` that names the field path and value."""
        data = load_json(data, path)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise spec_error_from_validation(exc, data, path) from None
