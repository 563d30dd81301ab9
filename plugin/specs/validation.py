"""Turning pydantic validation failures into :class:`SpecError`\\ s that name the user's own field path.

Two things make pydantic's raw locations unhelpful for Druid JSON: a discriminated union puts its tag into the
location (``metricsSpec.0.longSum.fieldName``), and a validator that raises :class:`SpecError` about a nested
field (say ``tuningConfig.partitionsSpec``) is located at the model that owns the validator. The conversion
here drops the tags (by walking the input alongside the location) and appends the nested error's own path,
so the message reads ``spec.tuningConfig.partitionsSpec.type: ...``.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from pydantic import TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel, to_snake
from typing_extensions import Self

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


def _walk_loc(loc: tuple[Any, ...], data: Any, failed: Any = None) -> list[str]:
    """The user-facing path parts of a pydantic location, skipping union tags and pseudo locations.

    A discriminated union puts its tag into the location; it is recognised by walking the input along the
    location: a step that is not a key of the object there but equals its ``type`` is a tag. When the tag is
    also a field name (``{"type": "interval", "interval": ...}``), the step is a tag if more steps follow, or if
    the failing input is the object itself.
    """
    parts: list[str] = []
    node = data
    for pos, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item}]")
            node = node[item] if isinstance(node, (list, tuple)) and -len(node) <= item < len(node) else None
            continue
        key = str(item)
        if key.startswith(_PSEUDO_LOCS):
            continue
        if isinstance(node, dict):
            is_type = node.get("type") == key
            last = pos == len(loc) - 1
            if key in node and not (is_type and (not last or failed is node)):
                parts.append(key)
                node = node[key]
                continue
            if is_type:
                continue  # a discriminated union's tag, not a field of the user's JSON
        parts.append(key)
        node = node.get(key) if isinstance(node, dict) else None
    return parts


def spec_error_from_validation(exc: ValidationError, data: Any = None, prefix: str = "") -> SpecError:
    """The first problem of ``exc`` as a SpecError naming the dotted field path and the offending value."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    parts = _walk_loc(tuple(err.get("loc", ())), data, err.get("input"))
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
        except RecursionError:
            from druidflow.specs.limits import MAX_SPEC_DEPTH

            raise SpecError(path, "...", f"the spec nests deeper than {MAX_SPEC_DEPTH} levels") from None
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


_ADAPTERS: dict[int, tuple[Any, TypeAdapter[Any]]] = {}


def _adapter(tp: Any) -> TypeAdapter[Any]:
    """A cached TypeAdapter; pass module-level type objects (the cache keeps them alive, keyed by identity)."""
    cached = _ADAPTERS.get(id(tp))
    if cached is None or cached[0] is not tp:
        cached = _ADAPTERS[id(tp)] = (tp, TypeAdapter(tp))
    return cached[1]


def field_key(data: dict[str, Any], field: str) -> Optional[str]:
    """The key under which ``data`` holds ``field`` (given in either spelling), or None."""
    for k in (field, to_camel(field), to_snake(field)):
        if k in data:
            return k
    return None


def get_field(data: Any, field: str, default: Any = None) -> Any:
    """``data[field]`` in either spelling (camelCase or snake_case), or ``default``."""
    if not isinstance(data, dict):
        return default
    k = field_key(data, field)
    return data[k] if k is not None else default


def pop_field(data: dict[str, Any], field: str) -> Any:
    """Remove and return ``field`` (either spelling) from ``data``; None when absent."""
    k = field_key(data, field)
    return data.pop(k) if k is not None else None


def fold_alias(data: dict[str, Any], target: str, *aliases: str) -> None:
    """Move deprecated ``aliases`` of ``target`` onto it; two different values are an error."""
    for alias in aliases:
        k = field_key(data, alias)
        if k is None:
            continue
        value = data.pop(k)
        if value is None:
            continue
        tk = field_key(data, target)
        current = data.get(tk) if tk else None
        if current is not None and current != value:
            raise SpecError(alias, value, f"{alias} is a deprecated alias of {target}, which is also given ({current!r}); give one")
        data[tk or target] = value


def drop_nulls(data: Any) -> Any:
    """``data`` without its null-valued keys: Druid treats an explicit JSON null like an absent field."""
    return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


def check_druid_id(value: str, what: str) -> str:
    """Druid's rules for a dataSource name or task id (``IdUtils.validateId``); raises SpecError at path ''."""
    if not isinstance(value, str) or not value:
        raise SpecError("", value, f"{what} must be a non-empty string")
    if "/" in value:
        raise SpecError("", value, f"{what} cannot contain '/'")
    if value.startswith("."):
        raise SpecError("", value, f"{what} cannot start with '.'")
    if any(c.isspace() and c != " " for c in value) or any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise SpecError("", value, f"{what} cannot contain whitespace other than spaces, or control characters")
    if any(0xD800 <= ord(c) < 0xE000 for c in value):
        raise SpecError("", value.encode("utf-8", "backslashreplace").decode(), f"{what} cannot contain a lone surrogate")
    from druidflow.specs.limits import MAX_TASK_ID_LENGTH, check_data_source_name

    if what == "dataSource":
        check_data_source_name(value, what)
    elif len(value) > MAX_TASK_ID_LENGTH:
        raise SpecError("", value[:40] + "...", f"{what} is longer than {MAX_TASK_ID_LENGTH} characters")
    return value


class SpecModel(DruidModel):
    """DruidModel whose :meth:`parse` reports nested SpecErrors and union members by the user's own path."""

    @classmethod
    def parse(cls, data: Any, path: str = "") -> Self:
        """Validate ``data`` (a dict or JSON text), raising :class:`SpecError` that names the field path and value."""
        data = load_json(data, path)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise spec_error_from_validation(exc, data, path) from None
