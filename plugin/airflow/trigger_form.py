"""The one trigger-form builder: a task type's form fields, the Airflow ``params`` they make, and the task JSON.

A :class:`TriggerForm` lists :class:`FormField` s, each naming where its value goes in the Druid task JSON (a dotted
path such as ``ioConfig.inputSpec.interval``). From it come

* :meth:`TriggerForm.params` — the DAG's ``params``. A field is shown as *required* exactly when it is: a required
  field has a plain JSON type (Airflow marks it required); every other field's type includes ``null`` (shown
  optional). A required field defaults to ``""`` so that a run triggered with a whole task JSON in ``spec`` (``airflow
  dags trigger ... --conf '{"spec": {...}}'``) still passes Airflow's validation.
* :meth:`TriggerForm.spec_from_form` — the task JSON: ``spec`` when given (the fields are then ignored), else one
  built from the fields. A missing or malformed field raises
  :class:`~druidflow.exceptions.SpecError` naming the form field.
* :meth:`TriggerForm.field_for` — the form field that filled a spec path, to name it in errors about the built spec.

Nothing here imports the engine: DAG files build their params from a form at parse time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from druidflow.exceptions import SpecError

WHOLE = "Whole task JSON"
FIELDS = "Fields (used when no task JSON is given)"

_JSON_TYPES = {"string": "string", "integer": "integer", "boolean": "boolean", "lines": "array", "objects": "array",
               "object": "object"}


@dataclass(frozen=True)
class FormField:
    """One field of a trigger form.

    ``kind``: ``string``, ``integer``, ``boolean``, ``lines`` (a list of strings, one per line), ``objects`` (a list of
    JSON objects) or ``object``. ``path`` is where the value goes in the task JSON (None: the value is read by the
    caller, e.g. kill's ``confirm``); ``convert`` turns the form value into the spec value.
    """

    name: str
    path: Optional[str]
    title: str
    kind: str = "string"
    required: bool = False
    default: Any = None
    description: str = ""
    enum: Optional[list[Any]] = None
    minimum: Optional[int] = None
    section: str = FIELDS
    omit: tuple[Any, ...] = ()
    """Values that leave the path out of the spec (e.g. ``"keep"`` for a granularity)."""
    convert: Optional[Callable[[Any], Any]] = None

    def param(self) -> Any:
        from airflow.sdk import Param

        schema: dict[str, Any] = {"title": self.title, "section": self.section}
        if self.description:
            schema["description_md"] = self.description
        if self.enum is not None:
            schema["enum"] = list(self.enum) if self.required else [None, *self.enum]
        json_type = _JSON_TYPES[self.kind]
        schema["type"] = json_type if self.required else ["null", json_type]
        if self.kind == "lines":
            schema["items"] = {"type": "string"}
        elif self.kind == "objects":
            schema["items"] = {"type": "object"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        default = self.default
        if self.required and default is None:  # a valid empty value, so that a run with a whole task JSON passes
            default = {"string": "", "lines": [], "objects": [], "object": {}}.get(self.kind)
        return Param(default, **schema)

    def value(self, params: Mapping[str, Any]) -> Any:
        """The field's value from the run's params, normalised to its kind; None when empty."""
        raw = params.get(self.name)
        if raw is None:
            raw = self.default
        if raw is None or (isinstance(raw, str) and not raw.strip()) or raw == [] or raw == {}:
            return None
        if self.kind == "string":
            text = str(raw).strip()
            if self.enum is not None and text not in self.enum and text.upper() in self.enum:
                text = text.upper()
            if self.enum is not None and text not in self.enum:
                raise SpecError(self.name, raw, f"must be one of {self.enum}")
            return text
        if self.kind == "integer":
            if isinstance(raw, bool) or not str(raw).strip().lstrip("-").isdigit():
                raise SpecError(self.name, raw, "must be a whole number")
            number = int(raw)
            if self.minimum is not None and number < self.minimum:
                raise SpecError(self.name, raw, f"must be at least {self.minimum}")
            return number
        if self.kind == "boolean":
            return raw.strip().lower() in ("true", "1", "yes", "on") if isinstance(raw, str) else bool(raw)
        if self.kind == "lines":
            if isinstance(raw, str):
                raw = raw.replace(",", "\n").splitlines()
            if not isinstance(raw, list):
                raise SpecError(self.name, raw, "must be a list of strings")
            lines = [str(v).strip() for v in raw if str(v).strip()]
            return lines or None
        parsed = _json(self.name, raw)
        if self.kind == "objects" and not (isinstance(parsed, list) and all(isinstance(v, Mapping) for v in parsed)):
            raise SpecError(self.name, raw, "must be a list of JSON objects")
        if self.kind == "object" and not isinstance(parsed, Mapping):
            raise SpecError(self.name, raw, "must be a JSON object")
        return parsed


@dataclass(frozen=True)
class TriggerForm:
    """The trigger form of one task type (see the module docstring)."""

    task_type: str
    fields: tuple[FormField, ...]
    spec_title: str = "Druid task JSON"
    spec_description: str = "A whole Druid task; when given, it is used as is and the fields are ignored."
    skeleton: Optional[Callable[[], dict[str, Any]]] = None
    """A fresh task JSON the fields are written into (default ``{"type": <task type>}``)."""
    finish: Optional[Callable[[dict[str, Any], Mapping[str, Any]], dict[str, Any]]] = None
    """Called with the built spec and the params, for what paths cannot say."""
    extra_params: dict[str, Any] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        """The DAG's ``params`` (Airflow renders them as the trigger form)."""
        from airflow.sdk import Param

        out: dict[str, Any] = {
            "spec": Param(None, type=["null", "object"], title=self.spec_title, description_md=self.spec_description, section=WHOLE)
        }
        out.update((f.name, f.param()) for f in self.fields)
        out.update(self.extra_params)
        return out

    def spec_from_form(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The task JSON a trigger form describes (see the module docstring)."""
        spec = params.get("spec")
        if isinstance(spec, str) and spec.strip():
            spec = _json("spec", spec)
        if spec:
            if not isinstance(spec, Mapping):
                raise SpecError("spec", spec, f"must be a JSON object (a whole Druid {self.task_type} task)")
            return dict(spec)
        out = self.skeleton() if self.skeleton else {"type": self.task_type}
        for f in self.fields:
            value = f.value(params)
            if value is None or value in f.omit:
                if f.required:
                    raise SpecError(f.name, params.get(f.name), "is required when no task JSON ('spec') is given")
                continue
            if f.path is None:
                continue
            _put(out, f.path, f.convert(value) if f.convert else value)
        return self.finish(out, params) if self.finish else out

    def field_for(self, spec_path: str) -> Optional[str]:
        """The form field that fills ``spec_path`` (a dotted path in the built spec), if any."""
        for f in self.fields:
            prefix = f.path
            if prefix and (spec_path == prefix or spec_path.startswith((prefix + ".", prefix + "["))):
                return f.name
        return None


def _json(name: str, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SpecError(name, raw, f"is not valid JSON: {exc}") from None


def _put(target: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


def data_source_field(description: str = "The Druid dataSource.", section: str = FIELDS) -> FormField:
    """The ``data_source`` field every task type's form has (required)."""
    return FormField("data_source", "dataSource", "dataSource", required=True, description=description, section=section)
