"""The one base model every spec and record derives from."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from typing_extensions import Self

from druidflow.exceptions import SpecError


class DruidModel(BaseModel):
    """Frozen, camelCase-aliased base for Druid JSON.

    Fields are snake_case in Python and camelCase in JSON (``data_source`` <-> ``dataSource``); both spellings
    are accepted on input. An unknown key is kept aside (``model_extra``) and ignored, as Druid ignores unknown
    properties; :func:`druidflow.specs.unknown_keys.spec_warnings` names each one, and the models of
    :data:`~druidflow.specs.unknown_keys.STRICT_MODELS` refuse them. Dumps default to Druid's shape: aliases on,
    ``None`` left out, unknown keys kept (so a dumped spec warns again when parsed).
    """

    model_config = ConfigDict(
        frozen=True,
        extra="allow",
        populate_by_name=True,
        alias_generator=to_camel,
        arbitrary_types_allowed=True,
    )

    @model_validator(mode="after")
    def _strict_keys(self) -> Any:
        if self.model_extra:
            from druidflow.specs.unknown_keys import unknown_key_error

            error = unknown_key_error(self)
            if error is not None:
                raise error
        return self

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("by_alias", True)
        kwargs.setdefault("exclude_none", True)
        kwargs.setdefault("mode", "json")
        return super().model_dump(**kwargs)

    def model_dump_json(self, **kwargs: Any) -> str:
        kwargs.setdefault("by_alias", True)
        kwargs.setdefault("exclude_none", True)
        return super().model_dump_json(**kwargs)

    @classmethod
    def parse(cls, data: Any, path: str = "") -> Self:
        """Validate ``data`` (a dict or JSON text), raising :class:`SpecError` that names the field path and value."""
        try:
            if isinstance(data, (str, bytes)):
                return cls.model_validate_json(data)
            return cls.model_validate(data)
        except ValidationError as exc:
            raise spec_error_from(exc, path) from None


def spec_error_from(exc: ValidationError, prefix: str = "") -> SpecError:
    """Turn pydantic's first error into a SpecError naming the dotted field path and the offending value."""
    err = exc.errors(include_url=False)[0]
    parts = [prefix] if prefix else []
    for loc in err.get("loc", ()):
        if isinstance(loc, int):
            parts[-1:] = [f"{parts[-1]}[{loc}]"] if parts else [f"[{loc}]"]
        elif not str(loc).startswith(("function-", "tagged-union", "union[")):
            parts.append(str(loc))
    path = ".".join(parts)
    msg = err.get("msg", "invalid value")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    more = len(exc.errors()) - 1
    if more > 0:
        msg += f" (and {more} more problem{'s' if more > 1 else ''})"
    return SpecError(path, err.get("input"), msg)
